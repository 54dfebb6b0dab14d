//go:build race

package e2e

// Under -race, traceport is built with the race detector too, so the
// end-to-end runs can catch its data races.
const raceBuild = true
