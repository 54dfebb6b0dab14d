package topology

import (
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/translate"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// clock is a settable time for the tracker's Now.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// sp is one span for a test request; ids are hex, parent "" is a root.
type sp struct {
	svc, ns           string
	trace, id, parent string
	kind              ptrace.SpanKind
	attrs             map[string]string
}

// request serializes spans as an ExportTraceServiceRequest, one
// ResourceSpans per (service, namespace), as the receiver hands it over.
func request(t testing.TB, spans ...sp) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	rss := map[string]ptrace.SpanSlice{}
	for _, s := range spans {
		k := s.svc + "/" + s.ns
		ss, ok := rss[k]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", s.svc)
			if s.ns != "" {
				rs.Resource().Attributes().PutStr("k8s.namespace.name", s.ns)
			}
			ss = rs.ScopeSpans().AppendEmpty().Spans()
			rss[k] = ss
		}
		span := ss.AppendEmpty()
		var tid [16]byte
		var id, parent [8]byte
		mustHex(t, tid[:], s.trace)
		mustHex(t, id[:], s.id)
		span.SetTraceID(tid)
		span.SetSpanID(id)
		if s.parent != "" {
			mustHex(t, parent[:], s.parent)
			span.SetParentSpanID(parent)
		}
		span.SetKind(s.kind)
		span.SetName("op")
		for k, v := range s.attrs {
			span.Attributes().PutStr(k, v)
		}
	}
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustHex(t testing.TB, dst []byte, s string) {
	t.Helper()
	s = strings.Repeat("0", 2*len(dst)-len(s)) + s
	if _, err := hex.Decode(dst, []byte(s)); err != nil {
		t.Fatal(err)
	}
}

func newTracker(t testing.TB, cfg Config) (*Tracker, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{t: time.Unix(1766022480, 0)}
	cfg.Now = c.now
	reg := prometheus.NewRegistry()
	return New(cfg, reg), c, reg
}

const (
	gw      = "istio-ingressgateway.istio-system"
	authSC  = "auth-api.auth" // the sidecar's Zipkin service
	authApp = "auth-api"      // the SDK's service, namespace auth
	cluster = "outbound|8000||auth-api.auth.svc.cluster.local"
)

// seedTrace is one request of the seed: gateway CLIENT (Zipkin) → auth's
// sidecar SERVER (Zipkin) → auth's SDK SERVER (OTLP) → its DB CLIENT.
func seedTrace(trace string, withSidecar bool) (zipkin, otlp []sp) {
	zipkin = []sp{{svc: gw, trace: trace, id: "a1", kind: ptrace.SpanKindClient, attrs: map[string]string{"upstream_cluster": cluster}}}
	if withSidecar {
		zipkin = append(zipkin, sp{svc: authSC, trace: trace, id: "b1", parent: "a1", kind: ptrace.SpanKindServer, attrs: map[string]string{"upstream_cluster": "inbound|8000||"}})
	}
	otlp = []sp{
		{svc: authApp, ns: "auth", trace: trace, id: "c1", parent: "b1", kind: ptrace.SpanKindServer},
		{svc: authApp, ns: "auth", trace: trace, id: "c2", parent: "c1", kind: ptrace.SpanKindClient, attrs: map[string]string{"server.address": "postgres.db.svc.cluster.local:5432", "db.system.name": "postgresql"}},
	}
	return zipkin, otlp
}

