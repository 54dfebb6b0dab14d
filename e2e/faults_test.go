package e2e

import (
	"fmt"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// Short retries keep fault tests quick; every case states its own limits.
var fastRetries = []string{"--retry-initial-interval", "50ms", "--retry-max-interval", "300ms", "--batch-timeout", "20ms"}

// TestJaegerDownAtStart starts traceport with each exporter before Jaeger
// is up: the spans wait in the queue, retried, and all arrive once Jaeger
// starts.
func TestJaegerDownAtStart(t *testing.T) {
	t.Parallel()
	j := newJaeger(t) // ports chosen, not started
	type sender struct {
		protocol string
		tp       *traceport
		want     map[string]storedSpan
	}
	var senders []sender
	for _, c := range []struct{ protocol, endpoint string }{
		{"otlp-grpc", j.otlpGRPC()},
		{"otlp-http", j.otlpHTTP()},
		{"jaeger-grpc", j.jaegerGRPC()},
	} {
		tp := startTraceport(t, append([]string{"--jaeger", c.endpoint, "--jaeger-protocol", c.protocol,
			"--retry-max-elapsed", "2m"}, fastRetries...)...)
		spans, want := plainSpans(t, "down-at-start-"+c.protocol, 200)
		tp.postZipkin(zipkinJSON(t, spans))
		senders = append(senders, sender{c.protocol, tp, want})
	}
	for _, s := range senders {
		t.Run("retrying/"+s.protocol, func(t *testing.T) {
			s.tp.waitMetrics(t, 10*time.Second, func(m metrics) error {
				requireNoDrops(t, m)
				if m.sum("traceport_export_retries_total") < 2 {
					return fmt.Errorf("no retries yet")
				}
				return nil
			})
		})
	}
	started := time.Now()
	j.start()
	for _, s := range senders {
		t.Run("delivered/"+s.protocol, func(t *testing.T) {
			m := s.tp.settled(t, 30*time.Second, 200)
			requireNoDrops(t, m)
			if got := m.sum("traceport_exported_spans_total"); got != 200 {
				t.Errorf("exported %g, want 200", got)
			}
			j.waitSpans(t, 10*time.Second, s.want)
			t.Logf("all spans in Jaeger %s after it started", time.Since(started).Round(10*time.Millisecond))
		})
	}
}

// TestJaegerRestart kills Jaeger (SIGKILL) while spans stream in and starts
// it again on the same ports. Jaeger's memory storage loses what it held;
// what traceport acknowledged after the kill must all reach the new Jaeger,
// nothing is dropped, and the identity holds at every scrape on the way.
func TestJaegerRestart(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	tp := startTraceport(t, append([]string{"--jaeger", j.otlpGRPC(), "--retry-max-elapsed", "2m"}, fastRetries...)...)

	const service = "restart"
	var (
		mu        sync.Mutex
		sent      int
		afterKill = map[string]storedSpan{}
		killed    atomic.Bool
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	wg.Add(2)
	go func() { // the stream: one trace of 10 spans every 10ms
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			down := killed.Load() // read before sending: the span surely came after the kill
			spans, want := plainSpans(t, service, 10)
			if err := tp.tryPostZipkin(zipkinJSON(t, spans)); err != nil {
				t.Errorf("stream: %v", err)
				return
			}
			mu.Lock()
			sent += len(spans)
			if down {
				for k, v := range want {
					afterKill[k] = v
				}
			}
			mu.Unlock()
		}
	}()
	go func() { // a scraper checking the identity while things move
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			m, err := tp.scrape()
			if err != nil {
				t.Errorf("scrape: %v", err)
				return
			}
			if err := m.account().identity(); err != nil {
				t.Errorf("mid-stream: %v", err)
				return
			}
		}
	}()

	time.Sleep(300 * time.Millisecond)
	j.kill()
	killed.Store(true)
	time.Sleep(700 * time.Millisecond) // down for several retries
	j.start()
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	total, want := sent, afterKill
	mu.Unlock()
	if len(want) == 0 {
		t.Fatal("no spans sent while Jaeger was down")
	}
	eventually(t, 30*time.Second, func() error {
		traces, err := j.traces(service)
		if err != nil {
			return err
		}
		got := flatten(traces)
		missing := 0
		for k := range want {
			if _, ok := got[k]; !ok {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d spans sent after the kill missing from the restarted Jaeger", missing, len(want))
		}
		return nil
	})
	m := tp.settled(t, 10*time.Second, float64(total))
	if got := m.sum("traceport_exported_spans_total"); got != float64(total) {
		t.Errorf("exported %g of %d", got, total)
	}
	if d := m.by("traceport_dropped_spans_total", "reason"); len(d) != 0 {
		t.Errorf("dropped: %v", d)
	}
	if m.sum("traceport_export_retries_total") == 0 {
		t.Error("no retries while Jaeger was down")
	}
	t.Logf("%d spans sent, %d after the kill; %s", total, len(want), m.account())
	tp.stop()
}

// TestBackendFaults covers what a real Jaeger cannot do on demand, with a
// fake OTLP backend over gRPC and HTTP: throttling with a retry delay, a
// stalled backend, a permanently rejected batch.
func TestBackendFaults(t *testing.T) {
	t.Parallel()
	const spans = 50
	type want struct {
		accepted int                // spans the backend finally took
		dropped  map[string]float64 // by reason
		retries  bool               // some retries counted
		noRetry  bool               // exactly one attempt per batch
		minWait  time.Duration      // the first retry's planned wait at least (the server's hint)
		timedOut bool               // the first attempt was cut off by --export-timeout
	}
	f := func(name, protocol string, answer func(call int) fault, flags []string, w want) {
		t.Run(name+"/"+protocol, func(t *testing.T) {
			t.Parallel()
			b := startFakeBackend(t, protocol, answer)
			args := append([]string{"--jaeger", b.addr, "--jaeger-protocol", protocol, "--batch-max-spans", "1000"}, fastRetries...)
			tp := startTraceport(t, append(args, flags...)...)
			zs, _ := plainSpans(t, "fault-"+name, spans)
			start := time.Now()
			tp.postZipkin(zipkinJSON(t, zs))
			m := tp.settled(t, 20*time.Second, spans)
			calls, accepted := b.snapshot()
			if accepted != w.accepted {
				t.Errorf("backend accepted %d spans, want %d", accepted, w.accepted)
			}
			if got := m.sum("traceport_exported_spans_total"); got != float64(w.accepted) {
				t.Errorf("exported %g, want %d", got, w.accepted)
			}
			dropped := m.by("traceport_dropped_spans_total", "reason")
			if fmt.Sprint(dropped) != fmt.Sprint(w.dropped) {
				t.Errorf("dropped by reason %v, want %v", dropped, w.dropped)
			}
			retries := m.sum("traceport_export_retries_total")
			if w.retries && retries == 0 {
				t.Errorf("no retries counted")
			}
			if w.noRetry {
				if retries != 0 {
					t.Errorf("%g retries of a permanent failure", retries)
				}
				if len(calls) != 1 { // one request, one batch
					t.Errorf("%d calls; a permanent failure must be tried once", len(calls))
				}
			}
			// What the retry loop planned, from its debug log: not the
			// intervals measured here, which a busy machine stretches or
			// (the timeout starts before the call arrives) shrinks.
			if w.minWait > 0 {
				waits := tp.plannedRetries(t)
				if len(waits) == 0 || waits[0] < w.minWait {
					t.Errorf("planned retry waits %v, want the first at least the server's %s", waits, w.minWait)
				}
			}
			if w.timedOut {
				if len(calls) != 2 {
					t.Errorf("%d calls, want 2: one cut off by the timeout, one retry", len(calls))
				}
				if n := m.sum("traceport_export_failures_total", "code", "timeout") + m.sum("traceport_export_failures_total", "code", "DeadlineExceeded"); n != 1 {
					t.Errorf("%g attempts failed by timeout, want 1 (%v)", n, m.by("traceport_export_failures_total", "code"))
				}
			}
			t.Logf("%d calls in %s; %s; retries %g", len(calls), time.Since(start).Round(time.Millisecond), m.account(), retries)
			tp.stop()
		})
	}
	throttled := func(delay time.Duration) func(int) fault {
		return func(call int) fault {
			if call < 2 {
				return fault{code: codes.ResourceExhausted, delay: delay}
			}
			return fault{}
		}
	}
	stallOnce := func(call int) fault { return fault{stall: call == 0} }
	stallAlways := func(int) fault { return fault{stall: true} }
	invalid := func(int) fault { return fault{code: codes.InvalidArgument} }
	none := map[string]float64{}

	// The server's delay, not traceport's 50ms backoff, sets the pace.
	f("throttled", "otlp-grpc", throttled(400*time.Millisecond), nil,
		want{accepted: spans, dropped: none, retries: true, minWait: 400 * time.Millisecond})
	f("throttled", "otlp-http", throttled(time.Second), nil, // Retry-After is in whole seconds
		want{accepted: spans, dropped: none, retries: true, minWait: time.Second})
	for _, p := range []string{"otlp-grpc", "otlp-http"} {
		f("stalled-then-ok", p, stallOnce, []string{"--export-timeout", "300ms"},
			want{accepted: spans, dropped: none, retries: true, timedOut: true})
		f("stalled", p, stallAlways, []string{"--export-timeout", "200ms", "--retry-max-elapsed", "1s"},
			want{accepted: 0, dropped: map[string]float64{"export_failed": spans}, retries: true})
		f("invalid", p, invalid, nil,
			want{accepted: 0, dropped: map[string]float64{"non_retryable": spans}, noRetry: true})
	}
}

// TestShutdownFlushes stops traceport with SIGTERM while its spans still
// wait for a batch to fill: they must reach Jaeger before it exits cleanly.
func TestShutdownFlushes(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	tp := startTraceport(t, "--jaeger", j.otlpGRPC(), "--batch-timeout", "1m", "--shutdown-timeout", "10s")
	spans, want := plainSpans(t, "shutdown-flush", 100)
	tp.postZipkin(zipkinJSON(t, spans))
	tp.waitMetrics(t, 5*time.Second, func(m metrics) error {
		if a := m.account(); a.Received != 100 || a.Queued != 100 {
			return fmt.Errorf("spans not waiting in the queue")
		}
		return nil
	})
	tp.stop()
	j.waitSpans(t, 10*time.Second, want)
}

// plannedRetries reads the waits traceport's retry loop planned from its
// debug log ("export failed, will retry" … in=<duration>), in order.
func (tp *traceport) plannedRetries(t testing.TB) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, m := range retryLine.FindAllStringSubmatch(tp.proc.out.String(), -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("retry log line: %v", err)
		}
		out = append(out, d)
	}
	return out
}

var retryLine = regexp.MustCompile(`msg="export failed, will retry".* in=(\S+)`)
