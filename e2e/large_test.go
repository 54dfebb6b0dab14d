package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// sdkRequest is one OTLP export of n SDK-shaped spans (8 resource
// attributes, 10 span attributes, ~430 bytes a span), in traces of 100
// spans with fresh random ids; it returns the request and its trace ids.
func sdkRequest(t testing.TB, service string, n int) (ptraceotlp.ExportRequest, []string) {
	t.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	ra := rs.Resource().Attributes()
	ra.PutStr("service.name", service)
	ra.PutStr("service.version", "1.4.2")
	ra.PutStr("service.namespace", "shop")
	ra.PutStr("deployment.environment", "production")
	ra.PutStr("host.name", "checkout-7f9c6d5b8-x2x9q")
	ra.PutStr("k8s.pod.name", "checkout-7f9c6d5b8-x2x9q")
	ra.PutStr("telemetry.sdk.name", "opentelemetry")
	ra.PutStr("telemetry.sdk.language", "go")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	start := time.Now().Add(-time.Minute)
	var ids []string
	var tid pcommon.TraceID
	var root pcommon.SpanID
	for i := range n {
		s := ss.Spans().AppendEmpty()
		if i%100 == 0 {
			copy(tid[:], hexBytes(t, randomHex(t, 16)))
			copy(root[:], hexBytes(t, randomHex(t, 8)))
			ids = append(ids, tid.String())
			s.SetSpanID(root)
		} else {
			var sid pcommon.SpanID
			copy(sid[:], hexBytes(t, randomHex(t, 8)))
			s.SetSpanID(sid)
			s.SetParentSpanID(root)
		}
		s.SetTraceID(tid)
		s.SetName("GET /api/v1/cart/{id}")
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i) * time.Microsecond)))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(i)*time.Microsecond + 1500*time.Microsecond)))
		a := s.Attributes()
		a.PutStr("http.request.method", "GET")
		a.PutStr("url.path", "/api/v1/cart/"+strconv.Itoa(1000+i))
		a.PutStr("url.scheme", "http")
		a.PutStr("server.address", "checkout.shop.svc.cluster.local")
		a.PutInt("server.port", 8080)
		a.PutStr("network.protocol.version", "1.1")
		a.PutStr("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)")
		a.PutInt("http.response.status_code", 200)
		a.PutStr("http.route", "/api/v1/cart/{id}")
		a.PutStr("client.address", "10.12.3.4")
	}
	return ptraceotlp.NewExportRequestFromTraces(td), ids
}

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			t.Fatal(err)
		}
		b[i] = byte(v)
	}
	return b
}

// envoyPairs is n Envoy-shaped Zipkin spans (gateway CLIENT, app SERVER
// pairs), one trace per pair; it returns the JSON body and the trace ids.
func envoyPairs(t testing.TB, n int) ([]byte, []string) {
	t.Helper()
	spans := make([]zipkinSpan, 0, n)
	var ids []string
	start := time.Now().Add(-time.Minute)
	for i := 0; len(spans) < n; i++ {
		id := randomHex(t, 16)
		c, s := sidecarPair(t, meshApps[i%len(meshApps)], id, start.Add(time.Duration(i)*time.Millisecond))
		// What else Envoy tags a request with: a browser's user agent,
		// peer and upstream addresses, the zone, the mesh.
		for _, sp := range []zipkinSpan{c, s} {
			sp.Tags["user_agent"] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
			sp.Tags["peer.address"] = "10.244.1.12:48512"
			sp.Tags["upstream_address"] = "10.244.2.31:8000"
			sp.Tags["downstream_cluster"] = "-"
			sp.Tags["zone"] = "europe-west1-b"
			sp.Tags["istio.mesh_id"] = "cluster.local"
			sp.Tags["x-forwarded-for"] = "203.0.113.7"
		}
		spans = append(spans, c, s)
		ids = append(ids, id)
	}
	return zipkinJSON(t, spans[:n]), ids
}

