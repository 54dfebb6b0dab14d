package exporter

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

var protocols = []string{ProtocolOTLPGRPC, ProtocolOTLPHTTP}

// pushN pushes n requests of spans spans each and fails on refusal.
func pushN(tb testing.TB, e *Exporter, n, spans int) {
	tb.Helper()
	data := request(tb, spans)
	for range n {
		if err := e.Push(data, spans, true, nil); err != nil {
			tb.Fatalf("push: %v", err)
		}
	}
}

func TestExportDelivers(t *testing.T) {
	for _, proto := range protocols {
		for _, comp := range []string{"gzip", "zstd", "none"} {
			t.Run(proto+"/"+comp, func(t *testing.T) {
				be := newBackend(t, proto, nil)
				cfg := testConfig(be.addr, proto)
				cfg.Compression = comp
				cfg.Headers = map[string]string{"x-tenant": "mesh-a"}
				e, reg := start(t, cfg)
				pushN(t, e, 20, 100)
				eventually(t, 5*time.Second, "all spans exported", func() bool { return be.received() == 2000 })
				eventually(t, time.Second, "settled", settled(e))
				s := checkIdentity(t, e, reg)
				if s.Exported != 2000 || s.Pushed != 2000 {
					t.Errorf("stats %+v: want 2000 pushed and exported", s)
				}
				m := scrape(t, reg)
				if got := m["traceport_exported_spans_total{exporter="+proto+"}"]; got != 2000 {
					t.Errorf("exported metric = %v, want 2000", got)
				}
				for _, r := range reasonNames {
					if v, ok := m["traceport_dropped_spans_total{reason="+r+"}"]; !ok || v != 0 {
						t.Errorf("dropped{reason=%s} = %v (present %v), want 0 and present", r, v, ok)
					}
				}
				wantEnc := comp
				if comp == "none" {
					wantEnc = ""
				}
				be.mu.Lock()
				defer be.mu.Unlock()
				for i, h := range be.headers {
					if h.Get("X-Tenant") != "mesh-a" || be.encs[i] != wantEnc {
						t.Fatalf("call %d: x-tenant %q, encoding %q; want mesh-a, %q", i, h.Get("X-Tenant"), be.encs[i], wantEnc)
					}
				}
			})
		}
	}
}

