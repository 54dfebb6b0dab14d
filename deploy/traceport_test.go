package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	appsv1 "k8s.io/api/apps/v1"
)

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

var (
	buildOnce sync.Once
	binPath   string
	binErr    error
	binDir    string
)

// TestMain removes the traceport binary the tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// traceportBinary builds ../cmd/traceport once per test run. It skips the
// test only when the command has no source yet.
func traceportBinary(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("../cmd/traceport/main.go"); err != nil {
		t.Skip("../cmd/traceport/main.go does not exist yet: cannot check flags, config and metrics against the binary")
	}
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "traceport-deploy-test")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "traceport")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/traceport")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build ./cmd/traceport: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var helpFlag = regexp.MustCompile(`(?m)^\s*--?([a-z][a-z0-9-]*)`)

// TestFlagsAndConfig: every flag in the DaemonSet's args exists in
// `traceport --help`, and every rendered config file passes
// `traceport --config FILE --validate`.
func TestFlagsAndConfig(t *testing.T) {
	bin := traceportBinary(t)
	help, _ := exec.Command(bin, "--help").CombinedOutput()
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(string(help), -1) {
		flags[m[1]] = true
	}
	for _, f := range []string{"config", "validate", "listen", "also-listen", "jaeger", "shutdown-timeout"} {
		if !flags[f] {
			t.Fatalf("traceport --help does not list --%s; the parse of its output is wrong or the flag is gone:\n%s", f, help)
		}
	}

	for name, r := range renderings(t) {
		if strings.Contains(name, "example-app") {
			continue
		}
		t.Run(name, func(t *testing.T) {
			c := r.one(t, "DaemonSet").Typed.(*appsv1.DaemonSet).Spec.Template.Spec.Containers[0]
			for _, a := range append(slices.Clone(c.Command), c.Args...) {
				if !strings.HasPrefix(a, "-") {
					continue
				}
				f := strings.SplitN(strings.TrimLeft(a, "-"), "=", 2)[0]
				if !flags[f] {
					t.Errorf("DaemonSet arg %q: traceport has no flag --%s", a, f)
				}
			}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, "TRACEPORT_") {
					f := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(e.Name, "TRACEPORT_")), "_", "-")
					if !flags[f] {
						t.Errorf("DaemonSet env %s: traceport has no flag --%s", e.Name, f)
					}
				}
			}
			cfg := traceportConfig(t, r)
			for k := range cfg {
				if !flags[k] {
					t.Errorf("config key %q: traceport has no flag --%s", k, k)
				}
			}
			path := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(withSecretFiles(t, r, traceportConfigRaw(t, r))), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "--config", path, "--validate").CombinedOutput()
			if err != nil {
				t.Errorf("traceport --config <%s config.yaml> --validate: %v\n%s", r.Source, err, out)
			}
		})
	}
}

// metricsDocumented is the metric list of traceport's flags doc, used only
// when the binary cannot be built yet.
var metricsDocumented = []string{
	"traceport_received_spans_total", "traceport_rejected_requests_total", "traceport_rejected_spans_total",
	"traceport_last_received_timestamp_seconds", "traceport_services_overflow_total",
	"traceport_exported_spans_total", "traceport_dropped_spans_total", "traceport_export_retries_total",
	"traceport_export_failures_total",
	"traceport_queue_spans", "traceport_queue_capacity_spans", "traceport_inflight_spans",
	"traceport_export_duration_seconds_bucket", "traceport_export_duration_seconds_sum", "traceport_export_duration_seconds_count",
	"traceport_export_batch_spans_bucket", "traceport_export_batch_spans_sum", "traceport_export_batch_spans_count",
}