// TestLargeRequestsReachJaeger: requests between Jaeger's 4 MiB gRPC limit
// and traceport's --max-request-bytes (20 MiB) are acknowledged and then
// delivered, each cut to fit, with traceport and Jaeger both at their
// defaults. Jaeger's own receiver counter must count every span (its
// self-tracing is off in this configuration, so nothing else is counted
// there), Jaeger must store every span, and traceport must drop none.
// Delivery is at least once: on a busy machine an export that outlives
// --export-timeout is sent again and Jaeger counts it twice, so the counter
// is checked for at least every span and the duplicates are logged.
// Through jaeger-grpc only the OTLP/gRPC request is sent: the cut is the
// same, the conversion the costly part.
func TestLargeRequestsReachJaeger(t *testing.T) {
	j := startJaeger(t)
	for _, exp := range []struct {
		protocol, endpoint string
		all                bool
	}{
		{"otlp-grpc", j.otlpGRPC(), true},
		{"jaeger-grpc", j.jaegerGRPC(), false},
	} {
		t.Run(exp.protocol, func(t *testing.T) {
			tp := startTraceport(t, "--jaeger", exp.endpoint, "--jaeger-protocol", exp.protocol)
			// Before any span, Jaeger has no such series yet: 0.
			before, _ := j.accepted()
			want := map[string]int{} // service -> spans of this subtest
			traces := map[string]bool{}
			sent := 0

			grpcService := "large-grpc-" + exp.protocol
			grpcReq, grpcIDs := sdkRequest(t, grpcService, 25_000)
			grpcBody, _ := grpcReq.MarshalProto()
			conn, err := grpc.NewClient(tp.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if _, err := ptraceotlp.NewGRPCClient(conn).Export(ctx, grpcReq, grpc.MaxCallSendMsgSize(64<<20)); err != nil {
				t.Fatalf("OTLP/gRPC export of %d bytes: %v", len(grpcBody), err)
			}
			t.Logf("sent OTLP/gRPC: 25000 spans, %.1f MB", float64(len(grpcBody))/1e6)
			want[grpcService], sent = 25_000, 25_000
			checks := []struct {
				ids   []string
				spans int
			}{{grpcIDs, 100}}
			for _, id := range grpcIDs {
				traces[id] = true
			}

			if exp.all {
				httpService := "large-http-" + exp.protocol
				httpReq, httpIDs := sdkRequest(t, httpService, 20_000)
				httpBody, _ := httpReq.MarshalProto()
				tp.post(t, "/v1/traces", "application/x-protobuf", httpBody, http.StatusOK)
				zipkinBody, zipkinIDs := envoyPairs(t, 9_000)
				tp.post(t, "/api/v2/spans", "application/json", zipkinBody, http.StatusAccepted)
				t.Logf("sent OTLP/HTTP: 20000 spans, %.1f MB; Zipkin JSON: 9000 Envoy spans, %.1f MB",
					float64(len(httpBody))/1e6, float64(len(zipkinBody))/1e6)
				want[httpService] = 20_000
				want[gateway] = 4_500
				for i, app := range meshApps {
					want[app.service] += (4_500 - i + len(meshApps) - 1) / len(meshApps)
				}
				sent += 20_000 + 9_000
				checks = append(checks, struct {
					ids   []string
					spans int
				}{httpIDs, 100}, struct {
					ids   []string
					spans int
				}{zipkinIDs, 2})
				for _, id := range append(httpIDs, zipkinIDs...) {
					traces[id] = true
				}
			}

			m := tp.settled(t, 5*time.Minute, float64(sent))
			requireNoDrops(t, m)
			if got := m.sum("traceport_exported_spans_total"); got != float64(sent) {
				t.Fatalf("traceport exported %g spans, want %d", got, sent)
			}
			// Jaeger stores every span: unique (trace, span) ids per
			// service, among this subtest's traces.
			eventually(t, 2*time.Minute, func() error {
				for service, n := range want {
					got, err := j.uniqueStored(service, traces)
					if err != nil {
						return err
					}
					if got != n {
						return fmt.Errorf("jaeger stores %d spans of %s, want %d", got, service, n)
					}
				}
				return nil
			})
			after, err := j.accepted()
			if err != nil {
				t.Fatal(err)
			}
			if after-before < float64(sent) {
				t.Errorf("jaeger's otelcol_receiver_accepted_spans_total grew by %g, want at least %d", after-before, sent)
			}
			t.Logf("%s: sent %d spans; Jaeger's otelcol_receiver_accepted_spans_total +%g (%g sent twice after an export timeout), every span stored; traceport dropped 0, %g batches, %g retries",
				exp.protocol, sent, after-before, after-before-float64(sent), m.sum("traceport_export_batch_spans"), m.sum("traceport_export_retries_total"))

			// And in Jaeger's view by id: the first and last trace of each
			// request, whole.
			for _, c := range checks {
				for _, id := range []string{c.ids[0], c.ids[len(c.ids)-1]} {
					tr, err := j.trace(id)
					if err != nil {
						t.Fatal(err)
					}
					if len(tr.Spans) != c.spans {
						t.Errorf("trace %s: %d spans in Jaeger, want %d", id, len(tr.Spans), c.spans)
					}
				}
			}
			tp.stop()
		})
	}
}

// uniqueStored is how many distinct spans Jaeger stores of service within
// the given traces.
func (j *jaeger) uniqueStored(service string, traces map[string]bool) (int, error) {
	var r struct{ Data []jaegerTrace }
	q := url.Values{"service": {service}, "limit": {"100000"}, "lookback": {"2h"}}
	if err := j.getLong(j.queryURL("/api/traces", q), &r); err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	for _, tr := range r.Data {
		for _, s := range tr.Spans {
			if tid := normTraceID(s.TraceID); traces[tid] && tr.Processes[s.ProcessID].ServiceName == service {
				seen[tid+"/"+normSpanID(s.SpanID)] = true
			}
		}
	}
	return len(seen), nil
}

// getLong is get with a client for answers of many megabytes.
func (j *jaeger) getLong(u string, into any) error {
	short := j.http
	j.http = &http.Client{Timeout: 2 * time.Minute}
	defer func() { j.http = short }()
	return j.get(u, into)
}

// post sends body to path and expects status. Its client waits longer
// than tp.http's 5s: a 10 MB body under the race detector on a busy
// machine may take that long to be read and decoded.
func (tp *traceport) post(t testing.TB, path, contentType string, body []byte, status int) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Post("http://"+tp.addr+path, contentType, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("POST %s: %s: %s", path, resp.Status, msg)
	}
}
