package topology

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/traceport/traceport/translate"
)

// TestShownWalkEqualsObserve: a tracker shown the receiver's validation
// walk (Begin, translate.ScanOTLPVisit, End) reaches the verdicts of one
// that walks the same requests itself (Observe); a walk ended as refused
// leaves nothing behind, not even a service name.
func TestShownWalkEqualsObserve(t *testing.T) {
	run := func(otlp func(tr *Tracker, data []byte)) *Tracker {
		tr, c, _ := newTracker(t, Config{Grace: 30 * time.Second})
		for i := 0; i < 10; i++ {
			z, o := seedTrace(fmt.Sprintf("%032x", i+1), i%3 != 0)
			otlp(tr, request(t, o...))
			c.advance(time.Second)
			tr.Observe("zipkin", request(t, z...))
		}
		c.advance(31 * time.Second)
		return tr
	}
	shown := func(accepted bool) func(tr *Tracker, data []byte) {
		return func(tr *Tracker, data []byte) {
			v := tr.Begin("otlp_grpc")
			if _, err := translate.ScanOTLPVisit(data, nil, v); err != nil {
				t.Fatal(err)
			}
			tr.End(v, accepted)
		}
	}
	walked := run(func(tr *Tracker, data []byte) { tr.Observe("otlp_grpc", data) })
	watched := run(shown(true))
	if got, want := watched.Edges(), walked.Edges(); !equalEdges(got, want) || len(want) == 0 {
		t.Errorf("edges from the shown walk:\n got %+v\nwant %+v", got, want)
	}
	if got, want := watched.Health(), walked.Health(); !slices.Equal(got, want) {
		t.Errorf("health from the shown walk:\n got %+v\nwant %+v", got, want)
	}
	refused := run(shown(false))
	for _, h := range refused.Health() {
		if h.Service == authApp {
			t.Errorf("a refused request's service is known: %+v", h)
		}
	}
	for _, e := range refused.Edges() {
		if e.Parent == authApp || e.Child == authApp && e.Calls > 0 {
			t.Errorf("a refused request's spans drew an edge: %+v", e)
		}
	}
}
