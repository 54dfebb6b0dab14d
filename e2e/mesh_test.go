package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// sevenEdges is what Jaeger's dependency graph must show between services
// for the seed's cluster: the gateway calling each app.
var sevenEdges = func() []string {
	var e []string
	for _, app := range meshApps {
		e = append(e, gateway+" -> "+app.service)
	}
	sort.Strings(e)
	return e
}()

// appSelfEdges are the same-service links Jaeger v2's memory storage adds
// (v1.76.0 does not skip them): the app SDK's SERVER span under its
// sidecar's SERVER span, and its CLIENT span under that, share the service
// name the sidecar reports. They say nothing about the mesh; the tests
// check them only so the graph is pinned down exactly.
var appSelfEdges = func() []string {
	var e []string
	for _, app := range meshApps {
		e = append(e, app.service+" -> "+app.service)
	}
	sort.Strings(e)
	return e
}()

// meshTraffic sends one request's worth of the seed's traffic per app: the
// gateway's CLIENT and the sidecar's SERVER span as Envoy's Zipkin JSON (all
// apps in one POST, as Envoy batches) when withSidecars, and the app SDK's
// spans as children of the sidecar span through a real OTel SDK exporter —
// gRPC for even apps, HTTP for odd ones. It returns every span sent, keyed
// "traceid/spanid", and the trace ids.
func meshTraffic(t testing.TB, postZipkin func([]byte), grpcEndpoint, httpEndpoint string, withSidecars bool) (map[string]storedSpan, []string) {
	t.Helper()
	want := map[string]storedSpan{}
	var traceIDs []string
	var sidecars []zipkinSpan
	start := time.Now().Add(-2 * time.Second)
	for i, app := range meshApps {
		traceID := randomHex(t, 16)
		traceIDs = append(traceIDs, traceID)
		client, server := sidecarPair(t, app, traceID, start)
		if withSidecars {
			sidecars = append(sidecars, client, server)
			want[traceID+"/"+client.ID] = client.stored("http.url", "upstream_cluster", "guid:x-request-id")
			want[traceID+"/"+server.ID] = server.stored("http.url", "upstream_cluster", "istio.namespace")
		}
		protocol, endpoint := "grpc", grpcEndpoint
		if i%2 == 1 {
			protocol, endpoint = "http", httpEndpoint
		}
		sdk := newSDKSender(t, protocol, endpoint, app.service)
		for _, s := range sdk.handle(t, app.service, app.path, traceID, server.ID) {
			want[s.TraceID+"/"+s.SpanID] = s
		}
		sdk.flush(t)
	}
	if withSidecars {
		postZipkin(zipkinJSON(t, sidecars))
	}
	return want, traceIDs
}

// TestJaegerDirect sends the seed's traffic straight to Jaeger's own Zipkin
// and OTLP receivers: the baseline traceport must reproduce, and a check of
// this harness and its fixture.
func TestJaegerDirect(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	post := func(body []byte) {
		t.Helper()
		resp, err := http.Post("http://"+j.zipkin()+"/api/v2/spans", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("Jaeger's Zipkin receiver: %s: %s", resp.Status, msg)
		}
	}
	want, _ := meshTraffic(t, post, j.otlpGRPC(), j.otlpHTTP(), true)
	j.waitSpans(t, 30*time.Second, want)
	waitEdges(t, j, sevenEdges, appSelfEdges)
}

