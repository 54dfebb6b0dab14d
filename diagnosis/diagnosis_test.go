package diagnosis

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/traceport/traceport/receiver"
	"github.com/traceport/traceport/topology"
	"github.com/traceport/traceport/translate"
)

// discardSink takes every request and keeps nothing.
type discardSink struct{}

func (discardSink) Admit(bool) (bool, time.Duration) { return true, 0 }
func (discardSink) Push(_ []byte, _ int, _ bool, accounted func()) error {
	accounted()
	return nil
}

// testClock is the clock of the report and of the tracker: real time
// plus an offset the test moves forward, so that sources age without
// waiting. The receiver stamps its sources with real time; at reads such
// a stamp as the test clock read at that instant.
type testClock struct {
	mu     sync.Mutex
	shifts []shift
}

// shift: from this real instant on, the clock is offset ahead.
type shift struct {
	from   time.Time
	offset time.Duration
}

func (c *testClock) now() time.Time { return c.at(time.Now()) }

func (c *testClock) at(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var offset time.Duration
	for _, s := range c.shifts {
		if !t.Before(s.from) {
			offset = s.offset
		}
	}
	return t.Add(offset)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	offset := d
	if n := len(c.shifts); n > 0 {
		offset += c.shifts[n-1].offset
	}
	c.shifts = append(c.shifts, shift{time.Now(), offset})
}

// clockedTable is the receiver's source table as cmd/traceport adapts it,
// with its stamps on the test clock, as if the receiver ran on it.
type clockedTable struct {
	rc    *receiver.Receiver
	clock *testClock
}

func (t clockedTable) Sources() []SourceStat {
	var out []SourceStat
	for _, s := range t.rc.Sources() {
		s.LastSeen = t.clock.at(s.LastSeen)
		out = append(out, SourceStat(s))
	}
	return out
}

func (t clockedTable) Rejections() []RejectedEntry {
	var out []RejectedEntry
	for _, r := range t.rc.Rejections() {
		out = append(out, RejectedEntry(r))
	}
	return out
}

// testTraceport is a receiver with diagnosis registered, as
// cmd/traceport wires them, on a loopback port.
type testTraceport struct {
	base string
	topo *topology.Tracker
	diag *Diagnosis
}

func start(t *testing.T, clock *testClock, grace time.Duration) *testTraceport {
	t.Helper()
	reg := prometheus.NewRegistry()
	topo := topology.New(topology.Config{Now: clock.now, Grace: grace}, nil)
	pages := http.NewServeMux()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rc := receiver.New(receiver.Config{MaxRequestBytes: 1 << 20, MaxServices: 100, Observer: topo, Pages: pages}, discardSink{}, reg, reg, log)
	d := New(Config{SilenceAfter: 5 * time.Minute, Now: clock.now}, topo, clockedTable{rc, clock})
	d.Register(pages)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go rc.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rc.Shutdown(ctx)
	})
	return &testTraceport{base: "http://" + ln.Addr().String(), topo: topo, diag: d}
}