// Pushes are batched whole, up to BatchMaxSpans, and one larger push goes
// alone.
func TestBatching(t *testing.T) {
	be := newBackend(t, ProtocolOTLPGRPC, nil)
	cfg := testConfig(be.addr, ProtocolOTLPGRPC)
	cfg.BatchMaxSpans = 250
	cfg.BatchTimeout = 50 * time.Millisecond
	cfg.Senders = 1
	e, reg := start(t, cfg)
	small, big := request(t, 100), request(t, 300)
	for _, p := range []struct {
		data  []byte
		spans int
	}{{small, 100}, {small, 100}, {small, 100}, {big, 300}, {small, 100}} {
		if err := e.Push(p.data, p.spans, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "all spans exported", func() bool { return be.received() == 700 })
	checkIdentity(t, e, reg)
	be.mu.Lock()
	defer be.mu.Unlock()
	if got, want := be.perCall, []int{200, 100, 300, 100}; !equal(got, want) {
		t.Errorf("spans per call %v, want %v", got, want)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// A half-full batch waits for BatchTimeout, a full one goes at once:
// asserted on what arrives together, not on when.
func TestBatchTimeout(t *testing.T) {
	t.Run("half-full waits, full goes", func(t *testing.T) {
		be := newBackend(t, ProtocolOTLPGRPC, nil)
		cfg := testConfig(be.addr, ProtocolOTLPGRPC)
		cfg.BatchTimeout = time.Hour // a half-full batch that did not wait would go alone
		cfg.BatchMaxSpans = 200
		e, reg := start(t, cfg)
		pushN(t, e, 1, 100)
		pushN(t, e, 1, 100)
		eventually(t, 10*time.Second, "full batch", func() bool { return be.received() == 200 })
		be.mu.Lock()
		perCall := append([]int(nil), be.perCall...)
		be.mu.Unlock()
		if !equal(perCall, []int{200}) {
			t.Errorf("spans per call %v, want [200]: the first half-full push went without waiting", perCall)
		}
		checkIdentity(t, e, reg)
	})
	t.Run("timeout sends a half-full batch", func(t *testing.T) {
		be := newBackend(t, ProtocolOTLPGRPC, nil)
		cfg := testConfig(be.addr, ProtocolOTLPGRPC)
		cfg.BatchTimeout = 50 * time.Millisecond
		cfg.BatchMaxSpans = 200
		e, reg := start(t, cfg)
		pushN(t, e, 1, 100)
		eventually(t, 10*time.Second, "timed-out batch", func() bool { return be.received() == 100 })
		checkIdentity(t, e, reg)
	})
}

func TestRetry(t *testing.T) {
	type want struct {
		calls        int
		exported     int64
		dropped      map[string]int64
		minWait      time.Duration // the first retry's planned wait at least (the server's hint)
		failureCodes []string
	}
	fail3 := func(r reply) func(int) reply {
		return func(call int) reply {
			if call < 3 {
				return r
			}
			return reply{}
		}
	}
	always := func(r reply) func(int) reply { return func(int) reply { return r } }
	cases := []struct {
		name   string
		proto  string
		script func(int) reply
		cfg    func(*Config)
		want   want
	}{
		{"grpc unavailable 3x", ProtocolOTLPGRPC, fail3(reply{code: codes.Unavailable}), nil,
			want{calls: 4, exported: 100, failureCodes: []string{"Unavailable"}}},
		{"http 503 3x", ProtocolOTLPHTTP, fail3(reply{status: 503}), nil,
			want{calls: 4, exported: 100, failureCodes: []string{"503"}}},
		{"http 502 3x", ProtocolOTLPHTTP, fail3(reply{status: 502}), nil,
			want{calls: 4, exported: 100}},
		{"grpc resource exhausted with RetryInfo", ProtocolOTLPGRPC,
			fail3(reply{code: codes.ResourceExhausted, retryAfter: 300 * time.Millisecond}), nil,
			want{calls: 4, exported: 100, minWait: 300 * time.Millisecond}},
		{"http 429 Retry-After", ProtocolOTLPHTTP, func(call int) reply {
			if call == 0 {
				return reply{status: 429, retryAfter: time.Second}
			}
			return reply{}
		}, nil, want{calls: 2, exported: 100, minWait: time.Second}},
		{"grpc resource exhausted without RetryInfo is permanent", ProtocolOTLPGRPC,
			always(reply{code: codes.ResourceExhausted}), nil,
			want{calls: 1, dropped: map[string]int64{ReasonNonRetryable: 100}}},
		{"grpc invalid argument", ProtocolOTLPGRPC, always(reply{code: codes.InvalidArgument}), nil,
			want{calls: 1, dropped: map[string]int64{ReasonNonRetryable: 100}, failureCodes: []string{"InvalidArgument"}}},
		{"http 400", ProtocolOTLPHTTP, always(reply{status: 400}), nil,
			want{calls: 1, dropped: map[string]int64{ReasonNonRetryable: 100}, failureCodes: []string{"400"}}},
		{"grpc partial success", ProtocolOTLPGRPC, always(reply{rejected: 7}), nil,
			want{calls: 1, exported: 93, dropped: map[string]int64{ReasonNonRetryable: 7}}},
		{"http partial success", ProtocolOTLPHTTP, always(reply{rejected: 7}), nil,
			want{calls: 1, exported: 93, dropped: map[string]int64{ReasonNonRetryable: 7}}},
		{"grpc stall hits per-attempt timeout", ProtocolOTLPGRPC, func(call int) reply { return reply{stall: call == 0} },
			nil, // testConfig's 2 s per attempt: an answered call fits in it on a busy machine
			want{calls: 2, exported: 100, failureCodes: []string{"DeadlineExceeded"}}},
		{"http stall hits per-attempt timeout", ProtocolOTLPHTTP, func(call int) reply { return reply{stall: call == 0} },
			nil, // testConfig's 2 s per attempt: an answered call fits in it on a busy machine
			want{calls: 2, exported: 100, failureCodes: []string{"timeout"}}},
		{"grpc retry time runs out", ProtocolOTLPGRPC, always(reply{code: codes.Unavailable}),
			func(c *Config) { c.RetryMaxElapsed = 2 * time.Second },
			want{dropped: map[string]int64{ReasonExportFailed: 100}}},
		{"http retry time runs out", ProtocolOTLPHTTP, always(reply{status: 504}),
			func(c *Config) { c.RetryMaxElapsed = 2 * time.Second },
			want{dropped: map[string]int64{ReasonExportFailed: 100}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			be := newBackend(t, tc.proto, tc.script)
			cfg := testConfig(be.addr, tc.proto)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			e, reg, planned := startPlanning(t, cfg)
			pushN(t, e, 1, 100)
			eventually(t, time.Minute, "settled", func() bool { return settled(e)() && e.Stats().Pushed == 100 })
			s := checkIdentity(t, e, reg)
			if s.Exported != tc.want.exported {
				t.Errorf("exported %d, want %d", s.Exported, tc.want.exported)
			}
			for _, r := range reasonNames {
				if s.Dropped[r] != tc.want.dropped[r] {
					t.Errorf("dropped{%s} = %d, want %d", r, s.Dropped[r], tc.want.dropped[r])
				}
			}
			calls := be.callTimes()
			if tc.want.calls > 0 && len(calls) != tc.want.calls {
				t.Errorf("%d calls, want %d", len(calls), tc.want.calls)
			}
			// Retries at 10-50ms within 2s: at least one, however slow the
			// machine; how many depends on it.
			if tc.want.calls == 0 && len(calls) < 2 {
				t.Errorf("%d calls: the retry loop gave up without retrying", len(calls))
			}
			if s.Retries != int64(len(calls)-1) {
				t.Errorf("retries %d, want %d (calls - 1)", s.Retries, len(calls)-1)
			}
			waits := planned()
			if len(waits) != len(calls)-1 {
				t.Errorf("%d waits planned for %d calls", len(waits), len(calls))
			}
			if tc.want.minWait > 0 && (len(waits) == 0 || waits[0] < tc.want.minWait) {
				t.Errorf("planned waits %v, want the first at least the server's %v", waits, tc.want.minWait)
			}
			for _, w := range waits { // fastest: RetryInitialInterval halved by jitter
				if w < cfg.RetryInitialInterval/2 {
					t.Errorf("planned wait %v below half of retry-initial-interval %v", w, cfg.RetryInitialInterval)
				}
			}
			m := scrape(t, reg)
			for _, code := range tc.want.failureCodes {
				if m["traceport_export_failures_total{code="+code+",exporter="+tc.proto+"}"] == 0 {
					t.Errorf("no failure counted with code %s: %v", code, m)
				}
			}
		})
	}
}

// Jaeger down at start is fine: spans wait and go once it is up.
func TestBackendDownAtStart(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			ln := listen(t)
			addr := ln.Addr().String()
			ln.Close()
			cfg := testConfig(addr, proto)
			e, reg := start(t, cfg)
			pushN(t, e, 3, 100)
			eventually(t, 5*time.Second, "failed attempts", func() bool { return e.Stats().Retries >= 2 })
			checkIdentity(t, e, reg)
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				t.Skipf("port %s taken meanwhile: %v", addr, err)
			}
			be := &backend{tb: t}
			be.start(proto, ln)
			eventually(t, 5*time.Second, "spans delivered", func() bool { return be.received() == 300 })
			eventually(t, time.Second, "settled", settled(e))
			if s := checkIdentity(t, e, reg); s.Exported != 300 {
				t.Errorf("exported %d, want 300", s.Exported)
			}
		})
	}
}

