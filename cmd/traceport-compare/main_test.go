package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseStatTicks(t *testing.T) {
	f := func(stat string, want int64, wantErr bool) {
		t.Helper()
		got, err := parseStatTicks([]byte(stat))
		if (err != nil) != wantErr || got != want {
			t.Errorf("parseStatTicks(%q) = %d, %v; want %d (error %v)", stat, got, err, want, wantErr)
		}
	}
	// utime is field 14 (here 1234), stime field 15 (567).
	f("4242 (traceport) S 1 4242 4242 0 -1 4194560 12 0 0 0 1234 567 0 0 20 0 9 0 100 1000 200 18446744073709551615", 1801, false)
	f("4242 (a b) c) R 1 4242 4242 0 -1 4194560 12 0 0 0 10 5 0 0 20 0 9 0", 15, false) // comm with spaces and ')'
	f("4242 (traceport) S 1 2 3", 0, true)
	f("4242 traceport S", 0, true)
	f("4242 (x) S 1 4242 4242 0 -1 4194560 12 0 0 0 ten 5 0", 0, true)
}

func TestParseVmHWM(t *testing.T) {
	f := func(status string, want int64, wantErr bool) {
		t.Helper()
		got, err := parseVmHWM([]byte(status))
		if (err != nil) != wantErr || got != want {
			t.Errorf("parseVmHWM(%q) = %d, %v; want %d (error %v)", status, got, err, want, wantErr)
		}
	}
	f("Name:\tjaeger\nVmPeak:\t  999 kB\nVmHWM:\t  195312 kB\nVmRSS:\t 1 kB\n", 195312*1024, false)
	f("Name:\tjaeger\nVmRSS:\t 1 kB\n", 0, true)
	f("VmHWM:\t lots kB\n", 0, true)
}

func TestJudge(t *testing.T) {
	m := func(spansPerCPU float64, rssMB int64, p99ms int) measurement {
		// flat out, traceport takes far more than Jaeger: its peak RSS there
		// is reported, not judged
		return measurement{SpansPerCPUSecond: spansPerCPU, PeakRSS: 4 * rssMB << 20, LoadRSS: rssMB << 20, HalfLoad: phase{P99: time.Duration(p99ms) * time.Millisecond}}
	}
	f := func(w workload, compression string, tp, j measurement, want string) {
		t.Helper()
		r := row{Compression: compression, Traceport: tp, Jaeger: j}
		r.judge(w)
		if r.Verdict != want {
			t.Errorf("verdict %q, want %q", r.Verdict, want)
		}
	}
	zj := workloads[0] // zipkin-json/100, bar 10
	f(zj, "none", m(160e3, 50, 2), m(16e3, 190, 5), "PASS")
	f(zj, "none", m(150e3, 50, 2), m(16e3, 190, 5), "FAIL: ratio 9.38x < 10x")
	f(zj, "none", m(160e3, 100, 2), m(16e3, 190, 5), "FAIL: RSS 0.53x > 0.5x")
	f(zj, "none", m(160e3, 50, 5), m(16e3, 190, 5), "FAIL: p99 not lower")
	f(zj, "gzip", m(1e3, 500, 50), m(16e3, 190, 5), "report") // the bars apply with compression off
	f(workloads[5], "none", m(1e3, 500, 50), m(16e3, 190, 5), "report")
	bad := m(160e3, 50, 2)
	bad.Invalid = "sink took 99 spans of 100 acknowledged"
	f(zj, "none", bad, m(16e3, 190, 5), "INVALID: sink took 99 spans of 100 acknowledged")
}

func TestJaegerConfig(t *testing.T) {
	none := jaegerConfig("127.0.0.1:9", "none", 1, 2, 3, 4, 5)
	gz := jaegerConfig("127.0.0.1:9", "gzip", 1, 2, 3, 4, 5)
	if !strings.Contains(none, "compression: none") {
		t.Errorf("compression none not set:\n%s", none)
	}
	if strings.Contains(gz, "compression:") {
		t.Errorf("gzip is the exporter's default and should be left unset:\n%s", gz)
	}
	for _, absent := range []string{"jaeger_storage", "jaeger_query", "0.0.0.0"} {
		if strings.Contains(none, absent) {
			t.Errorf("config holds %q:\n%s", absent, none)
		}
	}
}