func TestSeed(t *testing.T) {
	f := func(t *testing.T, withSidecar bool, wantEdges []Edge, wantOrphans map[string]uint64, wantRootless uint64) {
		t.Helper()
		tr, c, reg := newTracker(t, Config{Grace: 30 * time.Second})
		for i := 0; i < 10; i++ {
			z, o := seedTrace(fmt.Sprintf("%032x", i+1), withSidecar)
			// The app's SDK flushes first; Envoy's spans come a moment later.
			tr.Observe("otlp_grpc", request(t, o...))
			c.advance(time.Second)
			tr.Observe("zipkin", request(t, z...))
		}
		c.advance(31 * time.Second)
		if got := tr.Edges(); !equalEdges(got, wantEdges) {
			t.Errorf("edges:\n got %+v\nwant %+v", got, wantEdges)
		}
		for svc, n := range wantOrphans {
			if got := testutil.ToFloat64(collectorFor(reg, "traceport_orphan_spans_total", svc)); got != float64(n) {
				t.Errorf("traceport_orphan_spans_total{service=%q} = %g, want %d", svc, got, n)
			}
		}
		var rootless uint64
		for _, h := range tr.Health() {
			rootless += h.Rootless
			if h.Orphans != wantOrphans[h.Service] {
				t.Errorf("health %s: %d orphans, want %d", h.Service, h.Orphans, wantOrphans[h.Service])
			}
		}
		if rootless != wantRootless {
			t.Errorf("rootless traces (summed over services) = %d, want %d", rootless, wantRootless)
		}
	}
	t.Run("healthy", func(t *testing.T) {
		f(t, true, []Edge{
			{Parent: authApp, Child: "postgres.db", Hinted: 10, Unanswered: 10},
			{Parent: authSC, Child: authApp, Calls: 10, ChildReports: true},
			{Parent: gw, Child: authSC, Calls: 10, Hinted: 10, Answered: 10, ChildReports: true},
		}, map[string]uint64{}, 0)
	})
	t.Run("sidecar path cut", func(t *testing.T) {
		// The gateway still names auth-api.auth as its upstream, but no span
		// of auth links to it: the edge Jaeger would draw is gone, and every
		// SDK SERVER span is an orphan. The hinted callee auth-api.auth is the
		// workload of the SDK's auth-api, so the broken edge points there.
		f(t, false, []Edge{
			{Parent: authApp, Child: "postgres.db", Hinted: 10, Unanswered: 10},
			{Parent: gw, Child: authApp, Hinted: 10, Unanswered: 10, ChildReports: true},
		}, map[string]uint64{authApp: 10}, 0)
	})
}

func equalEdges(a, b []Edge) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// collectorFor picks one series out of the registry for testutil.
func collectorFor(reg *prometheus.Registry, name, service string) prometheus.Collector {
	return gathered{reg, name, service}
}

type gathered struct {
	reg           *prometheus.Registry
	name, service string
}

func (g gathered) Describe(chan<- *prometheus.Desc) {}
func (g gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := g.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == g.service {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.CounterValue, m.GetCounter().GetValue())
				}
			}
		}
	}
}

func TestVerdicts(t *testing.T) {
	type step struct {
		after    time.Duration // clock advance before observing
		protocol string
		spans    []sp
	}
	f := func(name string, steps []step, wait time.Duration, want []ServiceHealth, wantEdges []Edge) {
		t.Run(name, func(t *testing.T) {
			tr, c, _ := newTracker(t, Config{Grace: 10 * time.Second, Window: time.Minute})
			for _, s := range steps {
				c.advance(s.after)
				tr.Observe(s.protocol, request(t, s.spans...))
			}
			c.advance(wait)
			got := tr.Health()
			if len(got) != len(want) {
				t.Fatalf("health:\n got %+v\nwant %+v", got, want)
			}
			for i := range want {
				g := got[i]
				g.Ratio, g.RootRate = 0, 0
				if g != want[i] {
					t.Errorf("health[%d]:\n got %+v\nwant %+v", i, g, want[i])
				}
			}
			if e := tr.Edges(); !equalEdges(e, wantEdges) {
				t.Errorf("edges:\n got %+v\nwant %+v", e, wantEdges)
			}
		})
	}
	root := sp{svc: "a", trace: "1", id: "1", kind: ptrace.SpanKindServer}
	child := sp{svc: "b", trace: "1", id: "2", parent: "1", kind: ptrace.SpanKindServer}
	a := func(spans, orphans, traces, rootless uint64) ServiceHealth {
		return ServiceHealth{Service: "a", Workload: "a", Spans: spans, Orphans: orphans, Traces: traces, Rootless: rootless}
	}
	b := func(spans, orphans, traces, rootless uint64) ServiceHealth {
		return ServiceHealth{Service: "b", Workload: "b", Spans: spans, Orphans: orphans, Traces: traces, Rootless: rootless}
	}
	ab := []Edge{{Parent: "a", Child: "b", Calls: 1, ChildReports: true}}

	f("parent first", []step{{0, "zipkin", []sp{root}}, {time.Second, "otlp_http", []sp{child}}}, 11*time.Second,
		[]ServiceHealth{a(1, 0, 1, 0), b(1, 0, 1, 0)}, ab)
	f("child first, parent within grace", []step{{0, "otlp_http", []sp{child}}, {9 * time.Second, "zipkin", []sp{root}}}, 2*time.Second,
		[]ServiceHealth{a(1, 0, 1, 0), b(1, 0, 1, 0)}, ab)
	f("child first, parent too late", []step{{0, "otlp_http", []sp{child}}, {11 * time.Second, "zipkin", []sp{root}}}, 11*time.Second,
		// The trace was judged rootless at 10 s; the late root opens it again.
		[]ServiceHealth{a(1, 0, 1, 0), b(1, 1, 1, 1)}, nil)
	f("parent never", []step{{0, "otlp_http", []sp{child}}}, 10*time.Second,
		[]ServiceHealth{b(1, 1, 1, 1)}, nil)
	f("still waiting", []step{{0, "otlp_http", []sp{child}}}, 9*time.Second,
		nil, nil)
	f("same request", []step{{0, "otlp_http", []sp{child, root}}}, 10*time.Second,
		[]ServiceHealth{a(1, 0, 1, 0), b(1, 0, 1, 0)}, ab)
	f("out of the window", []step{{0, "otlp_http", []sp{root, child}}}, 2*time.Minute,
		nil, nil)
	f("same span ids, other trace", []step{{0, "zipkin", []sp{root}}, {0, "otlp_http", []sp{{svc: "b", trace: "2", id: "2", parent: "1"}}}}, 10*time.Second,
		[]ServiceHealth{a(1, 0, 1, 0), b(1, 1, 1, 1)}, nil)
}