func TestQueueFull(t *testing.T) {
	// Not started: nothing leaves the queue.
	reg := prometheus.NewPedanticRegistry()
	cfg := testConfig("127.0.0.1:9", ProtocolOTLPGRPC)
	cfg.QueueSpans = 1000
	cfg.BatchMaxSpans = 100
	e, err := New(cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(e.Accounts())
	data := request(t, 100)
	admit := func(retrying, want bool) {
		t.Helper()
		ok, after := e.Admit(retrying)
		if ok != want {
			t.Errorf("Admit(retrying=%v) at %d queued = %v, want %v", retrying, e.Stats().Queued, ok, want)
		}
		if !ok && (after < time.Second || after > 5*time.Second) {
			t.Errorf("retryAfter %v, want 1s..5s", after)
		}
	}
	for i := range 9 {
		admit(true, true)
		if err := e.Push(data, 100, true, nil); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}
	admit(true, false) // 900 queued: the last 10% is for clients that never retry
	admit(false, true)
	if err := e.Push(data, 100, false, nil); err != nil {
		t.Fatalf("push into the headroom: %v", err)
	}
	admit(false, false)
	if err := e.Push(data, 100, true, nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("push beyond capacity: %v, want ErrQueueFull", err)
	}
	s := checkIdentity(t, e, reg)
	if s.Queued != 1000 || s.Dropped[ReasonQueueFull] != 100 {
		t.Errorf("stats %+v: want 1000 queued, 100 dropped queue_full", s)
	}
	m := scrape(t, reg)
	if m["traceport_queue_capacity_spans"] != 1000 || m["traceport_queue_spans"] != 1000 {
		t.Errorf("queue gauges: %v", m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e.Shutdown(ctx)
	if s := checkIdentity(t, e, reg); s.Dropped[ReasonShutdown] != 1000 {
		t.Errorf("dropped shutdown %d, want the 1000 left in the never-started queue", s.Dropped[ReasonShutdown])
	}
}

func TestAdmitRetryAfterGrows(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e, err := New(Config{Endpoint: "127.0.0.1:9", QueueSpans: 1000, BatchMaxSpans: 10}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := request(t, 10)
	var last time.Duration
	for e.Stats().Queued < 1000 {
		if ok, after := e.Admit(true); !ok {
			if after < last {
				t.Fatalf("retryAfter fell from %v to %v at %d queued", last, after, e.Stats().Queued)
			}
			last = after
		}
		e.Push(data, 10, false, nil)
	}
	if ok, after := e.Admit(true); ok || after != 5*time.Second {
		t.Errorf("at capacity: Admit = %v, %v; want false, 5s", ok, after)
	}
	checkIdentity(t, e, reg)
}

// Shutdown flushes what is queued at once, without waiting for
// BatchTimeout, and refuses pushes from then on.
func TestShutdownFlushes(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			be := newBackend(t, proto, nil)
			cfg := testConfig(be.addr, proto)
			cfg.BatchTimeout = time.Hour
			e, reg := start(t, cfg)
			pushN(t, e, 5, 100)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			if be.received() != 500 {
				t.Errorf("backend got %d spans, want 500", be.received())
			}
			if err := e.Push(request(t, 10), 10, true, nil); !errors.Is(err, ErrShuttingDown) {
				t.Errorf("push after shutdown: %v, want ErrShuttingDown", err)
			}
			if ok, _ := e.Admit(false); ok {
				t.Error("Admit after shutdown = true")
			}
			s := checkIdentity(t, e, reg)
			if s.Exported != 500 || s.Dropped[ReasonShutdown] != 10 {
				t.Errorf("stats %+v: want 500 exported, 10 dropped shutdown", s)
			}
		})
	}
}

// With a stalled backend, Shutdown gives up at its deadline and counts
// everything not exported as shutdown.
func TestShutdownStalledBackend(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			be := newBackend(t, proto, func(int) reply { return reply{stall: true} })
			cfg := testConfig(be.addr, proto)
			cfg.Timeout = time.Hour // only Shutdown's deadline can end the attempts
			cfg.BatchMaxSpans = 200
			cfg.Senders = 2
			e, reg := start(t, cfg)
			pushN(t, e, 10, 100)
			eventually(t, 5*time.Second, "senders stuck", func() bool { return e.Stats().Inflight == 400 })
			checkIdentity(t, e, reg)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- e.Shutdown(ctx) }()
			select { // a wide margin: what it guards against is an hour
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("shutdown: %v, want deadline exceeded", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("shutdown with a 300ms deadline still waits for the attempts after a minute")
			}
			s := checkIdentity(t, e, reg)
			if s.Dropped[ReasonShutdown] != 1000 || s.Queued != 0 || s.Inflight != 0 {
				t.Errorf("stats %+v: want all 1000 dropped as shutdown", s)
			}
		})
	}
}