// TestMeshScenario is the seed's cluster: Istio's Envoys report Zipkin and
// the apps' SDKs report OTLP over gRPC and HTTP, all to traceport's one
// port. Jaeger must end up with every span, under the right service and
// parent, and the seven gateway edges. Without the sidecar spans Jaeger's
// graph has no edge between services, and traceport's per-protocol
// counters show why.
func TestMeshScenario(t *testing.T) {
	t.Parallel()
	f := func(t *testing.T, withSidecars bool) (*jaeger, metrics) {
		t.Helper()
		j := startJaeger(t)
		tp := startTraceport(t, "--jaeger", j.otlpGRPC(), "--batch-timeout", "50ms")
		want, _ := meshTraffic(t, tp.postZipkin, tp.addr, tp.addr, withSidecars)
		m := tp.settled(t, 20*time.Second, float64(len(want)))
		requireNoDrops(t, m)
		if got := m.sum("traceport_exported_spans_total"); got != float64(len(want)) {
			t.Errorf("exported %g spans, want %d", got, len(want))
		}
		j.waitSpans(t, 10*time.Second, want)
		// Four apps report over gRPC, three over HTTP, two spans each.
		for protocol, n := range map[string]float64{"otlp_grpc": 8, "otlp_http": 6} {
			if got := m.sum("traceport_received_spans_total", "protocol", protocol); got != n {
				t.Errorf("received{protocol=%q} = %g, want %g", protocol, got, n)
			}
		}
		services, err := j.services()
		if err != nil {
			t.Fatal(err)
		}
		for _, app := range meshApps {
			if !slices.Contains(services, app.service) {
				t.Errorf("Jaeger's services %v lack %s", services, app.service)
			}
		}
		return j, m
	}

	t.Run("with sidecars", func(t *testing.T) {
		j, m := f(t, true)
		if got := m.sum("traceport_received_spans_total", "protocol", "zipkin"); got != 14 {
			t.Errorf("received{protocol=zipkin} = %g, want 14", got)
		}
		if got := m.sum("traceport_received_spans_total", "protocol", "zipkin", "service", gateway); got != 7 {
			t.Errorf("received{protocol=zipkin,service=%s} = %g, want 7", gateway, got)
		}
		for _, app := range meshApps {
			if got := m.sum("traceport_received_spans_total", "protocol", "zipkin", "service", app.service); got != 1 {
				t.Errorf("received{protocol=zipkin,service=%s} = %g, want 1 (its sidecar's)", app.service, got)
			}
		}
		waitEdges(t, j, sevenEdges, appSelfEdges)
	})

	t.Run("without sidecars", func(t *testing.T) {
		j, m := f(t, false)
		// The symptom in Jaeger: every app span is there, yet no service
		// calls another.
		// The cause in traceport: nothing ever came in over Zipkin, for any
		// service — the sidecars are not reporting to it.
		if got := m.sum("traceport_received_spans_total", "protocol", "zipkin"); got != 0 {
			t.Errorf("received{protocol=zipkin} = %g, want 0", got)
		}
		for _, app := range meshApps {
			if got := m.sum("traceport_received_spans_total", "service", app.service); got != 2 {
				t.Errorf("received{service=%s} = %g, want 2 (the SDK's)", app.service, got)
			}
		}
		for _, s := range m["traceport_last_received_timestamp_seconds"].GetMetric() {
			if labelValue(s, "protocol") == "zipkin" {
				t.Errorf("last_received_timestamp_seconds has a zipkin series: %v", s)
			}
		}
		// No edge between services at all: each app's SERVER span points
		// at a sidecar span Jaeger never got.
		waitEdges(t, j, nil, appSelfEdges)
		t.Logf("received by protocol: %v", m.by("traceport_received_spans_total", "protocol"))
	})
}

// waitEdges polls Jaeger's dependency graph until its edges between
// services are exactly cross and its same-service edges exactly self.
func waitEdges(t testing.TB, j *jaeger, cross, self []string) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		edges, err := j.dependencies()
		if err != nil {
			return err
		}
		var gotCross, gotSelf []string
		for _, e := range edges {
			if parent, child, _ := strings.Cut(e, " -> "); parent == child {
				gotSelf = append(gotSelf, e)
			} else {
				gotCross = append(gotCross, e)
			}
		}
		if !slices.Equal(gotCross, cross) || !slices.Equal(gotSelf, self) {
			return fmt.Errorf("dependencies:\n  %s\nwant between services:\n  %s\nand within services:\n  %s",
				strings.Join(edges, "\n  "), strings.Join(cross, "\n  "), strings.Join(self, "\n  "))
		}
		return nil
	})
}