func TestBounds(t *testing.T) {
	tr, c, reg := newTracker(t, Config{Grace: 10 * time.Second, MaxSpans: 8 * numShards, MaxPending: 4 * numShards, MaxTraces: 8 * numShards, MaxEdges: numShards, MaxNames: 3})
	for i := 0; i < 1000; i++ {
		tid := hex.EncodeToString([]byte{byte(i >> 8), byte(i)})
		tr.Observe("otlp_grpc", request(t, sp{svc: "svc" + string(rune('a'+i%5)), trace: tid, id: "1", parent: "2"}))
	}
	st := tr.Stats()
	if st.Spans > 8*numShards || st.Pending > 4*numShards || st.Traces > 8*numShards {
		t.Errorf("tables over their bounds: %+v", st)
	}
	if st.Evicted["spans"] == 0 || st.Evicted["pending"] == 0 || st.Evicted["traces"] == 0 {
		t.Errorf("evictions not counted: %+v", st.Evicted)
	}
	c.advance(11 * time.Second)
	var orphans uint64
	services := map[string]bool{}
	for _, h := range tr.Health() {
		orphans += h.Orphans
		services[h.Service] = true
	}
	if orphans == 0 || orphans > 4*numShards {
		t.Errorf("%d orphans judged; want some, at most the pending bound %d", orphans, 4*numShards)
	}
	if len(services) != 4 || !services[overflowName] {
		t.Errorf("services %v: want 3 and %q (MaxNames 3)", services, overflowName)
	}
	if n := testutil.CollectAndCount(reg, "traceport_orphan_spans_total"); n != 4 {
		t.Errorf("traceport_orphan_spans_total has %d series, want 4", n)
	}
}

func TestHostName(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := string(hostName([]byte(in))); got != want {
			t.Errorf("hostName(%q) = %q, want %q", in, got, want)
		}
	}
	f("auth-api.auth.svc.cluster.local", "auth-api.auth")
	f("auth-api.auth.svc.cluster.local:8000", "auth-api.auth")
	f("auth-api.auth.svc", "auth-api.auth")
	f("auth-api.auth.svc.corp.example:80", "auth-api.auth")
	f("inventory", "inventory")
	f("inventory:8080", "inventory")
	f("api.example.com", "api.example.com")
	f("10.96.12.7", "")
	f("10.96.12.7:8080", "")
	f("[::1]:8080", "")
	f("fe80::1", "")
	f("", "")
}

