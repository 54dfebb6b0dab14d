package exporter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gogo/protobuf/jsonpb"
	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

const testTopic = "jaeger-spans"

// traceRequest builds a request of spans spans of service, spread round
// robin over traces traces, so a request interleaves traces as a node's
// pushes do. Trace ids are {seed, trace}; span ids {seed, span}.
func traceRequest(tb testing.TB, service string, seed byte, traces, spans, attrBytes int) []byte {
	tb.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("test")
	start := time.Unix(1_700_000_000, 0)
	for i := range spans {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{seed, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i % traces >> 8), byte(i % traces)})
		s.SetSpanID(pcommon.SpanID{seed, service[0], byte(len(service)), 0, 0, 0, byte(i >> 8), byte(i)})
		s.SetName(fmt.Sprintf("op-%d", i))
		s.SetKind(ptrace.SpanKindServer)
		s.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Millisecond)))
		s.Attributes().PutStr("pad", strings.Repeat("x", attrBytes))
	}
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// newKafka starts an in-process Kafka cluster with the topic, closed at
// cleanup.
func newKafka(tb testing.TB, partitions int32, opts ...kfake.Opt) *kfake.Cluster {
	tb.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(partitions, testTopic)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func kafkaTestConfig(brokers []string, mutate func(*KafkaConfig)) Config {
	cfg := testConfig("", "")
	cfg.Kafka = KafkaConfig{Brokers: brokers}
	if mutate != nil {
		mutate(&cfg.Kafka)
	}
	return cfg
}

// gotSpan is one span read back from the topic.
type gotSpan struct {
	trace, span, name, service string
	key                        string
	partition                  int32
	record                     int // index of the record it came in
}

// readTopic consumes the topic from the start until want spans were read
// (then polls a little longer, to see duplicates) or d passes, and
// decodes every record with encoding.
func readTopic(tb testing.TB, brokers []string, encoding string, want int, d time.Duration, opts ...kgo.Opt) []gotSpan {
	tb.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(testTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	var got []gotSpan
	records := 0
	deadline := time.Now().Add(d)
	extra := 0
	for time.Now().Before(deadline) && extra < 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			for _, s := range decodeRecord(tb, encoding, r.Value) {
				s.key, s.partition, s.record = string(r.Key), r.Partition, records
				got = append(got, s)
			}
			records++
		})
		if len(got) >= want {
			extra++
		}
	}
	return got
}

func decodeRecord(tb testing.TB, encoding string, value []byte) []gotSpan {
	tb.Helper()
	var out []gotSpan
	switch encoding {
	case KafkaOTLPProto, KafkaOTLPJSON:
		var td ptrace.Traces
		var err error
		if encoding == KafkaOTLPProto {
			td, err = (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(value)
		} else {
			td, err = (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(value)
		}
		if err != nil {
			tb.Fatalf("record does not decode as %s: %v", encoding, err)
		}
		for _, rs := range td.ResourceSpans().All() {
			svc, _ := rs.Resource().Attributes().Get("service.name")
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					out = append(out, gotSpan{trace: s.TraceID().String(), span: s.SpanID().String(), name: s.Name(), service: svc.Str()})
				}
			}
		}
	case KafkaJaegerProto, KafkaJaegerJSON:
		var s model.Span
		var err error
		if encoding == KafkaJaegerProto {
			err = s.Unmarshal(value)
		} else {
			err = jsonpb.UnmarshalString(string(value), &s)
		}
		if err != nil {
			tb.Fatalf("record does not decode as %s: %v", encoding, err)
		}
		if s.Process == nil {
			tb.Fatalf("%s record without its process", encoding)
		}
		out = append(out, gotSpan{trace: fmt.Sprintf("%016x%016x", s.TraceID.High, s.TraceID.Low), span: fmt.Sprintf("%016x", uint64(s.SpanID)), name: s.OperationName, service: s.Process.ServiceName})
	}
	return out
}

