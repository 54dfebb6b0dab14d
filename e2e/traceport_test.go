package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// traceport is one traceport process listening on its one port.
type traceport struct {
	t    testing.TB
	addr string
	proc *proc
	http *http.Client
}

// startTraceport runs the binary built in TestMain on a free loopback port
// with args added, and waits until /healthz answers. Readiness is not
// awaited: with Jaeger down it may rightly stay false.
func startTraceport(t testing.TB, args ...string) *traceport {
	t.Helper()
	return startTraceportBin(t, traceportBin, args...)
}

// startTraceportBin starts a given build of traceport (see plainBin).
func startTraceportBin(t testing.TB, bin string, args ...string) *traceport {
	t.Helper()
	if traceportErr != nil {
		t.Fatal(traceportErr)
	}
	tp := &traceport{t: t, addr: hostPort(freePort(t)), http: &http.Client{Timeout: 5 * time.Second}}
	args = append([]string{"--listen", tp.addr, "--log-level", "debug", "--summary-interval", "1s"}, args...)
	tp.proc = startProc(t, "traceport", bin, args...)
	eventually(t, 15*time.Second, func() error {
		if tp.proc.exited() {
			t.Fatalf("traceport exited: %v", tp.proc.err)
		}
		resp, err := tp.http.Get("http://" + tp.addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz: %s", resp.Status)
		}
		return nil
	})
	return tp
}

// stop sends SIGTERM and expects a clean exit within the shutdown timeout.
func (tp *traceport) stop() {
	tp.t.Helper()
	if err := tp.proc.stop(30 * time.Second); err != nil {
		tp.t.Errorf("traceport exit: %v", err)
	}
}

// postZipkin posts a Zipkin v2 JSON body the way Envoy does (no
// compression) and expects 202 Accepted.
func (tp *traceport) postZipkin(body []byte) {
	tp.t.Helper()
	if err := tp.tryPostZipkin(body); err != nil {
		tp.t.Fatal(err)
	}
}

// tryPostZipkin is postZipkin for goroutines other than the test's.
func (tp *traceport) tryPostZipkin(body []byte) error {
	resp, err := tp.http.Post("http://"+tp.addr+"/api/v2/spans", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("POST /api/v2/spans: %s: %s", resp.Status, msg)
	}
	return nil
}

// metrics is one scrape of /metrics.
type metrics map[string]*dto.MetricFamily

func (tp *traceport) scrape() (metrics, error) {
	resp, err := tp.http.Get("http://" + tp.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("/metrics: %v", err)
	}
	return metrics(mf), nil
}

// sum adds up every series of name whose labels include all of match
// ("key", "value" pairs). A family that is absent sums to 0.
func (m metrics) sum(name string, match ...string) float64 {
	f := m[name]
	if f == nil {
		return 0
	}
	var total float64
next:
	for _, s := range f.GetMetric() {
		for i := 0; i+1 < len(match); i += 2 {
			if labelValue(s, match[i]) != match[i+1] {
				continue next
			}
		}
		switch {
		case s.Counter != nil:
			total += s.Counter.GetValue()
		case s.Gauge != nil:
			total += s.Gauge.GetValue()
		case s.Untyped != nil:
			total += s.Untyped.GetValue()
		case s.Histogram != nil:
			total += float64(s.Histogram.GetSampleCount())
		}
	}
	return total
}

// by returns the values of name per value of label, e.g. dropped spans by
// reason; zero series are left out.
func (m metrics) by(name, label string) map[string]float64 {
	out := map[string]float64{}
	f := m[name]
	if f == nil {
		return out
	}
	for _, s := range f.GetMetric() {
		var v float64
		switch {
		case s.Counter != nil:
			v = s.Counter.GetValue()
		case s.Gauge != nil:
			v = s.Gauge.GetValue()
		}
		if v != 0 {
			out[labelValue(s, label)] += v
		}
	}
	return out
}

func labelValue(s *dto.Metric, name string) string {
	for _, l := range s.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// account is the accounting identity's terms from one scrape.
type account struct {
	Received, Replayed, Exported, Dropped, Queued, InFlight float64
}

func (m metrics) account() account {
	return account{
		Received: m.sum("traceport_received_spans_total"),
		Replayed: m.sum("traceport_queue_replayed_spans_total"),
		Exported: m.sum("traceport_exported_spans_total"),
		Dropped:  m.sum("traceport_dropped_spans_total"),
		Queued:   m.sum("traceport_queue_spans"),
		InFlight: m.sum("traceport_inflight_spans"),
	}
}

func (a account) String() string {
	return fmt.Sprintf("received %g, replayed %g, exported %g, dropped %g, queued %g, in flight %g",
		a.Received, a.Replayed, a.Exported, a.Dropped, a.Queued, a.InFlight)
}

// identity checks received + replayed = exported + dropped + queued + in
// flight (replayed: spans a persistent queue brought back from disk).
func (a account) identity() error {
	if in, out := a.Received+a.Replayed, a.Exported+a.Dropped+a.Queued+a.InFlight; in != out {
		return fmt.Errorf("accounting identity broken: %s: exported+dropped+queued+in flight - received - replayed = %+g", a, out-in)
	}
	return nil
}

// waitMetrics polls /metrics until cond accepts a scrape. The identity must
// hold on every scrape on the way, not only at the end.
func (tp *traceport) waitMetrics(t testing.TB, timeout time.Duration, cond func(m metrics) error) metrics {
	t.Helper()
	var last metrics
	eventually(t, timeout, func() error {
		m, err := tp.scrape()
		if err != nil {
			return err
		}
		last = m
		if err := m.account().identity(); err != nil {
			t.Fatalf("%v\n%s", err, m.dump("traceport_"))
		}
		if err := cond(m); err != nil {
			return fmt.Errorf("%v\n%s", err, m.account())
		}
		return nil
	})
	return last
}

// settled waits until nothing is queued or in flight and the identity
// reduces to received = exported + dropped, with received == want.
func (tp *traceport) settled(t testing.TB, timeout time.Duration, want float64) metrics {
	t.Helper()
	return tp.waitMetrics(t, timeout, func(m metrics) error {
		a := m.account()
		if a.Received != want {
			return fmt.Errorf("received %g spans, want %g", a.Received, want)
		}
		if a.Queued != 0 || a.InFlight != 0 {
			return fmt.Errorf("not settled")
		}
		return nil
	})
}

// requireNoDrops fails the test at once if any span was dropped: there is
// no point waiting for Jaeger to show spans traceport gave up on.
func requireNoDrops(t testing.TB, m metrics) {
	t.Helper()
	if d := m.by("traceport_dropped_spans_total", "reason"); len(d) != 0 {
		t.Fatalf("spans dropped by reason: %v\n%s", d, m.account())
	}
}

// dump renders the families with prefix for failure messages.
func (m metrics) dump(prefix string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		if strings.HasPrefix(n, prefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		if _, err := expfmt.MetricFamilyToText(&b, m[n]); err != nil {
			fmt.Fprintf(&b, "# %s: %v\n", n, err)
		}
	}
	return b.String()
}