func TestPeerHints(t *testing.T) {
	f := func(attrs map[string]string, want string) {
		t.Helper()
		data := request(t, sp{svc: "caller", trace: "1", id: "1", kind: ptrace.SpanKindClient, attrs: attrs})
		// pdata writes a span's fields in reverse (kind after attributes),
		// SDKs in order: both must find the same peer.
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			t.Fatal(err)
		}
		sdk, err := proto.Marshal(&req)
		if err != nil {
			t.Fatal(err)
		}
		for order, body := range map[string][]byte{"pdata": data, "protobuf-go": sdk} {
			tr, c, _ := newTracker(t, Config{})
			tr.Observe("zipkin", body)
			c.advance(time.Minute)
			var got string
			for _, e := range tr.Edges() {
				got = e.Child
			}
			if got != want {
				t.Errorf("attrs %v, %s field order: hinted callee %q, want %q", attrs, order, got, want)
			}
		}
	}
	f(map[string]string{"upstream_cluster": cluster}, "auth-api.auth")
	f(map[string]string{"upstream_cluster": cluster, "peer.service": "auth"}, "auth")
	f(map[string]string{"upstream_cluster": "inbound|8000||"}, "")
	f(map[string]string{"upstream_cluster": "PassthroughCluster", "server.address": "api.stripe.com"}, "api.stripe.com")
	f(map[string]string{"server.address": "inventory", "net.peer.name": "other"}, "inventory")
	f(map[string]string{"net.peer.name": "redis.cache.svc.cluster.local"}, "redis.cache")
	f(map[string]string{"server.address": "10.0.0.1"}, "")
	f(map[string]string{"server.address": "caller"}, "") // itself
	f(map[string]string{"http.url": "http://x"}, "")
}

func TestWorkload(t *testing.T) {
	tr, _, _ := newTracker(t, Config{})
	tr.Observe("otlp_grpc", request(t,
		sp{svc: "auth-api", ns: "auth", trace: "1", id: "1"},
		sp{svc: "chat-api.chat", ns: "chat", trace: "1", id: "2"},
		sp{svc: "plain", trace: "1", id: "3"},
	))
	tr.Observe("zipkin", request(t, sp{svc: gw, trace: "2", id: "1", kind: ptrace.SpanKindClient, attrs: map[string]string{"upstream_cluster": cluster}}))
	f := func(service, want string) {
		t.Helper()
		if got := tr.Workload(service); got != want {
			t.Errorf("Workload(%q) = %q, want %q", service, got, want)
		}
	}
	f("auth-api", "auth-api.auth")
	f("chat-api.chat", "chat-api.chat")
	f("plain", "plain")
	f("never-seen", "never-seen")
	f(gw, gw)
	if !tr.MeshCallee("auth-api.auth") || tr.MeshCallee("chat-api.chat") {
		t.Errorf("MeshCallee: auth-api.auth is named by the gateway's upstream_cluster, chat-api.chat is not")
	}
}

// seedGraph is the seed's cluster with the auth workload's sidecar path
// cut and the others healthy, plus an instrumented frontend calling cart
// through its own sidecar and Envoy's shared-span shape.
func seedGraph(t testing.TB) *Tracker {
	t.Helper()
	tr, c, _ := newTracker(t, Config{})
	apps := []struct{ app, ns string }{{"auth-api", "auth"}, {"chat-api", "chat"}, {"scan-api", "scan"}}
	for i := 0; i < 4; i++ {
		for j, a := range apps {
			trace := hex.EncodeToString([]byte{byte(i), byte(j), 1})
			sc := a.app + "." + a.ns
			z := []sp{{svc: gw, trace: trace, id: "a1", kind: ptrace.SpanKindClient, attrs: map[string]string{"upstream_cluster": "outbound|8000||" + sc + ".svc.cluster.local"}}}
			if a.app != "auth-api" {
				z = append(z, sp{svc: sc, trace: trace, id: "b1", parent: "a1", kind: ptrace.SpanKindServer})
			}
			o := []sp{{svc: a.app, ns: a.ns, trace: trace, id: "c1", parent: "b1", kind: ptrace.SpanKindServer}}
			if a.app == "chat-api" {
				o = append(o, sp{svc: a.app, ns: a.ns, trace: trace, id: "c2", parent: "c1", kind: ptrace.SpanKindClient,
					attrs: map[string]string{"server.address": "auth-api.auth.svc.cluster.local"}})
			}
			tr.Observe("zipkin", request(t, z...))
			tr.Observe("otlp_grpc", request(t, o...))
		}
		for _, s := range instrumentedCall(hex.EncodeToString([]byte{byte(i), 9, 1}), true) {
			tr.Observe(s.protocol, request(t, s.spans...))
		}
	}
	for _, s := range sharedSpanCall(t) {
		body := s.raw
		if body == nil {
			body = request(t, s.spans...)
		}
		tr.Observe(s.protocol, body)
	}
	c.advance(31 * time.Second)
	return tr
}