// post sends one request and returns its status and body.
func (tp *testTraceport) post(t *testing.T, path, contentType string, body []byte) (int, string) {
	t.Helper()
	resp, err := http.Post(tp.base+path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// send posts and wants a 2xx.
func (tp *testTraceport) send(t *testing.T, path, contentType string, body []byte) {
	t.Helper()
	if code, msg := tp.post(t, path, contentType, body); code/100 != 2 {
		t.Fatalf("POST %s: %d %s", path, code, msg)
	}
}

func (tp *testTraceport) getSources(t *testing.T, query string) SourcesReport {
	t.Helper()
	resp, err := http.Get(tp.base + "/api/sources" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/sources: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var rep SourcesReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// get fetches path and wants a 200 of contentType.
func (tp *testTraceport) get(t *testing.T, path, contentType string) string {
	t.Helper()
	resp, err := http.Get(tp.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != contentType {
		t.Fatalf("GET %s: %s %s, want 200 %s: %s", path, resp.Status, resp.Header.Get("Content-Type"), contentType, b)
	}
	return string(b)
}

// otlpJSON is one OTLP/HTTP JSON body: one span of service in namespace ns.
func otlpJSON(service, ns, traceID, spanID, parentID string) []byte {
	nsAttr := ""
	if ns != "" {
		nsAttr = fmt.Sprintf(`,{"key":"k8s.namespace.name","value":{"stringValue":%q}}`, ns)
	}
	return []byte(fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":%q}}%s]},
"scopeSpans":[{"spans":[{"traceId":%q,"spanId":%q,"parentSpanId":%q,"name":"POST /x","kind":2,"startTimeUnixNano":"1700000000000000000","endTimeUnixNano":"1700000000001000000"}]}]}]}`,
		service, nsAttr, traceID, spanID, parentID))
}

// sidecarJSON is what Envoy reports for one call gateway → app: the
// gateway's CLIENT span and, withServer, the app sidecar's SERVER span.
func sidecarJSON(app, ns, traceID string, withServer bool) []byte {
	spans := []string{fmt.Sprintf(`{"traceId":%q,"id":"000000000000000a","kind":"CLIENT","name":"x","timestamp":1700000000000000,"duration":10,
"localEndpoint":{"serviceName":"istio-ingressgateway.istio-system"},"tags":{"upstream_cluster":"outbound|8000||%s.%s.svc.cluster.local"}}`, traceID, app, ns)}
	if withServer {
		spans = append(spans, fmt.Sprintf(`{"traceId":%q,"id":"000000000000000b","parentId":"000000000000000a","kind":"SERVER","name":"x","timestamp":1700000000000000,"duration":9,
"localEndpoint":{"serviceName":"%s.%s"},"tags":{"istio.canonical_service":%q,"istio.namespace":%q}}`, traceID, app, ns, app, ns))
	}
	return []byte("[" + strings.Join(spans, ",") + "]")
}

// checkFindings compares findings without their messages, and wants a
// message on each.
func checkFindings(t *testing.T, got, want []Finding) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("findings %+v, want %+v", got, want)
	}
	for i, f := range got {
		msg := f.Message
		f.Message = ""
		if fmt.Sprint(f) != fmt.Sprint(want[i]) || msg == "" {
			t.Errorf("finding %+v (message %q), want %+v", f, msg, want[i])
		}
	}
}

// TestSourcesFindsTheSeed is the seed's outage in one process: the auth
// workload's app reports over OTLP, its sidecar never reports, every other
// path works. /api/sources must name auth-api.auth and nothing else.
func TestSourcesFindsTheSeed(t *testing.T) {
	clock := &testClock{}
	tp := start(t, clock, 0)
	send := func(app, ns, trace string, sidecar, sdk bool) {
		t.Helper()
		tp.send(t, "/api/v2/spans", "application/json", sidecarJSON(app, ns, trace, sidecar))
		if sdk {
			tp.send(t, "/v1/traces", "application/json", otlpJSON(app, ns, trace, "00000000000000c1", "000000000000000b"))
		}
	}
	send("auth-api", "auth", "0af7651916cd43dd8448eb211c80319c", false, true)
	send("chat-api", "chat", "1af7651916cd43dd8448eb211c80319c", true, true)
	if code, _ := tp.post(t, "/api/v2/spans", "application/xml", []byte("<x/>")); code != 415 {
		t.Fatalf("xml: %d, want 415", code)
	}

	rep := tp.getSources(t, "")
	checkFindings(t, rep.Findings, []Finding{{Workload: "auth-api.auth", Kind: FindingSidecarAbsent, Services: []string{"auth-api"}}})
	if !strings.Contains(rep.Findings[0].Message, "other sidecars route calls to auth-api.auth") {
		t.Errorf("the gateway's upstream_cluster names auth-api.auth, the message should say so: %s", rep.Findings[0].Message)
	}
	var sawApp bool
	for _, s := range rep.Sources {
		if s.Service == "auth-api" {
			sawApp = true
			if s.Workload != "auth-api.auth" || s.Path != "app" || s.Protocol != "otlp_http" || s.Encoding != "json" || s.Spans != 1 || s.Requests != 1 || s.Stale {
				t.Errorf("auth-api's source: %+v", s)
			}
			if fmt.Sprint(s.Clients) != "[127.0.0.1]" {
				t.Errorf("auth-api's clients %v, want [127.0.0.1]", s.Clients)
			}
		}
	}
	if !sawApp {
		t.Errorf("no source for auth-api: %+v", rep.Sources)
	}
	if len(rep.Rejected) != 1 || rep.Rejected[0] != (RejectedEntry{Protocol: "zipkin", Reason: "unsupported_media_type", Requests: 1}) {
		t.Errorf("rejected %+v", rep.Rejected)
	}
	page := tp.get(t, "/", "text/html; charset=utf-8")
	for _, want := range []string{
		`<div class="finding" data-workload="auth-api.auth" data-kind="sidecar_absent"><b>auth-api.auth</b> (sidecar_absent): app spans (OTLP) of auth-api.auth arrive`,
		`<tr class="" data-service="auth-api" data-protocol="otlp_http"><td>auth-api.auth</td><td>auth-api</td><td>app</td>`,
		`<td>zipkin</td><td>unsupported_media_type</td><td class="n">1</td>`,
		`<svg xmlns="http://www.w3.org/2000/svg" id="dependency-graph"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("GET / lacks %s", want)
		}
	}
	if deps := tp.get(t, "/api/dependencies?hints=true", "application/json"); !strings.Contains(deps, `"child": "auth-api",`) {
		t.Errorf("/api/dependencies?hints=true does not name the gateway's call to auth-api.auth: %s", deps)
	}
	if health := tp.get(t, "/api/health", "application/json"); !strings.Contains(health, `"services"`) {
		t.Errorf("/api/health: %s", health)
	}
	tp.get(t, "/ui/graph.svg", "image/svg+xml")

	// Ten minutes on, chat's sidecar goes quiet while its app still reports,
	// and auth's app stops while... auth never had a sidecar: no finding
	// about auth's app (nothing live to compare with).
	clock.advance(10 * time.Minute)
	send("scan-api", "scan", "2af7651916cd43dd8448eb211c80319c", true, true) // keeps the mesh live
	tp.send(t, "/v1/traces", "application/json", otlpJSON("chat-api", "chat", "3af7651916cd43dd8448eb211c80319c", "00000000000000c1", "000000000000000b"))
	checkFindings(t, tp.getSources(t, "").Findings, []Finding{{Workload: "chat-api.chat", Kind: FindingSidecarStale, Services: []string{"chat-api", "chat-api.chat"}}})

	// And the reverse: scan's sidecar reports ten minutes later, its app no more.
	clock.advance(10 * time.Minute)
	send("scan-api", "scan", "4af7651916cd43dd8448eb211c80319c", true, false)
	checkFindings(t, tp.getSources(t, "").Findings, []Finding{{Workload: "scan-api.scan", Kind: FindingAppStale, Services: []string{"scan-api", "scan-api.scan"}}})
}

func TestSourcesProbesRaiseNoFinding(t *testing.T) {
	tp := start(t, &testClock{}, 0)
	tp.send(t, "/api/v2/spans", "application/json", sidecarJSON("a", "b", "0af7651916cd43dd8448eb211c80319c", true))
	tp.send(t, "/v1/traces", "application/json", otlpJSON(ProbeService, "", "1af7651916cd43dd8448eb211c80319c", "00000000000000c1", ""))
	rep := tp.diag.Report()
	if len(rep.Findings) != 0 {
		t.Errorf("findings %+v", rep.Findings)
	}
	var probes int
	for _, s := range rep.Sources {
		if s.Probe {
			probes++
		}
	}
	if probes != 1 {
		t.Errorf("%d probe sources, want 1: %+v", probes, rep.Sources)
	}
	for _, s := range tp.getSources(t, "?probe=false").Sources {
		if s.Service == ProbeService {
			t.Errorf("?probe=false still lists %+v", s)
		}
	}
}

// TestCallVerdictsThroughTheReceiver sends, through the receiver's own
// Zipkin and OTLP/HTTP endpoints, the calls whose verdict /api/sources, the
// page and /api/dependencies must get right: an instrumented app calling
// through its own sidecar (healthy), Envoy's shared-span shape (healthy), and
// the seed's cut sidecar path (lost). Only the last is lost, and only it is a
// finding.
func TestCallVerdictsThroughTheReceiver(t *testing.T) {
	clock := &testClock{}
	tp := start(t, clock, 10*time.Second)
	send := func(path, contentType string, body []byte) { t.Helper(); tp.send(t, path, contentType, body) }
	appClient := func(service, ns, traceID, spanID, host string) []byte {
		return []byte(fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":%q}},{"key":"k8s.namespace.name","value":{"stringValue":%q}}]},
"scopeSpans":[{"spans":[{"traceId":%q,"spanId":%q,"name":"GET","kind":3,"startTimeUnixNano":"1766022480000000000","endTimeUnixNano":"1766022480003000000",
"attributes":[{"key":"server.address","value":{"stringValue":%q}}]}]}]}]}`, service, ns, traceID, spanID, host))
	}

	// frontend's SDK CLIENT span → its sidecar's CLIENT span → cart's sidecar SERVER span → cart's SDK.
	const shop = "5af7651916cd43dd8448eb211c80319c"
	send("/v1/traces", "application/json", appClient("frontend", "shop", shop, "00000000000000a1", "cart.shop.svc.cluster.local"))
	send("/api/v2/spans", "application/json", []byte(`[{"traceId":"`+shop+`","id":"00000000000000b1","parentId":"00000000000000a1","kind":"CLIENT","name":"x","timestamp":1766022480000100,"duration":2000,
"localEndpoint":{"serviceName":"frontend.shop"},"tags":{"upstream_cluster":"outbound|8080||cart.shop.svc.cluster.local"}},
{"traceId":"`+shop+`","id":"00000000000000c1","parentId":"00000000000000b1","kind":"SERVER","name":"x","timestamp":1766022480000200,"duration":1500,
"localEndpoint":{"serviceName":"cart.shop"},"tags":{"istio.canonical_service":"cart","istio.namespace":"shop"}}]`))
	send("/v1/traces", "application/json", otlpJSON("cart", "shop", shop, "00000000000000d1", "00000000000000c1"))

	// Envoy's shared_span_context under the calling app's CLIENT span.
	shared, err := os.ReadFile(filepath.Join("..", "translate", "testdata", "zipkin", "envoy-shared-span.json"))
	if err != nil {
		t.Fatal(err)
	}
	send("/api/v2/spans", "application/json", shared)
	send("/v1/traces", "application/json", appClient("character-api", "character", "00000000000000004e441824ec2b6a44", "1a2b3c4d5e6f7081", "chat-api.chat.svc.cluster.local"))
	send("/v1/traces", "application/json", otlpJSON("chat-api", "chat", "00000000000000004e441824ec2b6a44", "00000000000000e1", hex.EncodeToString(sharedServerID(t))))

	// The seed's cut path: the gateway calls auth-api, whose sidecar spans never arrive.
	send("/api/v2/spans", "application/json", sidecarJSON("auth-api", "auth", "0af7651916cd43dd8448eb211c80319c", false))
	send("/v1/traces", "application/json", otlpJSON("auth-api", "auth", "0af7651916cd43dd8448eb211c80319c", "00000000000000c1", "000000000000000b"))

	clock.advance(11 * time.Second)
	var lost []string
	for _, e := range tp.topo.Edges() {
		if e.Lost() {
			lost = append(lost, e.Parent+" → "+e.Child)
		}
	}
	if want := []string{"istio-ingressgateway.istio-system → auth-api"}; fmt.Sprint(lost) != fmt.Sprint(want) {
		t.Errorf("lost edges %v, want %v", lost, want)
	}
	var lostLinks []string
	for _, l := range dependencyLinks(tp.topo.Edges(), true) {
		if l.Lost {
			lostLinks = append(lostLinks, l.Parent+" → "+l.Child)
		}
	}
	if fmt.Sprint(lostLinks) != fmt.Sprint(lost) {
		t.Errorf("/api/dependencies?hints=true lost links %v, want %v", lostLinks, lost)
	}
	rep := tp.getSources(t, "")
	if len(rep.Findings) != 1 || rep.Findings[0].Workload != "auth-api.auth" {
		t.Errorf("findings %+v, want auth-api.auth only", rep.Findings)
	}
}

// sharedServerID is the id the receiver gives the SERVER half of the
// shared-span fixture.
func sharedServerID(t *testing.T) []byte {
	var tid pcommon.TraceID
	var sid pcommon.SpanID
	hex.Decode(tid[8:], []byte("4e441824ec2b6a44"))
	hex.Decode(sid[:], []byte("e66dc5d5cb9b8ba7"))
	id := translate.SharedServerSpanID(tid, sid)
	return id[:]
}
