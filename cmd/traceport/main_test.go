package main

import (
	"os"
	"testing"

	"github.com/traceport/traceport/internal/grpccompress"
)

// TestMain registers the gRPC compressors as traceport's main does, so the
// tests run the code production runs.
func TestMain(m *testing.M) {
	grpccompress.Register()
	os.Exit(m.Run())
}