// TestSeedGraph pins what the tracker makes of seedGraph's spans:
// testdata/seed-graph.json is the input of diagnosis's golden graph and
// /api/dependencies, so that those are drawn from what the tracker sees.
func TestSeedGraph(t *testing.T) {
	tr := seedGraph(t)
	got, err := json.MarshalIndent(struct {
		Edges  []Edge          `json:"edges"`
		Health []ServiceHealth `json:"health"`
	}{tr.Edges(), tr.Health()}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "seed-graph.json")
	if *update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want, err := os.ReadFile(path); err != nil || string(want) != string(got)+"\n" {
		t.Errorf("%s (%v) differs from what the tracker makes of the seed (go test -update rewrites it):\n%s", path, err, got)
	}
}

// TestSampleRatio: a quarter of the traces are watched, each one whole, and
// traceport_health_watched_spans_total says how many spans that was.
func TestSampleRatio(t *testing.T) {
	tr, _, reg := newTracker(t, Config{SampleRatio: 0.25})
	total := 0
	for seed := uint64(1); seed <= 40; seed++ {
		data := bench.SDKOTLP(100, seed)
		tr.Observe("otlp_grpc", data)
		total += 100
	}
	watched := 0.0
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "traceport_health_watched_spans_total" {
			for _, m := range mf.GetMetric() {
				watched += m.GetCounter().GetValue()
			}
		}
	}
	if share := watched / float64(total); share < 0.15 || share > 0.35 {
		t.Errorf("watched %v of %d spans (%.2f), want about a quarter", watched, total, share)
	}
	// A trace is watched whole: every span of one trace shares the verdict.
	sc := &scanner{sample: tr.sample}
	for seed := uint64(1); seed <= 5; seed++ {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(bench.SDKOTLP(50, seed))
		if err != nil {
			t.Fatal(err)
		}
		verdict := map[pcommon.TraceID]bool{}
		spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
		for i := 0; i < spans.Len(); i++ {
			id := spans.At(i).TraceID()
			w := sc.watched(traceKey(id[:]))
			if v, seen := verdict[id]; seen && v != w {
				t.Fatalf("trace %x watched for some spans and not others", id)
			}
			verdict[id] = w
		}
	}
}

// chain is one trace through n services, each span the child of the one
// before; without root, the first service's span is missing.
func chain(trace string, n int, withRoot bool) []sp {
	var spans []sp
	for i := 1; i <= n; i++ {
		s := sp{svc: fmt.Sprintf("svc%d", i), trace: trace, id: fmt.Sprintf("%x", i), kind: ptrace.SpanKindServer}
		if i > 1 {
			s.parent = fmt.Sprintf("%x", i-1)
		}
		if i > 1 || withRoot {
			spans = append(spans, s)
		}
	}
	return spans
}

