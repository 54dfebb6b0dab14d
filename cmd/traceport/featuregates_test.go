package main

import (
	"slices"
	"testing"

	model "github.com/jaegertracing/jaeger-idl/model/v1"
	"go.opentelemetry.io/collector/featuregate"

	"github.com/traceport/traceport/translate"
)

// Every gate registered in the process has a value decided in featureGates:
// a dependency that adds or renames a gate fails here, not in production.
func TestFeatureGatesAllDecided(t *testing.T) {
	var registered, decided []string
	featuregate.GlobalRegistry().VisitAll(func(g *featuregate.Gate) { registered = append(registered, g.ID()) })
	for _, g := range featureGates {
		decided = append(decided, g.id)
	}
	slices.Sort(decided)
	if !slices.Equal(registered, decided) {
		t.Fatalf("feature gates registered %q, decided in featureGates %q: decide each one there", registered, decided)
	}
}

// setFeatureGates wins over whatever a gate was before: flipped the other
// way, the Jaeger translator still writes http.response.status_code alone.
func TestSetFeatureGatesDecidesTheJaegerStatusCodeKey(t *testing.T) {
	t.Cleanup(func() {
		if err := setFeatureGates(); err != nil {
			t.Fatal(err)
		}
	})
	for _, g := range featureGates {
		if err := featuregate.GlobalRegistry().Set(g.id, !g.enabled); err != nil {
			t.Fatal(err)
		}
	}
	if err := setFeatureGates(); err != nil {
		t.Fatal(err)
	}
	featuregate.GlobalRegistry().VisitAll(func(g *featuregate.Gate) {
		for _, want := range featureGates {
			if want.id == g.ID() && want.enabled != g.IsEnabled() {
				t.Errorf("gate %s enabled %v, want %v", g.ID(), g.IsEnabled(), want.enabled)
			}
		}
	})
	td, _ := translate.JaegerBatch(&model.Batch{Spans: []*model.Span{{
		TraceID:   model.NewTraceID(0, 1),
		SpanID:    model.NewSpanID(2),
		StartTime: model.EpochMicrosecondsAsTime(1),
		Tags:      []model.KeyValue{model.Int64("http.status_code", 503)},
	}}})
	attrs := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
	_, old := attrs.Get("http.status_code")
	if v, ok := attrs.Get("http.response.status_code"); !ok || v.Int() != 503 || old {
		t.Fatalf("span attributes %v, want http.response.status_code 503 alone", attrs.AsRaw())
	}
}
