package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// jaegerPorts are the loopback ports of one Jaeger v2 all-in-one. They stay
// the same across restarts, so traceport can keep pointing at them.
type jaegerPorts struct {
	OTLPGRPC, OTLPHTTP, JaegerGRPC, Zipkin int
	Query, QueryGRPC, Health, Metrics      int
	SamplingHTTP, SamplingGRPC             int
	Expvar, ZPages                         int
}

// jaegerConfig is Jaeger v2's own all-in-one default
// (cmd/jaeger/internal/all-in-one.yaml at v1.76.0: memory storage, receivers
// otlp, jaeger, zipkin) with every endpoint moved to a free loopback port and
// only the gRPC side of the jaeger receiver, which is what traceport's
// jaeger-grpc exporter talks to.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query, remote_sampling, healthcheckv2, expvar, zpages]
  pipelines:
    traces:
      receivers: [otlp, jaeger, zipkin]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: detailed
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: {{.Metrics}}
    logs:
      level: info

extensions:
  jaeger_query:
    storage:
      traces: some_storage
    http:
      endpoint: 127.0.0.1:{{.Query}}
    grpc:
      endpoint: 127.0.0.1:{{.QueryGRPC}}
    # Jaeger traces itself to localhost:4317 by default, which is whatever
    # listens there (maybe a traceport); keep its spans out of the tests.
    enable_tracing: false

  jaeger_storage:
    backends:
      some_storage:
        memory:
          max_traces: 100000

  remote_sampling:
    file:
      path:
      default_sampling_probability: 1
      reload_interval: 1s
    http:
      endpoint: 127.0.0.1:{{.SamplingHTTP}}
    grpc:
      endpoint: 127.0.0.1:{{.SamplingGRPC}}

  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{{.Health}}

  expvar:
    endpoint: 127.0.0.1:{{.Expvar}}

  zpages:
    endpoint: 127.0.0.1:{{.ZPages}}

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{{.OTLPGRPC}}
      http:
        endpoint: 127.0.0.1:{{.OTLPHTTP}}

  jaeger:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{{.JaegerGRPC}}

  zipkin:
    endpoint: 127.0.0.1:{{.Zipkin}}

processors:
  batch:

exporters:
  jaeger_storage_exporter:
    trace_storage: some_storage