// TestPromQL: every alert and dashboard expression parses as PromQL and
// selects only metrics traceport exports (scraped from a running traceport).
func TestPromQL(t *testing.T) {
	known := map[string]bool{}
	if _, err := os.Stat("../cmd/traceport/main.go"); err != nil {
		t.Log("no traceport binary yet: checking against the documented metric list")
		for _, m := range metricsDocumented {
			known[m] = true
		}
	} else {
		for _, m := range scrapeMetricNames(t, traceportBinary(t)) {
			known[m] = true
		}
	}

	p := parser.NewParser(parser.Options{})
	check := func(where, expr string) {
		t.Helper()
		e, err := p.ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: %v\n%s", where, err, expr)
			return
		}
		var names int
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			names++
			if !known[vs.Name] {
				t.Errorf("%s: metric %q is not exported by traceport (known: %v)", where, vs.Name, sortedKeys(known))
			}
			return nil
		})
		if names == 0 {
			t.Errorf("%s: expression selects no metric: %s", where, expr)
		}
	}

	rs := renderings(t)
	var alerts int
	for _, name := range []string{"kustomize-mesh", "helm-default"} {
		rule := rs[name].one(t, "PrometheusRule").Typed.(*monitoringv1.PrometheusRule)
		for _, g := range rule.Spec.Groups {
			for _, r := range g.Rules {
				alerts++
				if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
					t.Errorf("%s: rule %q needs alert, severity and summary", name, r.Alert)
				}
				check(name+" alert "+r.Alert, r.Expr.String())
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alert rule rendered")
	}

	// Grafana's own variables are not PromQL; give them the values Grafana would.
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")
	b, err := os.ReadFile("kustomize/components/prometheus/traceport.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	var exprs int
	for _, panel := range dash.Panels {
		for _, tg := range panel.Targets {
			exprs++
			check("dashboard panel "+panel.Title, grafanaVars.Replace(tg.Expr))
		}
	}
	if exprs == 0 {
		t.Fatal("dashboard has no query")
	}
}

func sortedKeys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// scrapeMetricNames runs traceport on a free loopback port with --jaeger at a
// closed port, sends it one Zipkin span so per-source series exist and one
// export attempt fails, and returns the metric names on /metrics.
func scrapeMetricNames(t *testing.T, bin string) []string {
	t.Helper()
	addr, jaeger := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--listen", addr, "--jaeger", jaeger,
		"--batch-timeout", "10ms", "--export-timeout", "1s", "--shutdown-timeout", "1s", "--log-level", "error")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()

	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("traceport on %s not ready after 15s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The Service's appProtocol grpc makes Istio sidecars send Envoy's Zipkin
	// JSON as h2c (HTTP/2 without TLS, prior knowledge): it must be accepted
	// like HTTP/1.1.
	h2c := &http.Transport{Protocols: new(http.Protocols)}
	h2c.Protocols.SetUnencryptedHTTP2(true)
	defer h2c.CloseIdleConnections()
	for _, c := range []struct {
		name, proto string
		client      *http.Client
	}{
		{"HTTP/1.1", "HTTP/1.1", http.DefaultClient},
		{"h2c", "HTTP/2.0", &http.Client{Transport: h2c}},
	} {
		span := fmt.Sprintf(`[{"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","name":"get","timestamp":%d,"duration":1000,"localEndpoint":{"serviceName":"deploy-test"}}]`,
			time.Now().UnixMicro())
		resp, err := c.client.Post(base+"/api/v2/spans", "application/json", strings.NewReader(span))
		if err != nil {
			t.Fatalf("POST /api/v2/spans over %s: %v", c.name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || resp.Proto != c.proto {
			t.Fatalf("POST /api/v2/spans over %s: %s %s, want %s 202", c.name, resp.Proto, resp.Status, c.proto)
		}
	}

	// Series with labels appear once something happened: wait for the first
	// (failed) export attempt.
	var seen map[string]bool
	for deadline := time.Now().Add(10 * time.Second); ; {
		seen = scrape(t, base+"/metrics")
		if seen["traceport_export_duration_seconds_count"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !seen["traceport_received_spans_total"] {
		t.Fatalf("/metrics has no traceport_received_spans_total after a span was accepted: %v", sortedKeys(seen))
	}
	return sortedKeys(seen)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, _, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		seen[name] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return seen
}

// TestDockerfileBuildLine: the image builds with exactly the Makefile's go
// build line (only the output path differs), so what the tests and CI build is
// what ships.
func TestDockerfileBuildLine(t *testing.T) {
	docker := goBuildLines(t, "../Dockerfile", "RUN ")
	if len(docker) != 1 {
		t.Fatalf("Dockerfile: %d go build lines, want 1: %q", len(docker), docker)
	}
	if !strings.Contains(docker[0], "CGO_ENABLED=0") || !strings.Contains(docker[0], "-trimpath") {
		t.Errorf("Dockerfile go build %q: want CGO_ENABLED=0 and -trimpath (static, reproducible)", docker[0])
	}
	if _, err := os.Stat("../Makefile"); err != nil {
		t.Skip("../Makefile does not exist yet")
	}
	make := goBuildLines(t, "../Makefile", "")
	if len(make) == 0 {
		t.Fatal("Makefile has no go build line of ./cmd/traceport")
	}
	if !slices.Contains(make, docker[0]) {
		t.Errorf("Dockerfile builds with\n  %s\nMakefile with\n  %s", docker[0], strings.Join(make, "\n  "))
	}
}

var outputFlag = regexp.MustCompile(`-o\s+\S+`)

// goBuildLines returns the lines building ./cmd/traceport, without the
// prefix, the output path and surrounding space.
func goBuildLines(t *testing.T, path, prefix string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if !strings.Contains(l, "go build") || !strings.HasSuffix(l, "./cmd/traceport") || strings.HasPrefix(l, "#") {
			continue
		}
		l = strings.TrimPrefix(strings.TrimPrefix(l, prefix), "@")
		out = append(out, outputFlag.ReplaceAllString(l, "-o OUT"))
	}
	return out
}
