# syntax=docker/dockerfile:1
# traceport image: one static binary on distroless, non-root, one port.
# The go build line is the Makefile's `build` line with another output path;
# deploy/deploy_test.go fails if the two drift apart.

FROM golang:1.26 AS build
WORKDIR /src
# Module downloads first so source edits keep this layer cached.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/traceport ./cmd/traceport

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/traceport /traceport
USER nonroot
# The one port: Zipkin, OTLP/gRPC, OTLP/HTTP, Jaeger gRPC, /metrics and probes.
EXPOSE 4317
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz.
ENTRYPOINT ["/traceport"]
