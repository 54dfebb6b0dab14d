package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// jaegerIngesterConfig has the shape of Jaeger v2's
// cmd/jaeger/config-kafka-ingester.yaml: a kafka receiver reading the
// topic from the start into memory storage, and the query API; every
// endpoint on a free loopback port.
const jaegerIngesterConfig = `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [kafka]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger-ingester
    metrics:
      level: basic
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{.Metrics}}
    logs:
      level: info

extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{{.Health}}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{{.Query}}
    grpc:
      endpoint: 127.0.0.1:{{.QueryGRPC}}
    enable_tracing: false
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000

receivers:
  kafka:
    brokers: [{{.Brokers}}]
    traces:
      topic: jaeger-spans
      encoding: {{.Encoding}}
    initial_offset: earliest

processors:
  batch:

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// startJaegerIngester runs Jaeger v2 as a Kafka ingester of brokers.
func startJaegerIngester(t testing.TB, brokers, encoding string) *jaeger {
	t.Helper()
	var p jaegerPorts
	for _, f := range []*int{&p.Query, &p.QueryGRPC, &p.Health, &p.Metrics} {
		*f = freePort(t)
	}
	cfg := jaegerIngesterConfig
	for name, v := range map[string]string{
		"Query": fmt.Sprint(p.Query), "QueryGRPC": fmt.Sprint(p.QueryGRPC), "Health": fmt.Sprint(p.Health),
		"Metrics": fmt.Sprint(p.Metrics), "Brokers": brokers, "Encoding": encoding,
	} {
		cfg = strings.ReplaceAll(cfg, "{{."+name+"}}", v)
	}
	path := filepath.Join(t.TempDir(), "jaeger-ingester.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	j := &jaeger{t: t, ports: p, config: path, http: newJaeger(t).http}
	j.start()
	return j
}

// TestKafkaIngester is the seed's cluster written into Jaeger's own Kafka
// pipeline: traceport --kafka-brokers → Kafka (kfake, the real wire
// protocol, in this process) → a Jaeger v2 ingester reading the same
// encoding → its query API must show every span of every trace and the
// seven gateway edges.
func TestKafkaIngester(t *testing.T) {
	t.Parallel()
	for _, encoding := range []string{"otlp_proto", "jaeger_proto"} {
		t.Run(encoding, func(t *testing.T) {
			t.Parallel()
			kafka, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "jaeger-spans"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kafka.Close)
			brokers := strings.Join(kafka.ListenAddrs(), ",")
			j := startJaegerIngester(t, brokers, encoding)
			tp := startTraceport(t, "--kafka-brokers", brokers, "--kafka-encoding", encoding, "--batch-timeout", "50ms")
			want, traceIDs := meshTraffic(t, tp.postZipkin, tp.addr, tp.addr, true)
			m := tp.settled(t, 30*time.Second, float64(len(want)))
			requireNoDrops(t, m)
			if got := m.sum("traceport_exported_spans_total", "exporter", "kafka"); got != float64(len(want)) {
				t.Errorf("exported{exporter=kafka} %g spans, want %d", got, len(want))
			}
			// waitSpans fetches each trace whole and wants exactly its spans:
			// every trace is complete, nothing extra, parents and services
			// as sent.
			j.waitSpans(t, 60*time.Second, want)
			if len(traceIDs) != len(meshApps) {
				t.Fatalf("%d traces sent, want one per app", len(traceIDs))
			}
			waitEdges(t, j, sevenEdges, appSelfEdges)
			tp.stop()
		})
	}
}
