// Package e2e runs traceport against a real Jaeger v2 (all-in-one, memory
// storage) built from the Go module proxy by scripts/build-jaeger.sh, and
// against small fake backends where a real Jaeger cannot misbehave on
// demand. It holds tests only; `go test -short` skips it.
package e2e