// TestLongTraces: every service of a trace gets its trace verdict, however
// long the chain, each request holding one hop as sidecars and SDKs send.
func TestLongTraces(t *testing.T) {
	f := func(name string, withRoot bool, wantRootless uint64) {
		t.Run(name, func(t *testing.T) {
			tr, c, reg := newTracker(t, Config{Grace: 10 * time.Second})
			const n = 6
			spans := chain("1", n, withRoot)
			for _, s := range spans {
				tr.Observe("otlp_grpc", request(t, s))
			}
			c.advance(11 * time.Second)
			got := map[string]ServiceHealth{}
			for _, h := range tr.Health() {
				got[h.Service] = h
			}
			for _, s := range spans {
				h := got[s.svc]
				if h.Traces != 1 || h.Rootless != wantRootless {
					t.Errorf("%s: traces %d rootless %d, want 1 and %d", s.svc, h.Traces, h.Rootless, wantRootless)
				}
				if m := testutil.ToFloat64(collectorFor(reg, "traceport_rootless_traces_total", s.svc)); m != float64(wantRootless) {
					t.Errorf("traceport_rootless_traces_total{service=%q} = %g, want %d", s.svc, m, wantRootless)
				}
			}
			if e := tr.Edges(); len(e) != len(spans)-1 {
				t.Errorf("dependency preview: %d edges, want %d: %+v", len(e), len(spans)-1, e)
			}
		})
	}
	f("with root", true, 0)
	f("root missing", false, 1)
}

// TestTraceServicesBound: a trace remembers at most MaxTraceServices
// services (4 bytes each, the slot's capacity included); the rest are
// counted as evicted and the first ones still get their verdict.
func TestTraceServicesBound(t *testing.T) {
	const limit, n = 64, 100
	tr, c, reg := newTracker(t, Config{Grace: 10 * time.Second})
	for _, s := range chain("1", n, false) {
		tr.Observe("otlp_grpc", request(t, s))
	}
	for s := range tr.shards {
		for _, rec := range tr.shards[s].slab {
			if cap(rec.svcs) > limit {
				t.Errorf("a waiting trace holds room for %d services, want at most %d", cap(rec.svcs), limit)
			}
		}
	}
	c.advance(11 * time.Second)
	judged := 0
	for _, h := range tr.Health() {
		judged += int(h.Traces)
	}
	if judged != limit {
		t.Errorf("%d services judged the trace, want the first %d", judged, limit)
	}
	wantEvicted := float64(n - 1 - limit)
	if got := testutil.ToFloat64(collectorFor(reg, "traceport_topology_evicted_total", "trace_services")); got != wantEvicted {
		t.Errorf(`traceport_topology_evicted_total{table="trace_services"} = %g, want %g`, got, wantEvicted)
	}
}

const (
	frontApp     = "frontend"      // the SDK's service, namespace shop
	frontSidecar = "frontend.shop" // its sidecar's Zipkin service
	cartSidecar  = "cart.shop"     // the callee's sidecar
	cartApp      = "cart"          // the callee's SDK, namespace shop
	cartHost     = "cart.shop.svc.cluster.local"
	cartCluster  = "outbound|8080||" + cartHost
	chatSidecar  = "chat-api.chat" // the shared-span fixture's callee
	charSidecar  = "character-api.character"
)

// step is one request: what a sender flushed, as spans or as a body the
// receiver already converted.
type step struct {
	protocol string
	spans    []sp
	raw      []byte
}

// instrumentedCall is the usual Istio shape with an instrumented caller:
// the app's CLIENT span is the parent of its own sidecar's outbound
// CLIENT span, which is the parent of the callee sidecar's SERVER span,
// which is the parent of the callee app's SERVER span. Four senders, four
// requests; withCallee false drops the callee's sidecar span.
func instrumentedCall(trace string, withCallee bool) []step {
	steps := []step{
		{protocol: "otlp_grpc", spans: []sp{{svc: frontApp, ns: "shop", trace: trace, id: "a1", kind: ptrace.SpanKindClient, attrs: map[string]string{"server.address": cartHost + ":8080"}}}},
		{protocol: "zipkin", spans: []sp{{svc: frontSidecar, trace: trace, id: "b1", parent: "a1", kind: ptrace.SpanKindClient, attrs: map[string]string{"upstream_cluster": cartCluster}}}},
		{protocol: "otlp_http", spans: []sp{{svc: cartApp, ns: "shop", trace: trace, id: "d1", parent: "c1", kind: ptrace.SpanKindServer}}},
	}
	if withCallee {
		steps = append(steps, step{protocol: "zipkin", spans: []sp{{svc: cartSidecar, trace: trace, id: "c1", parent: "b1", kind: ptrace.SpanKindServer, attrs: map[string]string{"upstream_cluster": "inbound|8080||"}}}})
	}
	return steps
}

