package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Helm values that render what the kustomize kafka overlay renders.
const helmKafkaValues = `
namespace:
  create: true
kafka:
  brokers: [jaeger-kafka-kafka-bootstrap.kafka.svc.cluster.local:9093]
  strimziTopic:
    enabled: true
`

// kafkaTopic is Strimzi's KafkaTopic (kafka.strimzi.io/v1beta2), the fields
// this repo uses; strict decoding rejects any other.
type kafkaTopic struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		TopicName  string         `json:"topicName,omitempty"`
		Partitions int32          `json:"partitions"`
		Replicas   int32          `json:"replicas"`
		Config     map[string]any `json:"config,omitempty"`
	} `json:"spec"`
}

// destinationPorts are the ports traceport's config sends to: every
// kafka-brokers port, or else the jaeger port.
func destinationPorts(t *testing.T, cfg map[string]any) map[int]bool {
	t.Helper()
	addrs := []string{}
	if b, ok := cfg["kafka-brokers"].(string); ok {
		addrs = strings.Split(b, ",")
		if _, ok := cfg["jaeger"]; ok {
			t.Errorf("config sets both jaeger and kafka-brokers")
		}
	} else {
		jaeger, _ := cfg["jaeger"].(string)
		addrs = append(addrs, jaeger)
	}
	ports := map[int]bool{}
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("destination %q: %v", a, err)
		}
		n, _ := strconv.Atoi(p)
		ports[n] = true
	}
	return ports
}

// fileSettings are the config keys that name files traceport reads.
var fileSettings = []string{"kafka-tls-ca", "kafka-tls-cert", "kafka-tls-key", "kafka-sasl-password-file", "jaeger-tls-ca", "tls-cert", "tls-key", "tls-client-ca"}

// secretMount returns the Secret volume mounted where path lies, or fails.
func secretMount(t *testing.T, ds *appsv1.DaemonSet, path string) (corev1.VolumeMount, *corev1.SecretVolumeSource) {
	t.Helper()
	pod := ds.Spec.Template.Spec
	for _, m := range pod.Containers[0].VolumeMounts {
		if filepath.Dir(path) != filepath.Clean(m.MountPath) {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return m, v.Secret
			}
		}
	}
	t.Fatalf("%s: not in a mounted Secret volume", path)
	return corev1.VolumeMount{}, nil
}

// withSecretFiles rewrites the config's file settings that point into
// mounted Secrets to files in a temporary directory (a CA bundle gets a real
// certificate), so --validate can read them outside the cluster.
func withSecretFiles(t *testing.T, r rendering, raw string) string {
	t.Helper()
	cfg := traceportConfig(t, r)
	ds := r.one(t, "DaemonSet").Typed.(*appsv1.DaemonSet)
	dir := t.TempDir()
	for _, k := range fileSettings {
		path, ok := cfg[k].(string)
		if !ok {
			continue
		}
		secretMount(t, ds, path)
		local := filepath.Join(dir, filepath.Base(path))
		content := []byte("secret\n")
		if strings.HasSuffix(k, "-ca") {
			content = testCA(t)
		}
		if err := os.WriteFile(local, content, 0o600); err != nil {
			t.Fatal(err)
		}
		raw = strings.ReplaceAll(raw, path, local)
	}
	return raw
}

func testCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestKafka: the kafka overlay and the chart with kafka.brokers install the
// same objects; traceport sends to the brokers only (no Jaeger setting, no
// egress to Jaeger), reads its TLS CA and SASL password from the mounted
// Secret, and the topic holds what traceport writes.
func TestKafka(t *testing.T) {
	rs := renderings(t)
	compareSets(t, "kustomize kafka", normalizedSet(t, rs["kustomize-kafka"]), "helm kafka", normalizedSet(t, rs["helm-kafka"]))
	for _, name := range []string{"kustomize-kafka", "helm-kafka"} {
		r := rs[name]
		t.Run(name, func(t *testing.T) {
			cfg := traceportConfig(t, r)
			for _, k := range []string{"kafka-brokers", "kafka-topic", "kafka-tls-ca", "kafka-sasl-mechanism", "kafka-sasl-username", "kafka-sasl-password-file"} {
				if _, ok := cfg[k]; !ok {
					t.Errorf("config lacks %s", k)
				}
			}
			for k := range cfg {
				if strings.HasPrefix(k, "jaeger") {
					t.Errorf("config sets %s beside kafka-brokers", k)
				}
			}
			if _, ok := cfg["kafka-sasl-password"]; ok {
				t.Errorf("the SASL password in the ConfigMap")
			}
			ds := r.one(t, "DaemonSet").Typed.(*appsv1.DaemonSet)
			for _, k := range fileSettings {
				if path, ok := cfg[k].(string); ok {
					m, secret := secretMount(t, ds, path)
					if !m.ReadOnly || secret.SecretName != "traceport-kafka" {
						t.Errorf("%s %s: mount %+v of Secret %q, want read-only traceport-kafka", k, path, m, secret.SecretName)
					}
				}
			}
			np := r.one(t, "NetworkPolicy").Typed.(*networkingv1.NetworkPolicy)
			for _, rule := range np.Spec.Egress {
				for _, peer := range rule.To {
					if peer.PodSelector != nil && peer.PodSelector.MatchLabels["app.kubernetes.io/name"] == "jaeger" {
						t.Errorf("egress to Jaeger's pods with Kafka as the destination: %v", rule)
					}
				}
			}

			topic := r.one(t, "KafkaTopic").Typed.(*kafkaTopic)
			if topic.Name != cfg["kafka-topic"] || topic.Labels["strimzi.io/cluster"] == "" {
				t.Errorf("KafkaTopic %s (cluster %q), traceport writes %v", topic.Name, topic.Labels["strimzi.io/cluster"], cfg["kafka-topic"])
			}
			sp := topic.Spec
			maxMsg, minISR, retention := number(sp.Config["max.message.bytes"]), number(sp.Config["min.insync.replicas"]), number(sp.Config["retention.ms"])
			if sp.Partitions < 1 || sp.Replicas < 1 || maxMsg < 1_000_000 || minISR < 1 || int32(minISR) >= sp.Replicas || retention < float64(time.Hour/time.Millisecond) {
				t.Errorf("KafkaTopic spec %+v: want partitions, replicas > min.insync.replicas >= 1, max.message.bytes >= traceport's 1000000, retention of hours", sp)
			}
		})
	}
}

// number reads a JSON number however the decoder typed it.
func number(v any) float64 {
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	case int:
		return float64(n)
	}
	return 0
}