// A batch waiting to be retried gets one last attempt at shutdown instead
// of its full backoff, and is counted as shutdown if that fails too.
func TestShutdownStopsRetrying(t *testing.T) {
	var calls atomic.Int32
	be := newBackend(t, ProtocolOTLPGRPC, func(int) reply { calls.Add(1); return reply{code: codes.Unavailable} })
	cfg := testConfig(be.addr, ProtocolOTLPGRPC)
	cfg.RetryInitialInterval = time.Hour
	cfg.RetryMaxInterval = time.Hour
	cfg.RetryMaxElapsed = 0 // until shutdown
	e, reg := start(t, cfg)
	pushN(t, e, 1, 100)
	eventually(t, 5*time.Second, "a retry scheduled", func() bool { return e.Stats().Retries == 1 })
	// Shutdown's deadline is far shorter than the hour of backoff: it ends
	// in time, with the last attempt made, only if it did not wait for it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v (waited for the backoff?)", err)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d calls, want 2 (first, and one at shutdown)", n)
	}
	if s := checkIdentity(t, e, reg); s.Dropped[ReasonShutdown] != 100 {
		t.Errorf("stats %+v: want 100 dropped shutdown", s)
	}
}

func TestNoEndpoint(t *testing.T) {
	e, reg := start(t, Config{})
	pushN(t, e, 3, 100)
	s := checkIdentity(t, e, reg)
	if s.Exported != 300 {
		t.Errorf("exported %d, want 300", s.Exported)
	}
	if got := scrape(t, reg)["traceport_exported_spans_total{exporter=none}"]; got != 300 {
		t.Errorf(`exported{exporter="none"} = %v, want 300`, got)
	}
}

