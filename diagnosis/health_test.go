package diagnosis

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/traceport/traceport/topology"
)

// TestHealthWindow: /api/health states the window and grace period the
// tracker judges with (its flags), not diagnosis's own settings.
func TestHealthWindow(t *testing.T) {
	topo := topology.New(topology.Config{Window: 2 * time.Minute, Grace: 10 * time.Second}, nil)
	rec := serve(topo, "GET", "/api/health")
	if ct := rec.Header().Get("Content-Type"); rec.Code != 200 || ct != "application/json" {
		t.Fatalf("GET /api/health: %d %q", rec.Code, ct)
	}
	var got struct {
		Window, Grace string
		Services      []topology.ServiceHealth
		Tables        *topology.Stats
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Window != "2m0s" || got.Grace != "10s" || got.Services == nil || got.Tables == nil {
		t.Errorf("GET /api/health = %s, want window 2m0s, grace 10s, services and tables", rec.Body)
	}
}

// TestAPIMethods: the APIs answer GET and HEAD; anything else is refused
// with 405 and the methods allowed.
func TestAPIMethods(t *testing.T) {
	f := func(method, target string, want int) {
		t.Helper()
		rec := serve(fixedTopology{}, method, target)
		if rec.Code != want {
			t.Errorf("%s %s: %d, want %d", method, target, rec.Code, want)
		}
		if want == 405 && rec.Header().Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", method, target)
		}
	}
	for _, target := range []string{"/api/dependencies", "/api/health", "/ui/graph.svg"} {
		f("GET", target, 200)
		f("HEAD", target, 200)
		f("POST", target, 405)
	}
}
