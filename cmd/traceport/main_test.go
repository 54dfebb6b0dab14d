package main

import (
	"os"
	"testing"

	"github.com/traceport/traceport/internal/grpccompress"
)

// TestMain registers the gRPC compressors and sets the feature gates as
// traceport's main does, so the tests run the code production runs.
func TestMain(m *testing.M) {
	grpccompress.Register()
	if err := setFeatureGates(); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