// The identity holds in every scrape while many goroutines push into a
// flaky backend and a small queue.
func TestIdentityUnderLoad(t *testing.T) {
	var n atomic.Int64
	be := newBackend(t, ProtocolOTLPGRPC, func(int) reply {
		switch n.Add(1) % 5 {
		case 0:
			return reply{code: codes.Unavailable}
		case 1:
			return reply{rejected: 1}
		}
		return reply{}
	})
	cfg := testConfig(be.addr, ProtocolOTLPGRPC)
	cfg.QueueSpans = 3000
	cfg.BatchMaxSpans = 500
	cfg.RetryInitialInterval = time.Millisecond
	cfg.RetryMaxInterval = 5 * time.Millisecond
	e, reg := start(t, cfg)
	data := request(t, 50)

	stop := make(chan struct{})
	var scrapes atomic.Int64
	var scraper sync.WaitGroup
	scraper.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			scrapeIdentity(t, reg)
			if u := e.Stats().Unaccounted(); u != 0 {
				t.Errorf("stats: %d unaccounted", u)
			}
			scrapes.Add(1)
		}
	})
	var pushers sync.WaitGroup
	var refused atomic.Int64
	for i := range 8 {
		retrying := i%2 == 0 // like OTLP clients: wait at the door; else like Envoy: push blindly
		pushers.Go(func() {
			for range 200 {
				for retrying {
					if ok, _ := e.Admit(true); ok {
						break
					}
					time.Sleep(200 * time.Microsecond)
				}
				if err := e.Push(data, 50, retrying, nil); err != nil {
					refused.Add(1)
				}
			}
		})
	}
	pushers.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	close(stop)
	scraper.Wait()
	s := checkIdentity(t, e, reg)
	t.Logf("scrapes %d, refused pushes %d, stats %+v", scrapes.Load(), refused.Load(), s)
	if s.Pushed != 8*200*50 {
		t.Errorf("pushed %d, want %d", s.Pushed, 8*200*50)
	}
	if s.Dropped[ReasonQueueFull] != refused.Load()*50 {
		t.Errorf("dropped queue_full %d, want %d", s.Dropped[ReasonQueueFull], refused.Load()*50)
	}
	// Delivery is at least once: an attempt that timed out here may have
	// gone through there, and is sent again.
	timeouts := scrape(t, reg)["traceport_export_failures_total{code=DeadlineExceeded,exporter=otlp-grpc}"]
	if got := be.received(); int(s.Exported) > got || (timeouts == 0 && int(s.Exported) != got) {
		t.Errorf("exported %d, backend accepted %d (%v attempts timed out)", s.Exported, got, timeouts)
	}
	if s.Retries == 0 || s.Exported < s.Pushed/4 {
		t.Errorf("the load did not exercise retries and exports: %+v", s)
	}
	if scrapes.Load() < 10 {
		t.Errorf("only %d scrapes during the run", scrapes.Load())
	}
}

func TestMetricsHelp(t *testing.T) {
	e, reg := start(t, Config{})
	checkIdentity(t, e, reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if !strings.HasPrefix(mf.GetName(), "traceport_") || len(mf.GetHelp()) < 20 {
			t.Errorf("%s: help %q", mf.GetName(), mf.GetHelp())
		}
	}
	for _, n := range []string{"traceport_exporter_pushed_spans_total", "traceport_exported_spans_total",
		"traceport_dropped_spans_total", "traceport_export_retries_total", "traceport_queue_spans",
		"traceport_queue_capacity_spans", "traceport_inflight_spans"} {
		if !names[n] {
			t.Errorf("metric %s missing before any export", n)
		}
	}
}
