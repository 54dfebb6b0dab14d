package diagnosis

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/traceport/traceport/topology"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// fixedTopology answers with the edges and health it holds.
type fixedTopology struct {
	edges  []topology.Edge
	health []topology.ServiceHealth
}

func (f fixedTopology) Edges() []topology.Edge           { return f.edges }
func (f fixedTopology) Health() []topology.ServiceHealth { return f.health }
func (f fixedTopology) Stats() topology.Stats            { return topology.Stats{} }
func (f fixedTopology) Window() (window, grace time.Duration) {
	return 5 * time.Minute, 30 * time.Second
}
func (f fixedTopology) Workload(service string) string { return service }
func (f fixedTopology) MeshCallee(string) bool         { return false }

// seedGraph is what the tracker makes of topology's seed (the auth
// workload's sidecar path cut, the others healthy, an instrumented frontend
// calling cart through its own sidecar, Envoy's shared-span shape), as
// topology's TestSeedGraph pins it: the input of the golden files.
func seedGraph(t *testing.T) fixedTopology {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "topology", "testdata", "seed-graph.json"))
	if err != nil {
		t.Fatal(err)
	}
	var seed struct {
		Edges  []topology.Edge          `json:"edges"`
		Health []topology.ServiceHealth `json:"health"`
	}
	if err := json.Unmarshal(b, &seed); err != nil {
		t.Fatal(err)
	}
	return fixedTopology{seed.Edges, seed.Health}
}

// serve answers one request through the routes Register adds.
func serve(topo Topology, method, target string) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	New(Config{}, topo, nil).Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", path, got)
	}
}

func TestDependenciesGolden(t *testing.T) {
	seed := seedGraph(t)
	for _, q := range []struct{ query, file string }{{"", "dependencies.json"}, {"?hints=true", "dependencies-hints.json"}} {
		rec := serve(seed, "GET", "/api/dependencies"+q.query)
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		var shape struct {
			Data []struct {
				Parent, Child string
				CallCount     int
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &shape); err != nil || len(shape.Data) == 0 {
			t.Errorf("not Jaeger's shape (%v): %s", err, rec.Body)
		}
		golden(t, q.file, rec.Body.Bytes())
	}
}

func TestSVGGolden(t *testing.T) {
	seed := seedGraph(t)
	rec := serve(seed, "GET", "/ui/graph.svg")
	if ct := rec.Header().Get("Content-Type"); ct != "image/svg+xml" {
		t.Errorf("Content-Type %q", ct)
	}
	b := rec.Body
	golden(t, "graph.svg", b.Bytes())
	for _, want := range []string{
		`class="edge linked" data-parent="istio-ingressgateway.istio-system" data-child="chat-api.chat"`,
		`class="edge broken" data-parent="istio-ingressgateway.istio-system" data-child="auth-api"`,
		`class="edge relayed" data-parent="frontend" data-child="cart.shop"`,
		`class="edge linked" data-parent="frontend.shop" data-child="cart.shop"`,
		`class="edge linked" data-parent="character-api.character" data-child="chat-api.chat"`,
		`class="edge relayed" data-parent="character-api" data-child="chat-api.chat"`,
		`data-service="auth-api"`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("SVG lacks %s", want)
		}
	}
	if n := strings.Count(b.String(), `class="edge broken"`); n != 2 {
		t.Errorf("%d broken edges, want 2 (gateway → auth-api and chat-api → auth-api, whose server side is missing)", n)
	}
	golden(t, "graph-empty.svg", serve(fixedTopology{}, "GET", "/ui/graph.svg").Body.Bytes())
}

// TestSVGLayout: the graph scales to its container, and its columns are
// tight — a workload's sidecar and app share one, and the app ↔ own
// sidecar cycle of every instrumented workload leaves no empty column — so
// that a gateway calling a chain of five workloads fits a 1,400 px window at
// full scale.
func TestSVGLayout(t *testing.T) {
	const gw = "istio-ingressgateway.istio-system"
	edges := []topology.Edge{
		{Parent: gw, Child: "svc1.shop", Calls: 1, ChildReports: true},
		{Parent: "svc1.shop", Child: "svc1", Calls: 1, ChildReports: true}, // sidecar → app
		{Parent: "svc1", Child: "svc1.shop", Calls: 1, ChildReports: true}, // app → own sidecar
		{Parent: "svc1", Child: "svc2.shop", Hinted: 1, Answered: 1, ChildReports: true},
	}
	health := []topology.ServiceHealth{{Service: "svc1", Workload: "svc1.shop"}}
	for i := 1; i < 5; i++ {
		edges = append(edges, topology.Edge{Parent: fmt.Sprintf("svc%d.shop", i), Child: fmt.Sprintf("svc%d.shop", i+1), Calls: 1, ChildReports: true})
	}
	var b bytes.Buffer
	if err := writeSVG(&b, edges, health); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	var w, h int
	if _, err := fmt.Sscanf(svg[strings.Index(svg, `viewBox="`):], `viewBox="0 0 %d %d"`, &w, &h); err != nil || !strings.Contains(svg, `width="100%"`) {
		t.Fatalf("want a viewBox and width 100%%: %v\n%s", err, svg)
	}
	// The page's graph box is the window less the body's margins.
	if w > 1340 {
		t.Errorf("natural width %d px: six columns do not fit a 1,400 px window at full scale", w)
	}
	type box struct{ x, y int }
	nodes := map[string]box{}
	for rest := svg; ; {
		i := strings.Index(rest, `<g class="node" data-service="`)
		if i < 0 {
			break
		}
		rest = rest[i+len(`<g class="node" data-service="`):]
		name := rest[:strings.IndexByte(rest, '"')]
		var bx box
		j := strings.Index(rest, `<rect x="`)
		fmt.Sscanf(rest[j:], `<rect x="%d" y="%d"`, &bx.x, &bx.y)
		nodes[name] = bx
	}
	cols := map[int]bool{}
	for _, bx := range nodes {
		cols[bx.x] = true
	}
	xs := slices.Sorted(maps.Keys(cols))
	if len(xs) != 6 {
		t.Errorf("%d columns at x %v, want 6: gateway, svc1.shop with svc1, svc2.shop … svc5.shop", len(xs), xs)
	}
	for i := 2; i < len(xs); i++ {
		if xs[i]-xs[i-1] != xs[1]-xs[0] {
			t.Errorf("columns at x %v: uneven steps, an empty column", xs)
			break
		}
	}
	if sc, app := nodes["svc1.shop"], nodes["svc1"]; sc.x != app.x || sc.y >= app.y {
		t.Errorf("svc1.shop at %v, its app svc1 at %v: want the app in the sidecar's column, below it", sc, app)
	}
}
