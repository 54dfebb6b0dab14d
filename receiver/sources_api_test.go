package receiver

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/traceport/traceport/topology"
	"github.com/traceport/traceport/translate"
)

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

func getSources(t *testing.T, addr string) SourcesReport {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/sources")
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

// TestSourcesFindsTheSeed is the seed's outage in one process: the auth
// workload's app reports over OTLP, its sidecar never reports, every other
// path works. /api/sources must name auth-api.auth and nothing else.
func TestSourcesFindsTheSeed(t *testing.T) {
	clock := time.Unix(1766022480, 0)
	now := func() time.Time { return clock }
	topo := topology.New(topology.Config{Now: now}, nil)
	mux := http.NewServeMux()
	tr := startReceiver(t, Config{Observer: topo, Pages: mux})
	tr.rc.sources.now = now
	opts := SourcesOptions{SilenceAfter: 5 * time.Minute, Workload: topo.Workload, MeshCallee: topo.MeshCallee, Now: now}
	mux.Handle("/api/sources", tr.rc.SourcesHandler(opts))
	base := "http://" + tr.addr

	send := func(app, ns, trace string, sidecar, sdk bool) {
		t.Helper()
		if code, body, _ := post(t, h1Client(), base+"/api/v2/spans", "application/json", sidecarJSON(app, ns, trace, sidecar)); code != 202 {
			t.Fatalf("zipkin: %d %s", code, body)
		}
		if sdk {
			if code, body, _ := post(t, h1Client(), base+"/v1/traces", "application/json", otlpJSON(app, ns, trace, "00000000000000c1", "000000000000000b")); code != 200 {
				t.Fatalf("otlp: %d %s", code, body)
			}
		}
	}
	send("auth-api", "auth", "0af7651916cd43dd8448eb211c80319c", false, true)
	send("chat-api", "chat", "1af7651916cd43dd8448eb211c80319c", true, true)
	post(t, h1Client(), base+"/api/v2/spans", "application/xml", []byte("<x/>"))

	rep := getSources(t, tr.addr)
	want := []Finding{{
		Workload: "auth-api.auth", Kind: FindingSidecarAbsent, Services: []string{"auth-api"},
	}}
	check := func(rep SourcesReport, want []Finding) {
		t.Helper()
		if len(rep.Findings) != len(want) {
			t.Fatalf("findings %+v, want %+v", rep.Findings, want)
		}
		for i, f := range rep.Findings {
			msg := f.Message
			f.Message = ""
			if fmt.Sprint(f) != fmt.Sprint(want[i]) || msg == "" {
				t.Errorf("finding %+v (message %q), want %+v", f, msg, want[i])
			}
		}
	}
	check(rep, want)
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
		}
	}
	if !sawApp {
		t.Errorf("no source for auth-api: %+v", rep.Sources)
	}
	if len(rep.Rejected) != 1 || rep.Rejected[0] != (RejectedStat{Protocol: "zipkin", Reason: "unsupported_media_type", Requests: 1}) {
		t.Errorf("rejected %+v", rep.Rejected)
	}

	// Ten minutes on, chat's sidecar goes quiet while its app still reports,
	// and auth's app stops while... auth never had a sidecar: no finding
	// about auth's app (nothing live to compare with).
	clock = clock.Add(10 * time.Minute)
	send("scan-api", "scan", "2af7651916cd43dd8448eb211c80319c", true, true) // keeps the mesh live
	if code, _, _ := post(t, h1Client(), base+"/v1/traces", "application/json", otlpJSON("chat-api", "chat", "3af7651916cd43dd8448eb211c80319c", "00000000000000c1", "000000000000000b")); code != 200 {
		t.Fatal(code)
	}
	check(getSources(t, tr.addr), []Finding{{Workload: "chat-api.chat", Kind: FindingSidecarStale, Services: []string{"chat-api", "chat-api.chat"}}})

	// And the reverse: scan's sidecar reports ten minutes later, its app no more.
	clock = clock.Add(10 * time.Minute)
	send("scan-api", "scan", "4af7651916cd43dd8448eb211c80319c", true, false)
	check(getSources(t, tr.addr), []Finding{{Workload: "scan-api.scan", Kind: FindingAppStale, Services: []string{"scan-api", "scan-api.scan"}}})
}