var update = flag.Bool("update", false, "rewrite testdata/jaeger-*.yaml with the current renderings")

// Jaeger's configs, one per downstream, are pinned byte for byte.
func TestJaegerConfigGolden(t *testing.T) {
	for file, got := range map[string]string{
		"jaeger-otlp-none.yaml": jaegerConfig("127.0.0.1:9", "none", 11, 12, 13, 14, 15),
		"jaeger-otlp-gzip.yaml": jaegerConfig("127.0.0.1:9", "gzip", 11, 12, 13, 14, 15),
		"jaeger-kafka.yaml":     jaegerKafkaConfig("127.0.0.1:9092", 11, 12, 13, 14, 15),
	} {
		path := filepath.Join("testdata", file)
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if want, err := os.ReadFile(path); err != nil || string(want) != got {
			t.Errorf("%s differs from the rendering (%v); got:\n%s", path, err, got)
		}
	}
}

func TestSelected(t *testing.T) {
	ws, err := selected("otlp-grpc/10, zipkin-proto/100")
	if err != nil || len(ws) != 2 || ws[0].key() != "otlp-grpc/10" || ws[1].key() != "zipkin-proto/100" {
		t.Errorf("selected = %v, %v", ws, err)
	}
	if _, err := selected("zipkin-json/5"); err == nil {
		t.Error("unknown workload accepted")
	}
}

// TestQuick runs the real comparison, shortened, on two rows: both systems
// start, take load, and every acknowledged span reaches the sink.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts traceport and Jaeger")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	jaegers, _ := filepath.Glob(filepath.Join(root, ".cache", "bin", "jaeger-v*"))
	if len(jaegers) == 0 {
		t.Skip("no Jaeger binary: run `make jaeger` first")
	}
	out := filepath.Join(t.TempDir(), "compare")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--quick", "--only", "zipkin-json/10,otlp-http/100", "--compression", "none",
		"--jaeger", jaegers[len(jaegers)-1], "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stderr.String(), stdout.String())
	}
	b, err := os.ReadFile(out + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rep.Rows))
	}
	for _, r := range rep.Rows {
		for name, m := range map[string]measurement{"traceport": r.Traceport, "jaeger": r.Jaeger} {
			if m.FlatOut.Accepted == 0 || m.FlatOut.Delivered != m.FlatOut.Accepted || m.HalfLoad.Delivered != m.HalfLoad.Accepted {
				t.Errorf("%s %s: accepted/delivered flat out %d/%d, half load %d/%d", r.Workload, name,
					m.FlatOut.Accepted, m.FlatOut.Delivered, m.HalfLoad.Accepted, m.HalfLoad.Delivered)
			}
			if m.SpansPerCPUSecond <= 0 || m.PeakRSS <= 0 || m.LoadRSS <= 0 || m.HalfLoad.P99 <= 0 {
				t.Errorf("%s %s: %+v", r.Workload, name, m)
			}
		}
		if r.Traceport.HalfLoad.OfferedRate != r.Jaeger.HalfLoad.OfferedRate {
			t.Errorf("%s: half load %.0f for traceport, %.0f for Jaeger: want the same offered load",
				r.Workload, r.Traceport.HalfLoad.OfferedRate, r.Jaeger.HalfLoad.OfferedRate)
		}
	}
	md, _ := os.ReadFile(out + ".md")
	for _, want := range []string{"| zipkin-json/10 | none |", "| otlp-http/100 | none |", "≥ 10×", "≥ 4×"} {
		if !strings.Contains(string(md), want) || !strings.Contains(stdout.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestMedianRound(t *testing.T) {
	m := func(v float64) measurement { return measurement{SpansPerCPUSecond: v} }
	if got := median([]measurement{m(30), m(10), m(20)}); got.SpansPerCPUSecond != 20 {
		t.Errorf("median of 30, 10, 20 = %v", got.SpansPerCPUSecond)
	}
	if got := median([]measurement{m(5)}); got.SpansPerCPUSecond != 5 {
		t.Errorf("median of one round = %v", got.SpansPerCPUSecond)
	}
	bad := m(99)
	bad.Invalid = "flat out: lost spans"
	if got := median([]measurement{m(1), bad, m(2)}); got.Invalid == "" {
		t.Errorf("an invalid round must make the row invalid")
	}
}