`

// jaeger is one Jaeger v2 all-in-one process (restartable on the same
// ports) and a client of its query API.
type jaeger struct {
	t      testing.TB
	ports  jaegerPorts
	config string
	proc   *proc
	http   *http.Client
}

// newJaeger writes a config on free ports; start runs it.
func newJaeger(t testing.TB) *jaeger {
	t.Helper()
	var p jaegerPorts
	for _, f := range []*int{&p.OTLPGRPC, &p.OTLPHTTP, &p.JaegerGRPC, &p.Zipkin, &p.Query, &p.QueryGRPC,
		&p.Health, &p.Metrics, &p.SamplingHTTP, &p.SamplingGRPC, &p.Expvar, &p.ZPages} {
		*f = freePort(t)
	}
	cfg := jaegerConfig
	for name, port := range map[string]int{
		"OTLPGRPC": p.OTLPGRPC, "OTLPHTTP": p.OTLPHTTP, "JaegerGRPC": p.JaegerGRPC, "Zipkin": p.Zipkin,
		"Query": p.Query, "QueryGRPC": p.QueryGRPC, "Health": p.Health, "Metrics": p.Metrics,
		"SamplingHTTP": p.SamplingHTTP, "SamplingGRPC": p.SamplingGRPC, "Expvar": p.Expvar, "ZPages": p.ZPages,
	} {
		cfg = strings.ReplaceAll(cfg, "{{."+name+"}}", fmt.Sprint(port))
	}
	path := filepath.Join(t.TempDir(), "jaeger.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return &jaeger{t: t, ports: p, config: path, http: &http.Client{Timeout: 5 * time.Second}}
}

// startJaeger is newJaeger then start.
func startJaeger(t testing.TB) *jaeger {
	t.Helper()
	j := newJaeger(t)
	j.start()
	return j
}

// start runs Jaeger and waits until its health check and query API answer.
func (j *jaeger) start() {
	j.t.Helper()
	if j.proc != nil && !j.proc.exited() {
		j.t.Fatal("jaeger already running")
	}
	j.proc = startProc(j.t, "jaeger", jaegerBin, "--config", j.config)
	health := fmt.Sprintf("http://127.0.0.1:%d/status", j.ports.Health)
	eventually(j.t, 30*time.Second, func() error {
		if j.proc.exited() {
			j.t.Fatalf("jaeger exited: %v", j.proc.err)
		}
		if err := j.get(health, nil); err != nil {
			return err
		}
		return j.get(j.queryURL("/api/services", nil), nil)
	})
}

// kill stops Jaeger with SIGKILL: whatever it held in memory is gone.
func (j *jaeger) kill() { j.proc.kill() }

func (j *jaeger) otlpGRPC() string   { return hostPort(j.ports.OTLPGRPC) }
func (j *jaeger) otlpHTTP() string   { return hostPort(j.ports.OTLPHTTP) }
func (j *jaeger) jaegerGRPC() string { return hostPort(j.ports.JaegerGRPC) }
func (j *jaeger) zipkin() string     { return hostPort(j.ports.Zipkin) }

func (j *jaeger) queryURL(path string, q url.Values) string {
	u := fmt.Sprintf("http://127.0.0.1:%d%s", j.ports.Query, path)
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func (j *jaeger) get(u string, into any) error {
	resp, err := j.http.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, tail(string(body), 500))
	}
	if into == nil {
		return nil
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: decode: %v", u, err)
	}
	return nil
}

// Jaeger's query API (the v1 JSON the UI uses).
type (
	jaegerTrace struct {
		TraceID   string                   `json:"traceID"`
		Spans     []jaegerSpan             `json:"spans"`
		Processes map[string]jaegerProcess `json:"processes"`
	}
	jaegerSpan struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		ProcessID string      `json:"processID"`
		Tags      []jaegerTag `json:"tags"`
		StartTime int64       `json:"startTime"`
		Duration  int64       `json:"duration"`
	}
	jaegerProcess struct {
		ServiceName string      `json:"serviceName"`
		Tags        []jaegerTag `json:"tags"`
	}
	jaegerTag struct {
		Key   string `json:"key"`
		Type  string `json:"type"`
		Value any    `json:"value"`
	}
	jaegerDependency struct {
		Parent    string `json:"parent"`
		Child     string `json:"child"`
		CallCount int    `json:"callCount"`
	}
)

// storedSpan is one span as Jaeger shows it, flattened for comparison.
type storedSpan struct {
	TraceID, SpanID, Parent, Service, Name string
	Tags                                   map[string]string
}

func flatten(traces []jaegerTrace) map[string]storedSpan {
	out := map[string]storedSpan{}
	for _, tr := range traces {
		for _, s := range tr.Spans {
			st := storedSpan{
				TraceID: normTraceID(s.TraceID),
				SpanID:  normSpanID(s.SpanID),
				Service: tr.Processes[s.ProcessID].ServiceName,
				Name:    s.OperationName,
				Tags:    map[string]string{},
			}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" {
					st.Parent = normSpanID(r.SpanID)
				}
			}
			for _, tag := range s.Tags {
				st.Tags[tag.Key] = fmt.Sprint(tag.Value)
			}
			out[st.TraceID+"/"+st.SpanID] = st
		}
	}
	return out
}

// Jaeger prints a trace id whose high half is zero as 16 hex digits.
func normTraceID(s string) string { return leftPad(strings.ToLower(s), 32) }
func normSpanID(s string) string  { return leftPad(strings.ToLower(s), 16) }

func leftPad(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return strings.Repeat("0", n-len(s)) + s
}

func (j *jaeger) services() ([]string, error) {
	var r struct{ Data []string }
	if err := j.get(j.queryURL("/api/services", nil), &r); err != nil {
		return nil, err
	}
	sort.Strings(r.Data)
	return r.Data, nil
}

// traces searches one service's traces of the last hour.
func (j *jaeger) traces(service string) ([]jaegerTrace, error) {
	var r struct{ Data []jaegerTrace }
	q := url.Values{"service": {service}, "limit": {"1000"}, "lookback": {"1h"}}
	if err := j.get(j.queryURL("/api/traces", q), &r); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// trace fetches one trace by id; a trace Jaeger does not have is an error.
func (j *jaeger) trace(id string) (jaegerTrace, error) {
	var r struct{ Data []jaegerTrace }
	if err := j.get(j.queryURL("/api/traces/"+id, nil), &r); err != nil {
		return jaegerTrace{}, err
	}
	if len(r.Data) != 1 {
		return jaegerTrace{}, fmt.Errorf("trace %s: %d traces in answer", id, len(r.Data))
	}
	return r.Data[0], nil
}

// dependencies returns the last hour's edges as sorted "parent -> child".
func (j *jaeger) dependencies() ([]string, error) {
	var r struct{ Data []jaegerDependency }
	q := url.Values{
		"endTs":    {fmt.Sprint(time.Now().Add(time.Minute).UnixMilli())},
		"lookback": {fmt.Sprint(time.Hour.Milliseconds())},
	}
	if err := j.get(j.queryURL("/api/dependencies", q), &r); err != nil {
		return nil, err
	}
	edges := make([]string, 0, len(r.Data))
	for _, d := range r.Data {
		edges = append(edges, d.Parent+" -> "+d.Child)
	}
	sort.Strings(edges)
	return edges, nil
}

// spansOf fetches the given traces (by id) and returns every span in them.
// A trace not (yet) stored is an error, so it can be polled.
func (j *jaeger) spansOf(traceIDs ...string) (map[string]storedSpan, error) {
	var all []jaegerTrace
	for _, id := range traceIDs {
		tr, err := j.trace(id)
		if err != nil {
			return nil, err
		}
		all = append(all, tr)
	}
	return flatten(all), nil
}

// waitSpans polls Jaeger until it holds exactly want (keyed by
// "traceid/spanid"), comparing service, parent and name, or fails.
func (j *jaeger) waitSpans(t testing.TB, timeout time.Duration, want map[string]storedSpan) map[string]storedSpan {
	t.Helper()
	ids := map[string]bool{}
	for _, s := range want {
		ids[s.TraceID] = true
	}
	traceIDs := make([]string, 0, len(ids))
	for id := range ids {
		traceIDs = append(traceIDs, id)
	}
	sort.Strings(traceIDs)
	var got map[string]storedSpan
	eventually(t, timeout, func() error {
		var err error
		got, err = j.spansOf(traceIDs...)
		if err != nil {
			return err
		}
		return diffSpans(got, want)
	})
	return got
}

// diffSpans compares ids, services, parents and names; tags in want must be
// present in got with the same value.
func diffSpans(got, want map[string]storedSpan) error {
	var problems []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			problems = append(problems, "missing span "+k+" ("+w.Service+" "+w.Name+")")
			continue
		}
		if g.Service != w.Service || g.Parent != w.Parent || g.Name != w.Name {
			problems = append(problems, fmt.Sprintf("span %s: got service=%q parent=%q name=%q, want service=%q parent=%q name=%q",
				k, g.Service, g.Parent, g.Name, w.Service, w.Parent, w.Name))
		}
		for tk, tv := range w.Tags {
			if g.Tags[tk] != tv {
				problems = append(problems, fmt.Sprintf("span %s: tag %s=%q, want %q", k, tk, g.Tags[tk], tv))
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			problems = append(problems, "unexpected span "+k+" ("+g.Service+" "+g.Name+")")
		}
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	if len(problems) > 10 {
		problems = append(problems[:10], fmt.Sprintf("… and %d more", len(problems)-10))
	}
	return fmt.Errorf("%d spans in Jaeger, %d wanted:\n  %s", len(got), len(want), strings.Join(problems, "\n  "))
}
