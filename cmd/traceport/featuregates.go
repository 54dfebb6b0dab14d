package main

import (
	"fmt"

	"go.opentelemetry.io/collector/featuregate"
)

// featureGates are the Collector feature gates in traceport's process, with
// the value traceport runs each with. The packages that read them register
// them in featuregate's global registry when imported; which value a gate
// takes is a process-wide decision, so it is made here and nowhere else.
// TestFeatureGatesAllDecided fails when a dependency adds or renames one.
var featureGates = []struct {
	id      string
	enabled bool
}{
	// Contrib's Jaeger translator (translate.JaegerBatch, JaegerBatches):
	// emit an HTTP status code tag as the current semantic conventions'
	// http.response.status_code. On, the Collector's default (Beta), so a
	// span sent to traceport reads in Jaeger as one sent to Jaeger v2.
	{"pkg.translator.jaeger.EmitV1HttpConventions", true},
	// The same translator: stop emitting the deprecated http.status_code
	// next to it. On, the Collector's default, for the same reason; off
	// would carry every status code twice.
	{"pkg.translator.jaeger.DontEmitV0HttpConventions", true},
	// pdata: pool the memory of decoded messages. Off, the default
	// (Alpha): traceport forwards OTLP without decoding it, and its
	// few decodes (Zipkin, Jaeger) gain nothing worth an alpha feature.
	{"pdata.useProtoPooling", false},
}

// setFeatureGates gives every gate in featureGates its value. Only main
// calls it, before anything reads a gate.
func setFeatureGates() error {
	for _, g := range featureGates {
		if err := featuregate.GlobalRegistry().Set(g.id, g.enabled); err != nil {
			return fmt.Errorf("feature gate: %w", err)
		}
	}
	return nil
}
