package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/traceport/traceport/diagnosis"
	"github.com/traceport/traceport/exporter"
	"github.com/traceport/traceport/internal/pathcut"
	"github.com/traceport/traceport/receiver"
	"github.com/traceport/traceport/topology"
)

// startInProcess runs traceport as serve() wires it, on a loopback port:
// exporter (cfg's), trace health, pages, receiver. It returns the address.
func startInProcess(t *testing.T, cfg Config) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	exp, err := exporter.New(cfg.exporterConfig(nil), reg, log)
	if err != nil {
		t.Fatal(err)
	}
	exp.Start()
	topo := topology.New(topology.Config{Grace: time.Second, MaxNames: cfg.MaxServices}, reg)
	pages := http.NewServeMux()
	rcfg := cfg.receiverConfig(nil)
	rcfg.Observer, rcfg.Pages, rcfg.Accounts = topo, pages, exp.Accounts()
	rc := receiver.New(rcfg, exp, reg, reg, log)
	diagnosis.New(diagnosis.Config{SilenceAfter: time.Minute}, topo, sourceTable{rc}).Register(pages)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go rc.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		rc.Shutdown(ctx)
		exp.Shutdown(ctx)
	})
	return ln.Addr().String()
}

func doctorRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runDoctor(args, &out, &errOut)
	t.Logf("traceport doctor %s → %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String()
}

// line returns the output line of one path.
func line(out, path string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " "+path+" ") {
			return l
		}
	}
	return ""
}

func TestDoctor(t *testing.T) {
	healthy := startInProcess(t, defaultConfig())
	paths := []string{"zipkin json", "zipkin proto", "otlp grpc", "otlp http"}

	t.Run("healthy", func(t *testing.T) {
		code, out := doctorRun(t, "--endpoint", healthy, "--timeout", "5s")
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		for _, p := range paths {
			if l := line(out, p); !strings.HasPrefix(l, "✓") || !strings.Contains(l, "counted, exported") {
				t.Errorf("%s: %q, want ✓ … counted, exported", p, l)
			}
		}
	})

	t.Run("zipkin path cut", func(t *testing.T) {
		code, out := doctorRun(t, "--endpoint", pathcut.Zipkin(t, healthy), "--timeout", "3s")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, p := range paths[:2] {
			if l := line(out, p); !strings.HasPrefix(l, "✗") || !strings.Contains(l, "connection closed before a reply") {
				t.Errorf("%s: %q, want ✗ connection closed before a reply", p, l)
			}
		}
		for _, p := range paths[2:] {
			if l := line(out, p); !strings.HasPrefix(l, "✓") {
				t.Errorf("%s: %q, want ✓", p, l)
			}
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		code, out := doctorRun(t, "--endpoint", addr, "--timeout", "2s")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, p := range paths {
			if l := line(out, p); !strings.HasPrefix(l, "✗") || !strings.Contains(l, "connection refused: nothing listens on "+addr+", or a NetworkPolicy or Service port blocks") {
				t.Errorf("%s: %q, want ✗ connection refused …", p, l)
			}
		}
	})

	t.Run("wrong content type", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "unsupported media type", http.StatusUnsupportedMediaType)
		}))
		defer srv.Close()
		code, out := doctorRun(t, "--endpoint", strings.TrimPrefix(srv.URL, "http://"), "--timeout", "2s")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if l := line(out, "zipkin json"); !strings.Contains(l, "HTTP 415: wrong content type") {
			t.Errorf("zipkin json: %q, want HTTP 415: wrong content type", l)
		}
	})

	t.Run("not exported", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := ln.Addr().String()
		ln.Close()
		cfg := defaultConfig()
		cfg.Jaeger = dead
		cfg.RetryInitialInterval, cfg.RetryMaxInterval, cfg.RetryMaxElapsed = 50*time.Millisecond, 100*time.Millisecond, 300*time.Millisecond
		cfg.ExportTimeout, cfg.BatchTimeout = 200*time.Millisecond, 10*time.Millisecond
		code, out := doctorRun(t, "--endpoint", startInProcess(t, cfg), "--timeout", "3s")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, p := range paths {
			if l := line(out, p); !strings.HasPrefix(l, "✗") || !strings.Contains(l, "accepted but not exported") || !strings.Contains(l, "traceport → Jaeger fails") {
				t.Errorf("%s: %q, want ✗ accepted but not exported: traceport → Jaeger fails …", p, l)
			}
		}
	})

	t.Run("usage", func(t *testing.T) {
		if code, _ := doctorRun(t, "--endpoint", "nocolon"); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
	})
}