// sharedSpanCall is Envoy with shared_span_context (the field's fixture:
// the SERVER half carries the CLIENT half's id; the receiver gives it
// translate.SharedServerSpanID) under the calling app's own CLIENT span.
func sharedSpanCall(t testing.TB) []step {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "translate", "testdata", "zipkin", "envoy-shared-span.json"))
	if err != nil {
		t.Fatal(err)
	}
	td, _, err := translate.ZipkinV2JSON(body, translate.ZipkinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sidecars, _, _ := translate.TracesToOTLP(td, nil, nil)
	app := sp{svc: "character-api", ns: "character", trace: "4e441824ec2b6a44", id: "1a2b3c4d5e6f7081", kind: ptrace.SpanKindClient,
		attrs: map[string]string{"server.address": "chat-api.chat.svc.cluster.local:8000"}}
	return []step{{protocol: "otlp_grpc", spans: []sp{app}}, {protocol: "zipkin", raw: sidecars}}
}

// TestCallVerdicts pins which calls the page and /api/dependencies call
// lost: only those whose server side is missing, whatever order the
// senders flush in.
func TestCallVerdicts(t *testing.T) {
	type want struct {
		parent, child string
		lost          bool
	}
	f := func(name string, steps []step, wants []want) {
		t.Run(name, func(t *testing.T) {
			for _, order := range permutations(len(steps)) {
				tr, c, _ := newTracker(t, Config{Grace: 10 * time.Second})
				for _, i := range order {
					body := steps[i].raw
					if body == nil {
						body = request(t, steps[i].spans...)
					}
					tr.Observe(steps[i].protocol, body)
					c.advance(time.Second)
				}
				// Within the grace period no call has its verdict yet.
				for _, e := range tr.Edges() {
					if e.Lost() {
						t.Errorf("order %v: %s → %s lost before its calls' grace period ended: %+v", order, e.Parent, e.Child, e)
					}
				}
				c.advance(11 * time.Second)
				edges := map[string]Edge{}
				for _, e := range tr.Edges() {
					edges[e.Parent+" → "+e.Child] = e
				}
				lostWanted := map[string]bool{}
				for _, w := range wants {
					k := w.parent + " → " + w.child
					lostWanted[k] = w.lost
					if e, ok := edges[k]; !ok {
						t.Errorf("order %v: no edge %s in %+v", order, k, edges)
					} else if e.Lost() != w.lost {
						t.Errorf("order %v: %s lost = %v, want %v (%+v)", order, k, e.Lost(), w.lost, e)
					}
				}
				for k, e := range edges {
					if e.Lost() && !lostWanted[k] {
						t.Errorf("order %v: %s lost, want healthy: %+v", order, k, e)
					}
				}
			}
		})
	}
	f("app CLIENT → own sidecar CLIENT → callee sidecar SERVER", instrumentedCall("1", true), []want{
		{frontApp, cartSidecar, false}, {frontApp, frontSidecar, false}, {frontSidecar, cartSidecar, false}, {cartSidecar, cartApp, false},
	})
	f("callee sidecar path cut", instrumentedCall("1", false), []want{
		// cart.shop reports nothing: the hints fold into the app's service.
		{frontApp, cartApp, true}, {frontSidecar, cartApp, true},
	})
	f("Envoy shared_span_context", sharedSpanCall(t), []want{
		{"character-api", charSidecar, false}, {charSidecar, chatSidecar, false}, {"character-api", chatSidecar, false},
	})
	z, o := seedTrace("1", false)
	f("gateway → auth-api, server side missing", []step{{protocol: "zipkin", spans: z}, {protocol: "otlp_grpc", spans: o}}, []want{{gw, authApp, true}})
	z, o = seedTrace("1", true)
	f("gateway → auth-api, healthy", []step{{protocol: "zipkin", spans: z}, {protocol: "otlp_grpc", spans: o}}, []want{{gw, authSC, false}})
}

// permutations lists every order of 0..n-1.
func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(append([]int{}, p[:i]...), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}