func TestSourcesProbesRaiseNoFinding(t *testing.T) {
	tr := startReceiver(t, Config{})
	base := "http://" + tr.addr
	post(t, h1Client(), base+"/api/v2/spans", "application/json", sidecarJSON("a", "b", "0af7651916cd43dd8448eb211c80319c", true))
	post(t, h1Client(), base+"/v1/traces", "application/json", otlpJSON(ProbeService, "", "1af7651916cd43dd8448eb211c80319c", "00000000000000c1", ""))
	rep := tr.rc.SourcesReport(SourcesOptions{})
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
}

func TestClientsBounded(t *testing.T) {
	tr := startReceiver(t, Config{})
	s := tr.rc.sources
	counts := []translate.ServiceCount{{Service: "a", Spans: 1}}
	s.add(protoZipkin, encJSON, counts)
	for i := 0; i < 20; i++ {
		s.noteClient(protoZipkin, encJSON, counts, fmt.Sprintf("10.0.0.%d:%d", i%12, 40000+i))
	}
	rep := tr.rc.SourcesReport(SourcesOptions{})
	if len(rep.Sources) != 1 {
		t.Fatalf("sources %+v", rep.Sources)
	}
	// 20 requests from 12 hosts: the first 8 hosts kept, the 4 requests
	// from the other 4 counted; repeats of kept hosts change nothing.
	got := rep.Sources[0]
	if len(got.Clients) != maxClients || got.Clients[0] != "10.0.0.0" || got.Clients[7] != "10.0.0.7" || got.MoreClients != 4 {
		t.Errorf("clients %v, more %d; want 10.0.0.0…7 and 4 more", got.Clients, got.MoreClients)
	}
}

// TestCallVerdictsThroughTheReceiver sends, through the receiver's own
// Zipkin and OTLP/HTTP endpoints, the calls whose verdict /api/sources, the
// page and /api/dependencies must get right: an instrumented app calling
// through its own sidecar (healthy), Envoy's shared-span shape (healthy), and
// the seed's cut sidecar path (lost). Only the last is lost, and only it is a
// finding.
func TestCallVerdictsThroughTheReceiver(t *testing.T) {
	clock := time.Unix(1766022480, 0)
	now := func() time.Time { return clock }
	topo := topology.New(topology.Config{Now: now, Grace: 10 * time.Second}, nil)
	mux := http.NewServeMux()
	tr := startReceiver(t, Config{Observer: topo, Pages: mux})
	tr.rc.sources.now = now
	opts := SourcesOptions{SilenceAfter: 5 * time.Minute, Workload: topo.Workload, MeshCallee: topo.MeshCallee, Now: now}
	mux.Handle("/api/sources", tr.rc.SourcesHandler(opts))
	base := "http://" + tr.addr
	send := func(path, contentType string, body []byte) {
		t.Helper()
		if code, msg, _ := post(t, h1Client(), base+path, contentType, body); code/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, code, msg)
		}
	}
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

	clock = clock.Add(11 * time.Second)
	var lost []string
	for _, e := range topo.Edges() {
		if e.Lost() {
			lost = append(lost, e.Parent+" → "+e.Child)
		}
	}
	if want := []string{"istio-ingressgateway.istio-system → auth-api"}; fmt.Sprint(lost) != fmt.Sprint(want) {
		t.Errorf("lost edges %v, want %v", lost, want)
	}
	var lostLinks []string
	for _, l := range topology.DependencyLinks(topo.Edges(), true) {
		if l.Lost {
			lostLinks = append(lostLinks, l.Parent+" → "+l.Child)
		}
	}
	if fmt.Sprint(lostLinks) != fmt.Sprint(lost) {
		t.Errorf("/api/dependencies?hints=true lost links %v, want %v", lostLinks, lost)
	}
	rep := getSources(t, tr.addr)
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