// sentSpans is what traceRequest put in, as gotSpan without record data.
func sentSpans(tb testing.TB, requests ...[]byte) map[string]gotSpan {
	tb.Helper()
	want := map[string]gotSpan{}
	for _, r := range requests {
		for _, s := range decodeRecord(tb, KafkaOTLPProto, r) {
			want[s.span] = s
		}
	}
	return want
}

// checkRecords checks every span sent arrived exactly once, keyed by its
// trace, each record holding one trace, each trace in one partition.
func checkRecords(tb testing.TB, want map[string]gotSpan, got []gotSpan) {
	tb.Helper()
	seen := map[string]int{}
	recordTrace := map[int]string{}
	tracePartition := map[string]int32{}
	for _, s := range got {
		seen[s.span]++
		w, ok := want[s.span]
		if !ok {
			tb.Errorf("span %s read back was never sent", s.span)
			continue
		}
		if s.trace != w.trace || s.name != w.name || s.service != w.service {
			tb.Errorf("span %s read back as %+v, sent %+v", s.span, s, w)
		}
		if s.key != s.trace {
			tb.Errorf("span %s of trace %s in a record keyed %q", s.span, s.trace, s.key)
		}
		if t, ok := recordTrace[s.record]; ok && t != s.trace {
			tb.Errorf("record %d holds traces %s and %s", s.record, t, s.trace)
		}
		recordTrace[s.record] = s.trace
		if p, ok := tracePartition[s.trace]; ok && p != s.partition {
			tb.Errorf("trace %s in partitions %d and %d", s.trace, p, s.partition)
		}
		tracePartition[s.trace] = s.partition
	}
	for id := range want {
		if seen[id] != 1 {
			tb.Errorf("span %s read back %d times, want once", id, seen[id])
		}
	}
}

