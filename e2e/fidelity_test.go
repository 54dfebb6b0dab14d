package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestReportedFieldsInJaeger: what Zipkin senders report and traceport
// re-shapes is still in Jaeger's view. A shared SERVER span (Envoy's
// shared_span_context) whose CLIENT half never arrives keeps its reported
// parent as a FOLLOWS_FROM reference next to the CHILD_OF reference to the
// shared id; with the CLIENT half there, the SERVER sits under it. The
// Node Zipkin exporter's error message (in the error tag, next to
// otel.status_code) is the span's otel.status_description.
func TestReportedFieldsInJaeger(t *testing.T) {
	j := startJaeger(t)
	tp := startTraceport(t, "--jaeger", j.otlpGRPC(), "--batch-timeout", "50ms")
	now := time.Now().Add(-time.Second).UnixMicro()
	alone, paired, node := randomHex(t, 16), randomHex(t, 16), randomHex(t, 16)
	gatewayID, sharedID, clientParent := randomHex(t, 8), randomHex(t, 8), randomHex(t, 8)
	pairedShared := randomHex(t, 8)
	server := func(traceID, id, parent string) string {
		return fmt.Sprintf(`{"traceId":%q,"id":%q,"parentId":%q,"kind":"SERVER","shared":true,"name":"chat-api.chat.svc.cluster.local:8000/*","timestamp":%d,"duration":2500,"localEndpoint":{"serviceName":"chat-api.chat"},"tags":{"upstream_cluster":"inbound|8000||"}}`,
			traceID, id, parent, now+400)
	}
	client := func(traceID, id, parent string) string {
		return fmt.Sprintf(`{"traceId":%q,"id":%q,"parentId":%q,"kind":"CLIENT","name":"chat-api.chat.svc.cluster.local:8000/*","timestamp":%d,"duration":3000,"localEndpoint":{"serviceName":"character-api.character"},"tags":{"upstream_cluster":"outbound|8000||chat-api.chat.svc.cluster.local"}}`,
			traceID, id, parent, now)
	}
	gateway := fmt.Sprintf(`{"traceId":%q,"id":%q,"kind":"SERVER","name":"ingress","timestamp":%d,"duration":5000,"localEndpoint":{"serviceName":"character-api.character"}}`,
		alone, gatewayID, now-100)
	nodeSpan := fmt.Sprintf(`{"traceId":%q,"id":%q,"kind":"CLIENT","name":"pg.query:SELECT","timestamp":%d,"duration":1200,"localEndpoint":{"serviceName":"orders-node"},"tags":{"otel.status_code":"ERROR","error":"connect ECONNREFUSED 10.0.3.4:5432","db.system":"postgresql"}}`,
		node, randomHex(t, 8), now)
	// The CLIENT half of the first pair is lost; the second pair is whole.
	tp.postZipkin([]byte("[" + gateway + "," + server(alone, sharedID, gatewayID) + "," +
		client(paired, pairedShared, clientParent) + "," + server(paired, pairedShared, clientParent) + "," + nodeSpan + "]"))
	requireNoDrops(t, tp.settled(t, 20*time.Second, 5))

	refs := func(traceID, name, kind string) (map[string]string, jaegerSpan) {
		t.Helper()
		var sp jaegerSpan
		eventually(t, 20*time.Second, func() error {
			tr, err := j.trace(traceID)
			if err != nil {
				return err
			}
			for _, s := range tr.Spans {
				for _, tag := range s.Tags {
					if tag.Key == "span.kind" && fmt.Sprint(tag.Value) == kind && s.OperationName == name {
						sp = s
						return nil
					}
				}
			}
			return fmt.Errorf("trace %s: no %s span %q yet", traceID, kind, name)
		})
		out := map[string]string{}
		for _, r := range sp.References {
			out[normSpanID(r.SpanID)] = r.RefType
		}
		return out, sp
	}

	got, _ := refs(alone, "chat-api.chat.svc.cluster.local:8000/*", "server")
	if got[sharedID] != "CHILD_OF" || got[gatewayID] != "FOLLOWS_FROM" || len(got) != 2 {
		t.Errorf("shared SERVER without its CLIENT half: references %v, want CHILD_OF %s (the shared id) and FOLLOWS_FROM %s (the reported parent)",
			got, sharedID, gatewayID)
	}
	got, _ = refs(paired, "chat-api.chat.svc.cluster.local:8000/*", "server")
	if got[pairedShared] != "CHILD_OF" || got[clientParent] != "FOLLOWS_FROM" {
		t.Errorf("shared SERVER with its CLIENT half: references %v, want CHILD_OF %s (the CLIENT half) and FOLLOWS_FROM %s", got, pairedShared, clientParent)
	}
	_, sp := refs(node, "pg.query:SELECT", "client")
	tags := map[string]string{}
	for _, tag := range sp.Tags {
		tags[tag.Key] = fmt.Sprint(tag.Value)
	}
	if tags["error"] != "true" || tags["otel.status_description"] != "connect ECONNREFUSED 10.0.3.4:5432" {
		t.Errorf("Node exporter's error: Jaeger shows error=%q otel.status_description=%q, want true and the message", tags["error"], tags["otel.status_description"])
	}
	tp.stop()
}
