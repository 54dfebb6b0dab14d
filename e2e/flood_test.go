package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"

	"github.com/traceport/traceport/bench"
)

// slowBackend accepts every export after a pause: a Jaeger that keeps up
// with a fixed rate and no more.
type slowBackend struct {
	ptraceotlp.UnimplementedGRPCServer
	pause    time.Duration
	accepted atomic.Int64
}

func (s *slowBackend) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	time.Sleep(s.pause)
	s.accepted.Add(int64(req.Traces().SpanCount()))
	return ptraceotlp.NewExportResponse(), nil
}

// rssBytes is the process's peak resident set (VmHWM).
func rssBytes(t testing.TB, pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

// TestFlood: OTLP and Envoy Zipkin clients send flat out for 30 s at many
// times what the backend takes. traceport must stay under --memory-limit,
// refuse with 429 / RESOURCE_EXHAUSTED (which OTLP clients retry), keep the
// accounting identity on every scrape, and serve normally seconds later.
func TestFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s flood")
	}
	flood := 30 * time.Second
	if d, err := time.ParseDuration(os.Getenv("TRACEPORT_E2E_FLOOD")); err == nil {
		flood = d
	}
	backend := &slowBackend{pause: 20 * time.Millisecond} // 1 sender × 1000 spans / 20 ms: ~50k spans/s at most
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, backend)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	const memoryLimit = 256 << 20
	tp := startTraceportBin(t, plainBin, "--log-level", "warn", "--summary-interval", "0",
		"--jaeger", ln.Addr().String(), "--jaeger-compression", "none", "--senders", "1",
		"--batch-max-spans", "1000", "--queue-spans", "20000", "--memory-limit", strconv.Itoa(memoryLimit))

	ctx, cancel := context.WithTimeout(context.Background(), flood)
	defer cancel()
	var (
		wg      sync.WaitGroup
		results = make([]bench.Result, 3)
		errs    = make([]error, 3)
	)
	loads := []bench.Config{
		{Target: tp.addr, Protocol: bench.OTLPGRPC, SpansPerRequest: 100, Connections: 2, Streams: 8, Duration: flood},
		{Target: tp.addr, Protocol: bench.ZipkinJSON, SpansPerRequest: 10, Connections: 8, Duration: flood},
		{Target: tp.addr, Protocol: bench.OTLPHTTP, SpansPerRequest: 100, Connections: 4, Duration: flood},
	}
	for i, cfg := range loads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = bench.Run(ctx, cfg)
		}()
	}
	// The identity holds on every scrape under the flood.
	scrapes, broken := 0, ""
	for ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		m, err := tp.scrape()
		if err != nil {
			continue // a scrape may time out under the flood; the next one counts
		}
		scrapes++
		if err := m.account().identity(); err != nil && broken == "" {
			broken = err.Error()
		}
	}
	wg.Wait()
	if broken != "" {
		t.Errorf("under the flood: %s", broken)
	}
	if scrapes < 5 {
		t.Errorf("only %d scrapes of /metrics answered during the flood", scrapes)
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s load: %v", loads[i].Protocol, err)
		}
	}
	refused := 0
	for i, r := range results {
		t.Logf("%s: accepted %d spans (%.0f/s), errors %v", loads[i].Protocol, r.AcceptedSpans, float64(r.AcceptedSpans)/r.Elapsed.Seconds(), r.Errors)
		timedOut := int64(0)
		for k, n := range r.Errors {
			switch {
			case strings.Contains(k, "ResourceExhausted") || strings.Contains(k, "429"):
				refused += int(n)
			case strings.Contains(k, "DeadlineExceeded") || strings.Contains(k, "transport"):
				// The flooding client's own 10 s deadline: on 2 cores shared
				// with this (possibly race-instrumented) generator, a few
				// requests wait their turn too long. A few, not many.
				timedOut += n
			default:
				t.Errorf("%s: unexpected errors %q: %d", loads[i].Protocol, k, n)
			}
		}
		if timedOut*20 > r.Requests {
			t.Errorf("%s: %d of %d requests timed out: more than 5%%", loads[i].Protocol, timedOut, r.Requests)
		}
	}
	if refused == 0 {
		t.Errorf("no client was told to back off (429 / RESOURCE_EXHAUSTED) at several times the sustainable rate")
	}
	if rss := rssBytes(t, tp.proc.cmd.Process.Pid); rss >= memoryLimit {
		t.Errorf("peak RSS %d MiB, over --memory-limit %d MiB", rss>>20, memoryLimit>>20)
	} else {
		t.Logf("peak RSS %d MiB of --memory-limit %d MiB", rss>>20, memoryLimit>>20)
	}

	// Normal service resumes within seconds: a Zipkin post is taken, and
	// everything taken reaches the backend.
	start := time.Now()
	eventually(t, 10*time.Second, func() error { return tp.tryPostZipkin(bench.EnvoyZipkinJSON(2, 99)) })
	t.Logf("normal service %v after the flood", time.Since(start).Round(time.Millisecond))
	m := tp.waitMetrics(t, 60*time.Second, func(m metrics) error {
		if a := m.account(); a.Queued+a.InFlight > 0 {
			return fmt.Errorf("still queued: %s", a)
		}
		return nil
	})
	a := m.account()
	if got := backend.accepted.Load(); float64(got) != a.Exported {
		t.Errorf("backend accepted %d spans, traceport counts %v exported", got, a.Exported)
	}
	if d := m.by("traceport_dropped_spans_total", "reason"); d["queue_full"] == 0 && refused == 0 {
		t.Logf("dropped: %v", d)
	}
}