func TestKafkaKeysAndPartitions(t *testing.T) {
	c := newKafka(t, 8)
	e, reg := start(t, kafkaTestConfig(c.ListenAddrs(), nil))
	reqs := [][]byte{
		traceRequest(t, "frontend", 1, 20, 100, 10),
		traceRequest(t, "cart", 1, 20, 60, 10), // the same traces, another service
		traceRequest(t, "checkout", 2, 7, 30, 10),
	}
	for _, r := range reqs {
		if err := e.Push(r, len(decodeRecord(t, KafkaOTLPProto, r)), true, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := sentSpans(t, reqs...)
	eventually(t, 20*time.Second, "export", settled(e))
	got := readTopic(t, c.ListenAddrs(), KafkaOTLPProto, len(want), 20*time.Second)
	checkRecords(t, want, got)
	partitions := map[int32]bool{}
	for _, s := range got {
		partitions[s.partition] = true
	}
	if len(partitions) < 3 {
		t.Errorf("27 traces landed in %d of 8 partitions: keys do not spread them", len(partitions))
	}
	m := scrapeIdentity(t, reg)
	if n := m["traceport_exported_spans_total{exporter=kafka}"]; n != 190 {
		t.Errorf("exported{exporter=kafka} = %v, want 190", n)
	}
}

func TestKafkaEncodingsDecodeBack(t *testing.T) {
	for _, enc := range []string{KafkaOTLPProto, KafkaOTLPJSON, KafkaJaegerProto, KafkaJaegerJSON} {
		t.Run(enc, func(t *testing.T) {
			c := newKafka(t, 4)
			e, _ := start(t, kafkaTestConfig(c.ListenAddrs(), func(k *KafkaConfig) { k.Encoding = enc }))
			r1, r2 := traceRequest(t, "frontend", 3, 5, 40, 10), traceRequest(t, "cart", 3, 5, 20, 10)
			for _, r := range [][]byte{r1, r2} {
				if err := e.Push(r, len(decodeRecord(t, KafkaOTLPProto, r)), true, nil); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 20*time.Second, "export", settled(e))
			want := sentSpans(t, r1, r2)
			checkRecords(t, want, readTopic(t, c.ListenAddrs(), enc, len(want), 20*time.Second))
			if s := e.Stats(); s.Exported != 60 {
				t.Errorf("exported %d, want 60: %+v", s.Exported, s)
			}
		})
	}
}

// TestKafkaSplitsAtLimit: a trace larger than the message limit is cut
// into records that each fit, all keyed by the trace; a span that fits no
// record alone is dropped and counted with Kafka's error name.
func TestKafkaSplitsAtLimit(t *testing.T) {
	const limit = 8 << 10
	c := newKafka(t, 4, kfake.BrokerConfigs(map[string]string{"message.max.bytes": fmt.Sprint(limit)}))
	e, reg := start(t, kafkaTestConfig(c.ListenAddrs(), func(k *KafkaConfig) { k.MaxMessageBytes = limit }))
	big := traceRequest(t, "frontend", 4, 1, 100, 500)    // one trace, ~55 KB
	huge := traceRequest(t, "frontend", 5, 1, 1, limit*2) // one span over the limit
	for _, r := range [][]byte{big, huge} {
		if err := e.Push(r, len(decodeRecord(t, KafkaOTLPProto, r)), true, nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "export", settled(e))
	want := sentSpans(t, big)
	got := readTopic(t, c.ListenAddrs(), KafkaOTLPProto, len(want), 20*time.Second,
		kgo.FetchMaxBytes(limit*4), kgo.FetchMaxPartitionBytes(limit*4))
	checkRecords(t, want, got)
	records := map[int]bool{}
	for _, s := range got {
		records[s.record] = true
	}
	if len(records) < 55*1024/limit {
		t.Errorf("a 55 KB trace came in %d records under an %d-byte limit", len(records), limit)
	}
	m := scrapeIdentity(t, reg)
	if n := m["traceport_dropped_spans_total{reason=non_retryable}"]; n != 1 {
		t.Errorf("dropped{non_retryable} = %v, want the 1 oversized span", n)
	}
	if n := m["traceport_export_failures_total{code=MESSAGE_TOO_LARGE,exporter=kafka}"]; n < 1 {
		t.Errorf("no export failure counted as MESSAGE_TOO_LARGE: %v", m)
	}
}

func TestKafkaAcks(t *testing.T) {
	for _, acks := range []string{"all", "leader", "none"} {
		t.Run(acks, func(t *testing.T) {
			c := newKafka(t, 2)
			e, _ := start(t, kafkaTestConfig(c.ListenAddrs(), func(k *KafkaConfig) { k.Acks = acks; k.Compression = "zstd" }))
			r := traceRequest(t, "frontend", 6, 3, 30, 10)
			if err := e.Push(r, 30, true, nil); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, "export", settled(e))
			want := sentSpans(t, r)
			checkRecords(t, want, readTopic(t, c.ListenAddrs(), KafkaOTLPProto, len(want), 20*time.Second))
		})
	}
}

func TestKafkaSASL(t *testing.T) {
	for _, mech := range []string{SASLPlain, SASLScramSHA256, SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c := newKafka(t, 2, kfake.EnableSASL(), kfake.Superuser(mech, "traceport", "s3cret"))
			sasl := func(k *KafkaConfig) { k.SASL, k.SASLUser, k.SASLPassword = mech, "traceport", "s3cret" }
			e, _ := start(t, kafkaTestConfig(c.ListenAddrs(), sasl))
			r := traceRequest(t, "frontend", 7, 3, 12, 10)
			if err := e.Push(r, 12, true, nil); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, "export", settled(e))
			if s := e.Stats(); s.Exported != 12 {
				t.Fatalf("exported %d of 12 with the right password: %+v", s.Exported, s)
			}

			// kfake closes the connection on a wrong password (a real broker
			// answers SASL_AUTHENTICATION_FAILED, which kerr marks final):
			// to the client that is a broker it cannot reach, retried until
			// retry-max-elapsed, then dropped as export_failed, never exported.
			cfg := kafkaTestConfig(c.ListenAddrs(), func(k *KafkaConfig) { sasl(k); k.SASLPassword = "wrong" })
			cfg.RetryMaxElapsed = 3 * time.Second
			wrong, reg := start(t, cfg)
			if err := wrong.Push(r, 12, true, nil); err != nil {
				t.Fatal(err)
			}
			eventually(t, 20*time.Second, "export", settled(wrong))
			scrapeIdentity(t, reg)
			if s := wrong.Stats(); s.Exported != 0 || s.Retries == 0 || s.Dropped[ReasonExportFailed] != 12 {
				t.Errorf("wrong password: want 12 retried then dropped as export_failed, got %+v", s)
			}
		})
	}
}

func TestKafkaTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	c := newKafka(t, 2, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	e, _ := start(t, kafkaTestConfig(c.ListenAddrs(), func(k *KafkaConfig) {
		k.TLS = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}))
	r := traceRequest(t, "frontend", 8, 3, 12, 10)
	if err := e.Push(r, 12, true, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "export", settled(e))
	want := sentSpans(t, r)
	checkRecords(t, want, readTopic(t, c.ListenAddrs(), KafkaOTLPProto, len(want), 20*time.Second,
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})))

	// Plaintext against a TLS listener never gets an answer: retried,
	// not dropped, until retry-max-elapsed.
	plain, _ := start(t, kafkaTestConfig(c.ListenAddrs(), nil))
	if err := plain.Push(r, 12, true, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a retry", func() bool { return plain.Stats().Retries > 0 })
	if s := plain.Stats(); s.Exported != 0 || s.Dropped[ReasonNonRetryable] != 0 {
		t.Errorf("plaintext to a TLS broker: %+v", s)
	}
}

func selfSigned(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestKafkaUnknownTopic: with auto-creation off (kfake's default), a
// missing topic drops the batch at once, named by Kafka's error.
func TestKafkaUnknownTopic(t *testing.T) {
	c := newKafka(t, 2)
	e, reg := start(t, kafkaTestConfig(c.ListenAddrs(), func(k *KafkaConfig) { k.Topic = "no-such-topic" }))
	if err := e.Push(traceRequest(t, "frontend", 9, 3, 12, 10), 12, true, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "export", settled(e))
	m := scrapeIdentity(t, reg)
	if s := e.Stats(); s.Dropped[ReasonNonRetryable] != 12 {
		t.Errorf("want 12 dropped as non_retryable, got %+v", s)
	}
	if n := m["traceport_export_failures_total{code=UNKNOWN_TOPIC_OR_PARTITION,exporter=kafka}"]; n != 1 {
		t.Errorf("failures{code=UNKNOWN_TOPIC_OR_PARTITION} = %v, want 1 (dropped at once, not retried)", n)
	}
}

func TestKafkaConfigErrors(t *testing.T) {
	f := func(mutate func(*Config), want string) {
		t.Helper()
		cfg := kafkaTestConfig([]string{"127.0.0.1:9092"}, nil)
		mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %q, got %v", want, err)
		}
	}
	f(func(c *Config) { c.Endpoint = "jaeger:4317" }, "jaeger and kafka-brokers")
	f(func(c *Config) { c.Kafka.Brokers = []string{"broker"} }, "kafka-brokers \"broker\"")
	f(func(c *Config) { c.Kafka.Encoding = "avro" }, "kafka-encoding \"avro\"")
	f(func(c *Config) { c.Kafka.Compression = "brotli" }, "kafka-compression")
	f(func(c *Config) { c.Kafka.Acks = "2" }, "kafka-acks")
	f(func(c *Config) { c.Kafka.MaxMessageBytes = 100 }, "kafka-max-message-bytes 100: cannot hold one span")
	f(func(c *Config) { c.Kafka.SASL = "GSSAPI" }, "kafka-sasl-mechanism")
	f(func(c *Config) { c.Kafka.SASL = SASLPlain }, "kafka-sasl-username")
	cfg := kafkaTestConfig([]string{"127.0.0.1:9092"}, nil)
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// TestTraceKeyMatchesCollector pins the key to what the Collector's kafka
// exporter writes with partition_traces_by_id: pcommon.TraceID.String().
func TestTraceKeyMatchesCollector(t *testing.T) {
	id := pcommon.TraceID{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}
	if got, want := string(traceKey(id)), id.String(); got != want {
		t.Errorf("key %q, the Collector writes %q", got, want)
	}
	if got, want := string(jaegerKey(model.TraceID{High: 0x0001020304050607, Low: 0x08090a0b0c0d0eff})), hex.EncodeToString(id[:]); got != want {
		t.Errorf("jaeger key %q, want %q", got, want)
	}
}

// TestKafkaTopicAuthorizationFailed: a user without Write on the topic
// gets the batch dropped at once, named by Kafka's error, not retried.
func TestKafkaTopicAuthorizationFailed(t *testing.T) {
	c := newKafka(t, 2, kfake.EnableSASL(), kfake.EnableACLs(), kfake.Superuser(SASLPlain, "admin", "admin"),
		kfake.User(SASLPlain, "reader", "pw", kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: testTopic,
			Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true}))
	e, reg := start(t, kafkaTestConfig(c.ListenAddrs(), func(k *KafkaConfig) {
		k.SASL, k.SASLUser, k.SASLPassword, k.Acks = SASLPlain, "reader", "pw", "leader"
	}))
	if err := e.Push(traceRequest(t, "frontend", 10, 3, 12, 10), 12, true, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "export", settled(e))
	m := scrapeIdentity(t, reg)
	if s := e.Stats(); s.Dropped[ReasonNonRetryable] != 12 || s.Retries != 0 {
		t.Errorf("want 12 dropped as non_retryable without a retry, got %+v", s)
	}
	if n := m["traceport_export_failures_total{code=TOPIC_AUTHORIZATION_FAILED,exporter=kafka}"]; n != 1 {
		t.Errorf("failures{code=TOPIC_AUTHORIZATION_FAILED} = %v, want 1: %v", n, m)
	}
}

// TestKafkaSlowBroker: the broker holds the first produce request until
// three export attempts have timed out. The records it holds are waited
// for, not produced again: every span is in the topic exactly once, each
// timed-out attempt is a retry counted as "timeout", and nothing is dropped.
func TestKafkaSlowBroker(t *testing.T) {
	c := newKafka(t, 4)
	release := make(chan struct{})
	var held atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if held.CompareAndSwap(false, true) {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false // then handled as usual
	})
	cfg := kafkaTestConfig(c.ListenAddrs(), nil)
	cfg.Timeout = 200 * time.Millisecond
	e, reg, planned := startPlanning(t, cfg)
	reqs := [][]byte{traceRequest(t, "frontend", 7, 10, 40, 10), traceRequest(t, "cart", 8, 10, 40, 10)}
	for _, r := range reqs {
		if err := e.Push(r, 40, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "three timed-out attempts", func() bool { return len(planned()) >= 3 })
	close(release)
	eventually(t, 20*time.Second, "export", settled(e))
	want := sentSpans(t, reqs...)
	checkRecords(t, want, readTopic(t, c.ListenAddrs(), KafkaOTLPProto, len(want), 20*time.Second))
	m := scrapeIdentity(t, reg)
	if n := m["traceport_exported_spans_total{exporter=kafka}"]; n != 80 {
		t.Errorf("exported %v, want 80", n)
	}
	if n := m["traceport_export_failures_total{code=timeout,exporter=kafka}"]; n < 3 {
		t.Errorf("export failures{code=timeout} = %v, want at least 3", n)
	}
	if s := e.Stats(); len(s.Dropped) > 0 {
		for r, n := range s.Dropped {
			if n > 0 {
				t.Errorf("dropped %d spans as %v", n, r)
			}
		}
	}
}
