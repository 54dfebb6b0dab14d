package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/traceport/traceport/translate"
	"github.com/traceport/traceport/transport"
)

// recordingSink keeps every push; full makes it refuse like a full queue.
type recordingSink struct {
	mu     sync.Mutex
	pushes [][]byte
	spans  int
	full   bool
	// pushFails refuses at Push only: the queue filled between the door
	// and the push.
	pushFails bool
}

var errFull = errors.New("queue full")

func (s *recordingSink) Admit(bool) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.full, 3 * time.Second
}

func (s *recordingSink) Push(data []byte, spans int, _ bool, accounted func()) error {
	defer accounted()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.full || s.pushFails {
		return errFull
	}
	s.pushes = append(s.pushes, data)
	s.spans += spans
	return nil
}

// traces decodes everything pushed so far into one ptrace.Traces.
func (s *recordingSink) traces(t *testing.T) ptrace.Traces {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	all := ptrace.NewTraces()
	for _, p := range s.pushes {
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(p)
		if err != nil {
			t.Fatalf("sink got an undecodable push: %v", err)
		}
		td.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
	}
	return all
}

func (s *recordingSink) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pushes, s.spans = nil, 0
}

type testReceiver struct {
	rc   *Receiver
	sink *recordingSink
	reg  *prometheus.Registry
	addr string
}

// startReceiver serves a receiver on a loopback port for the test's life.
func startReceiver(t *testing.T, cfg Config) *testReceiver {
	t.Helper()
	return startReceiverBudget(t, cfg, 0)
}

// startReceiverBudget is startReceiver with the in-flight byte budget set
// to limit (0: the one New sizes from cfg), without a --memory-limit (whose
// sampling guard would count the test process, not the receiver).
func startReceiverBudget(t *testing.T, cfg Config, limit int64) *testReceiver {
	t.Helper()
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = 1 << 20
	}
	if cfg.MaxServices == 0 {
		cfg.MaxServices = 100
	}
	reg := prometheus.NewRegistry()
	sink := &recordingSink{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var rc *Receiver
	if limit > 0 {
		rc = newReceiver(cfg, transport.NewFixedBudget(limit), sink, reg, reg, log)
	} else {
		rc = New(cfg, sink, reg, reg, log)
	}
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
	return &testReceiver{rc: rc, sink: sink, reg: reg, addr: ln.Addr().String()}
}

// received is traceport_received_spans_total for one source.
func (tr *testReceiver) received(t *testing.T, protocol, encoding, service string) float64 {
	t.Helper()
	return gatherValue(t, tr.reg, "traceport_received_spans_total", map[string]string{"protocol": protocol, "encoding": encoding, "service": service})
}

func (tr *testReceiver) rejected(t *testing.T, protocol string, r reason) float64 {
	t.Helper()
	return testutil.ToFloat64(tr.rc.sources.rejectedRequests.WithLabelValues(protocol, string(r)))
}

// gatherValue finds one sample by name and labels in a registry scrape.
func gatherValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	return 0
}

// clientTransport is one of the three ways a client reaches the one port.
type clientTransport struct {
	name   string
	scheme string
	client *http.Client
	tls    bool
}

// clientHangGuard ends a request to a server that never answers. It is no
// latency bound: a decompression bomb's 413 took over 10 s on a loaded
// 2-core machine under -race.
const clientHangGuard = 2 * time.Minute

func h1Client() *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: clientHangGuard}
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: clientHangGuard}
}

func tlsClient(pool *x509.CertPool, h2 bool) *http.Client {
	var p http.Protocols
	if h2 {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "traceport-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
}

func post(t *testing.T, c *http.Client, url, contentType string, body []byte, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// sharedZipkin lists the field payloads in ../shared/testdata/zipkin (the
// team's, read-only; translate/testdata keeps copies for when shared/ is not
// beside the clone) and the project's own cases, with the path each must be
// posted to.
func sharedZipkin(t *testing.T) map[string]string {
	t.Helper()
	shared, _ := filepath.Glob("../../shared/testdata/zipkin/*.json")
	ours, _ := filepath.Glob("../translate/testdata/zipkin/*.json") // copies of the shared ones, and our own cases
	var out = map[string]string{}
	seen := map[string]bool{}
	for _, f := range append(shared, ours...) {
		if strings.HasSuffix(f, ".golden.json") || seen[filepath.Base(f)] {
			continue
		}
		seen[filepath.Base(f)] = true
		out[f] = "/api/v2/spans"
		if strings.Contains(f, "v1") {
			out[f] = "/api/v1/spans"
		}
	}
	if len(out) < 10 {
		t.Fatalf("found %d Zipkin payloads, want the 6 shared ones and our own", len(out))
	}
	return out
}

// tracesJSON renders traces canonically for comparison.
func tracesJSON(t *testing.T, td ptrace.Traces) string {
	t.Helper()
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestZipkinFieldPayloadsOnEveryTransport posts every field payload to the
// one port over HTTP/1.1, h2c and TLS (h1 and h2), and checks that what
// reaches the sink is exactly what the decoder makes of it (the decoders'
// golden files pin that down) and that the per-source counters moved.
func TestZipkinFieldPayloadsOnEveryTransport(t *testing.T) {
	cert, pool := selfSigned(t)
	plain := startReceiver(t, Config{})
	secure := startReceiver(t, Config{TLS: serverTLS(cert)})
	transports := []struct {
		name string
		tr   *testReceiver
		base string
		c    *http.Client
	}{
		{"http1", plain, "http://" + plain.addr, h1Client()},
		{"h2c", plain, "http://" + plain.addr, h2cClient()},
		{"tls-http1", secure, "https://" + secure.addr, tlsClient(pool, false)},
		{"tls-h2", secure, "https://" + secure.addr, tlsClient(pool, true)},
	}
	for file, path := range sharedZipkin(t) {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var want ptrace.Traces
		if translate.SniffZipkinJSON(body) {
			want, _, err = translate.ZipkinV1JSON(body, translate.ZipkinOptions{})
		} else {
			want, _, err = translate.ZipkinV2JSON(body, translate.ZipkinOptions{})
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		counts, spans := translate.CountTraces(want, nil)
		for _, tp := range transports {
			t.Run(filepath.Base(file)+"/"+tp.name, func(t *testing.T) {
				tp.tr.sink.reset()
				before := map[string]float64{}
				for _, c := range counts {
					before[c.Service] = tp.tr.received(t, protoZipkin, encJSON, c.Service)
				}
				code, msg, _ := post(t, tp.c, tp.base+path, "application/json", body)
				if code != http.StatusAccepted {
					t.Fatalf("status %d (%s), want 202: Envoy counts anything else as a failed report", code, msg)
				}
				got := tp.tr.sink.traces(t)
				if got.SpanCount() != spans {
					t.Fatalf("sink got %d spans, want %d", got.SpanCount(), spans)
				}
				if g, w := tracesJSON(t, got), tracesJSON(t, want); g != w {
					t.Errorf("forwarded spans differ from the decoder's:\n got %s\nwant %s", g, w)
				}
				for _, c := range counts {
					if d := tp.tr.received(t, protoZipkin, encJSON, c.Service) - before[c.Service]; d != float64(c.Spans) {
						t.Errorf("received_spans_total{zipkin,json,%s} grew by %v, want %d", c.Service, d, c.Spans)
					}
				}
			})
		}
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}