// TestDoctorNotTraceport points the doctor at real servers that are not
// traceport. Every path must get a cause in words, the exit status must be
// 1, and the doctor must return as soon as every send failed: its
// --timeout is ten minutes, the test gives it one, and it must not have
// polled /api/sources or /metrics at all.
func TestDoctorNotTraceport(t *testing.T) {
	paths := []string{"zipkin json", "zipkin proto", "otlp grpc", "otlp http"}
	f := func(name, endpoint string, want map[string]string, gets func() int) {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			d, _ := newDoctor([]string{"--endpoint", endpoint, "--timeout", "10m"}, &errOut)
			done := make(chan int, 1)
			go func() { done <- d.run(&out) }()
			var code int
			select {
			case code = <-done:
			case <-time.After(time.Minute):
				t.Fatalf("doctor still running after 1 min with --timeout 10m: it waits for its timeout")
			}
			t.Logf("traceport doctor --endpoint %s → %d\n%s", endpoint, code, out.String())
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if d.polls != 0 {
				t.Errorf("polled /api/sources and /metrics %d times after every send had failed, want 0", d.polls)
			}
			if gets != nil {
				if n := gets(); n != 2 {
					t.Errorf("%d GETs of /api/sources and /metrics, want 2 (one each, before the probes)", n)
				}
			}
			for _, p := range paths {
				l := line(out.String(), p)
				if !strings.HasPrefix(l, "✗") || !strings.Contains(l, want[p]) {
					t.Errorf("%s: %q, want ✗ … %s", p, l, want[p])
				}
				for _, raw := range []string{"frame too large", "looked like an HTTP/1.1 header", "malformed HTTP", "<!DOCTYPE", "send failed"} {
					if strings.Contains(l, raw) {
						t.Errorf("%s: %q shows a raw error (%s) instead of a cause", p, l, raw)
					}
				}
			}
		})
	}

	// A plain web server: net/http, HTTP/1 only, with a Server header.
	web := func(code int, server string) (string, func() int) {
		var mu sync.Mutex
		gets := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				mu.Lock()
				gets++
				mu.Unlock()
			}
			w.Header().Set("Server", server)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			io.WriteString(w, "<!DOCTYPE HTML>\n<html><body>Error</body></html>\n")
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://"), func() int { mu.Lock(); defer mu.Unlock(); return gets }
	}
	notTP := func(server string, code int) map[string]string {
		status := fmt.Sprintf("%d (%s)", code, http.StatusText(code))
		return map[string]string{
			"zipkin json":  "not traceport: " + strconv.Quote(server) + " answered " + status + " for POST /api/v2/spans",
			"zipkin proto": "not traceport: " + strconv.Quote(server) + " answered " + status + " for POST /api/v2/spans",
			"otlp http":    "not traceport: " + strconv.Quote(server) + " answered " + status + " for POST /v1/traces",
			"otlp grpc":    "not traceport: an HTTP/1 server (" + strconv.Quote(server) + ") answered where gRPC (HTTP/2) was expected",
		}
	}
	for _, c := range []struct {
		code   int
		server string
	}{{404, "nginx/1.25.3"}, {405, "Apache/2.4.62"}, {501, "SimpleHTTP/0.6 Python/3.11.2"}} {
		addr, gets := web(c.code, c.server)
		f(fmt.Sprintf("web server %d", c.code), addr, notTP(c.server, c.code), gets)
	}

	// Python's http.server as it answers on the wire: HTTP/1.0 with a
	// status line to HTTP/1.x requests, and to "PRI * HTTP/2.0" (taken for
	// HTTP/0.9) an error page without one.
	py, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { py.Close() })
	go func() {
		for {
			c, err := py.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				line, _ := bufio.NewReader(c).ReadString('\n')
				page := "<!DOCTYPE HTML>\n<html><body>Error response</body></html>\n"
				if strings.HasPrefix(line, "PRI ") {
					io.WriteString(c, page)
					return
				}
				code := "501 Unsupported method ('POST')"
				if strings.HasPrefix(line, "GET ") {
					code = "404 File not found"
				}
				io.WriteString(c, "HTTP/1.0 "+code+"\r\nServer: SimpleHTTP/0.6 Python/3.11.7\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"+page)
			}()
		}
	}()
	f("python http.server", py.Addr().String(), notTP("SimpleHTTP/0.6 Python/3.11.7", 501), nil)

	// A plain TCP echo.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				io.Copy(c, c)
			}()
		}
	}()
	echo := "not traceport: " + ln.Addr().String() + " sent the request's own bytes back"
	f("tcp echo", ln.Addr().String(), map[string]string{"zipkin json": echo, "zipkin proto": echo, "otlp http": echo, "otlp grpc": echo}, nil)

	// A TLS server where the pods send plaintext.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(tlsSrv.Close)
	mismatch := "TLS vs plaintext mismatch: " + tlsSrv.Listener.Addr().String() + " completed a TLS handshake"
	f("tls server", tlsSrv.Listener.Addr().String(), map[string]string{"zipkin json": mismatch, "zipkin proto": mismatch, "otlp http": mismatch, "otlp grpc": mismatch}, nil)
}

func TestIndexPage(t *testing.T) {
	addr := startInProcess(t, defaultConfig())
	body := `[{"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","kind":"CLIENT","name":"x","timestamp":1700000000000000,"duration":2,"localEndpoint":{"serviceName":"istio-ingressgateway.istio-system"},"tags":{"upstream_cluster":"outbound|8000||auth-api.auth.svc.cluster.local"}},
{"traceId":"5af7183fb1d4cf5f","id":"7b221d5bc9e6496c","parentId":"6b221d5bc9e6496c","kind":"SERVER","name":"x","timestamp":1700000000000000,"duration":1,"localEndpoint":{"serviceName":"auth-api.auth"}}]`
	resp, err := http.Post("http://"+addr+"/api/v2/spans", "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("zipkin: %v %v", err, resp)
	}
	resp.Body.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %s %s", path, resp.Status, b)
		}
		return string(b)
	}
	page := get("/")
	for _, want := range []string{
		`<svg xmlns="http://www.w3.org/2000/svg" id="dependency-graph"`,
		`class="edge linked" data-parent="istio-ingressgateway.istio-system" data-child="auth-api.auth"`,
		`<table id="sources">`, `data-service="auth-api.auth" data-protocol="zipkin"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("GET / lacks %s", want)
		}
	}
	if strings.Contains(page, "http://") && strings.Contains(page, "<script") {
		t.Errorf("the page must be self-contained")
	}
	if deps := get("/api/dependencies"); !strings.Contains(deps, `"parent": "istio-ingressgateway.istio-system"`) || !strings.Contains(deps, `"callCount": 1`) {
		t.Errorf("/api/dependencies: %s", deps)
	}
	if src := get("/api/sources"); !strings.Contains(src, `"service": "auth-api.auth"`) {
		t.Errorf("/api/sources: %s", src)
	}
}
