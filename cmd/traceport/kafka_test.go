package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestKafkaValidate: bad --kafka-* settings fail --validate with an error
// naming the flag; the SASL password is never printed.
func TestKafkaValidate(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "password")
	os.WriteFile(pwFile, []byte("hunter2-secret\n"), 0o600)
	f := func(args []string, environ map[string]string, wantCode int, want string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(append(args, "--validate"), env(environ), &out, &errOut)
		if code != wantCode || !strings.Contains(errOut.String()+out.String(), want) {
			t.Errorf("%v: exit %d, want %d with %q; got: %s%s", args, code, wantCode, want, out.String(), errOut.String())
		}
		if strings.Contains(errOut.String()+out.String(), "hunter2") {
			t.Errorf("%v: the password is echoed: %s%s", args, out.String(), errOut.String())
		}
	}
	f([]string{"--kafka-brokers", "k1:9092,k2:9092"}, nil, 0, "configuration is valid")
	f([]string{"--kafka-brokers", ""}, nil, 2, "kafka-brokers: empty broker list")
	f([]string{"--kafka-brokers", " , "}, nil, 2, "kafka-brokers: empty broker list")
	f([]string{"--kafka-brokers", "k1"}, nil, 2, `kafka-brokers "k1"`)
	f([]string{"--kafka-brokers", "k1:9092", "--jaeger", "jaeger:4317"}, nil, 2, "jaeger and kafka-brokers")
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-encoding", "avro"}, nil, 2, `kafka-encoding "avro"`)
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-max-message-bytes", "200"}, nil, 2, "kafka-max-message-bytes 200: cannot hold one span")
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-acks", "2"}, nil, 2, `kafka-acks "2"`)
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u"}, nil, 2, "needs kafka-sasl-password-file or kafka-sasl-password-env")
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u", "--kafka-sasl-password-file", pwFile}, nil, 0, "configuration is valid")
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-username", "u", "--kafka-sasl-password-env", "KAFKA_PW"}, nil, 2, "KAFKA_PW is empty or unset")
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-username", "u", "--kafka-sasl-password-env", "KAFKA_PW"}, map[string]string{"KAFKA_PW": "hunter2-secret"}, 0, "configuration is valid")
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-sasl-mechanism", "GSSAPI", "--kafka-sasl-username", "u", "--kafka-sasl-password-file", pwFile}, nil, 2, `kafka-sasl-mechanism "GSSAPI"`)
	f([]string{"--kafka-brokers", "k1:9092", "--kafka-tls-ca", "/nonexistent/ca.pem"}, nil, 2, "kafka-tls-ca")
}

// TestKafkaFromEnvAndFile: the --kafka-* settings come from the
// environment and the YAML file as every other flag, a broker list as a
// YAML list or a comma-separated string.
func TestKafkaFromEnvAndFile(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "password")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	file := filepath.Join(t.TempDir(), "traceport.yaml")
	os.WriteFile(file, []byte(`
kafka-brokers: [kafka-0.kafka:9092, "kafka-1.kafka:9092"]
kafka-encoding: jaeger_proto
kafka-sasl-mechanism: SCRAM-SHA-256
kafka-sasl-username: traceport
kafka-sasl-password-file: `+pwFile+`
`), 0o644)
	cfg, err := loadConfig([]string{"--config", file}, env(map[string]string{"TRACEPORT_KAFKA_TOPIC": "spans", "TRACEPORT_KAFKA_ACKS": "leader"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	k, err := cfg.kafkaConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(k.Brokers, []string{"kafka-0.kafka:9092", "kafka-1.kafka:9092"}) || k.Encoding != "jaeger_proto" || k.Topic != "spans" || k.Acks != "leader" ||
		k.SASL != "SCRAM-SHA-256" || k.SASLUser != "traceport" || k.SASLPassword != "s3cret" || k.MaxMessageBytes != 1_000_000 {
		t.Errorf("kafka config: %+v", k)
	}
	cfg, err = loadConfig(nil, env(map[string]string{"TRACEPORT_KAFKA_BROKERS": "a:1,b:2"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := cfg.kafkaConfig(); !slices.Equal(k.Brokers, []string{"a:1", "b:2"}) || k.Topic != "jaeger-spans" || k.Encoding != "otlp_proto" {
		t.Errorf("from the environment: %+v", k)
	}
}

// TestDoctorWithKafka: with Kafka as the destination, `traceport doctor`
// sees every probe counted and exported (traceport_exported_spans_total
// {exporter="kafka"}), as with Jaeger.
func TestDoctorWithKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "jaeger-spans"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := defaultConfig()
	cfg.Kafka.Brokers.Set(strings.Join(c.ListenAddrs(), ","))
	cfg.BatchTimeout = 10 * time.Millisecond
	addr := startInProcess(t, cfg)
	code, out := doctorRun(t, "--endpoint", addr, "--timeout", "15s")
	if code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	for _, p := range []string{"zipkin json", "zipkin proto", "otlp grpc", "otlp http"} {
		if l := line(out, p); !strings.HasPrefix(l, "✓") || !strings.Contains(l, "counted, exported") {
			t.Errorf("%s: %q, want ✓ … counted, exported", p, l)
		}
	}
}
