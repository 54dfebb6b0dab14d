package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// stream posts one trace of size Zipkin spans every interval to whichever
// traceport target returns, and remembers which spans were acknowledged
// (202) and how many were sent at all.
type stream struct {
	t        testing.TB
	service  string
	size     int
	interval time.Duration

	mu     sync.Mutex
	target *traceport
	acked  map[string]bool
	all    map[string]bool // every span sent
	sent   int             // spans in every request made, answered or not
	failed int             // requests not acknowledged

	stop chan struct{}
	done chan struct{}
}

func startStream(t testing.TB, tp *traceport, service string, size int, interval time.Duration) *stream {
	s := &stream{t: t, service: service, size: size, interval: interval, target: tp,
		acked: map[string]bool{}, all: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *stream) run() {
	defer close(s.done)
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		spans, want := plainSpans(s.t, s.service, s.size)
		s.mu.Lock()
		tp := s.target
		s.sent += len(spans)
		for k := range want {
			s.all[k] = true
		}
		s.mu.Unlock()
		if tp == nil {
			s.mu.Lock()
			s.failed++
			s.mu.Unlock()
			continue
		}
		err := tp.tryPostZipkin(zipkinJSON(s.t, spans))
		s.mu.Lock()
		if err != nil {
			s.failed++
		} else {
			for k := range want {
				s.acked[k] = true
			}
		}
		s.mu.Unlock()
	}
}

// retarget points the stream at another traceport (nil: requests fail).
func (s *stream) retarget(tp *traceport) {
	s.mu.Lock()
	s.target = tp
	s.mu.Unlock()
}

func (s *stream) halt() {
	close(s.stop)
	<-s.done
}

func (s *stream) snapshot() (acked map[string]bool, sent, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	acked = make(map[string]bool, len(s.acked))
	for k := range s.acked {
		acked[k] = true
	}
	return acked, s.sent, s.failed
}

// storedCounts is how many times Jaeger's query API shows each span
// ("traceid/spanid") of service.
func (j *jaeger) storedCounts(service string) (map[string]int, error) {
	traces, err := j.traces(service)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, tr := range traces {
		for _, s := range tr.Spans {
			out[normTraceID(s.TraceID)+"/"+normSpanID(s.SpanID)]++
		}
	}
	return out, nil
}

// accepted is the spans Jaeger's receivers accepted, from its own metrics:
// with the unique spans it stores, it tells how many arrived twice.
func (j *jaeger) accepted() (float64, error) {
	resp, err := j.http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", j.ports.Metrics))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("jaeger /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, err
	}
	var n float64
	found := false
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "otelcol_receiver_accepted_spans") {
			continue
		}
		found = true
		n += metrics{name: mf}.sum(name)
	}
	if !found {
		return 0, fmt.Errorf("jaeger /metrics: no otelcol_receiver_accepted_spans")
	}
	return n, nil
}

// restartIdentity is the accounting identity of a traceport that replayed
// a queue dir: received + replayed = exported + dropped + queued + in
// flight.
func restartIdentity(m metrics) error {
	a := m.account()
	replayed := m.sum("traceport_queue_replayed_spans_total")
	if out := a.Exported + a.Dropped + a.Queued + a.InFlight; a.Received+replayed != out {
		return fmt.Errorf("identity broken: %s, replayed %g: out - in = %+g", a, replayed, out-a.Received-replayed)
	}
	return nil
}

// scrapeUntil polls tp until cond accepts a scrape, checking the
// across-restart identity on every scrape on the way.
func scrapeUntil(t testing.TB, tp *traceport, timeout time.Duration, cond func(m metrics) error) metrics {
	t.Helper()
	var last metrics
	eventually(t, timeout, func() error {
		m, err := tp.scrape()
		if err != nil {
			return err
		}
		if err := restartIdentity(m); err != nil {
			t.Fatalf("%v\n%s", err, m.dump("traceport_"))
		}
		last = m
		return cond(m)
	})
	return last
}

func drained(m metrics) error {
	if a := m.account(); a.Queued != 0 || a.InFlight != 0 {
		return fmt.Errorf("not drained: %s", a)
	}
	return nil
}

// TestKill9PersistentQueue kills traceport with SIGKILL while spans stream
// in with --queue-dir on, and starts it again on the same dir: every span
// acknowledged before the kill reaches Jaeger. Delivery is at least once:
// the test counts duplicates by Jaeger's own accepted-spans counter against
// the unique spans it stores, and logs them.
func TestKill9PersistentQueue(t *testing.T) {
	t.Parallel()
	j := startJaeger(t)
	dir := filepath.Join(t.TempDir(), "queue")
	args := append([]string{"--jaeger", j.otlpGRPC(), "--queue-dir", dir, "--retry-max-elapsed", "2m"}, fastRetries...)
	// A long batch timeout keeps spans waiting in the queue, so the kill
	// finds some there.
	args = append(args, "--batch-timeout", "700ms")
	tp := startTraceport(t, args...)

	const service = "kill9"
	var streams []*stream
	for range 3 {
		streams = append(streams, startStream(t, tp, service, 10, 7*time.Millisecond))
	}
	time.Sleep(1500 * time.Millisecond)
	before, err := tp.scrape()
	if err != nil {
		t.Fatal(err)
	}
	tp.proc.kill()
	for _, s := range streams {
		s.halt()
	}
	acked, all := map[string]bool{}, map[string]bool{}
	sent, failed := 0, 0
	for _, s := range streams {
		a, n, f := s.snapshot()
		for k := range a {
			acked[k] = true
		}
		s.mu.Lock()
		for k := range s.all {
			all[k] = true
		}
		s.mu.Unlock()
		sent += n
		failed += f
	}
	if len(acked) == 0 {
		t.Fatal("nothing acknowledged before the kill")
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
	t.Logf("killed: %d spans acknowledged, %d sent in %d unanswered requests; last scrape before: %s; %d segment files",
		len(acked), sent-len(acked), failed, before.account(), len(segs))

	tp2 := startTraceport(t, args...)
	m := scrapeUntil(t, tp2, 30*time.Second, drained)
	replayed := m.sum("traceport_queue_replayed_spans_total")
	if replayed == 0 {
		t.Error("nothing replayed: the kill found the queue empty, the test proves nothing")
	}
	if d := m.by("traceport_dropped_spans_total", "reason"); len(d) != 0 {
		t.Errorf("dropped after restart: %v", d)
	}

	var counts map[string]int
	eventually(t, 30*time.Second, func() error {
		counts, err = j.storedCounts(service)
		if err != nil {
			return err
		}
		missing := 0
		for k := range acked {
			if counts[k] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged spans missing from Jaeger", missing, len(acked))
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // Jaeger's batch processor: let late duplicates land
	counts, err = j.storedCounts(service)
	if err != nil {
		t.Fatal(err)
	}
	shown := 0
	for _, n := range counts {
		shown += n
	}
	accepted, err := j.accepted()
	if err != nil {
		t.Fatal(err)
	}
	unacked := len(counts) - len(acked) // stored, though their request was never answered
	t.Logf("replayed %g spans; Jaeger stores %d unique spans (%d acknowledged, %d from requests the kill left unanswered), "+
		"its query API shows %d, its receivers accepted %g: %g duplicates (%.2f%% of acknowledged)",
		replayed, len(counts), len(acked), unacked, shown, accepted, accepted-float64(len(counts)),
		100*(accepted-float64(len(counts)))/float64(len(acked)))
	if accepted < float64(len(counts)) {
		t.Errorf("Jaeger accepted %g spans but stores %d: the count is wrong", accepted, len(counts))
	}
	for k := range counts {
		if !all[k] {
			t.Errorf("span %s stored, never sent", k)
		}
	}
	tp2.stop()
}

// TestJaegerDown60s keeps a steady 200 spans/s flowing while Jaeger is down
// for 60 s, and restarts traceport (SIGTERM) halfway through the outage.
// With --queue-dir nothing acknowledged is lost: what was queued at the
// restart is replayed. With the memory queue (small, so it overflows as
// well) the spans traceport took in that never reach Jaeger are exactly
// traceport_dropped_spans_total of the two processes. Jaeger's memory
// storage forgets on kill, so the stream pauses and drains before the kill,
// and the restarted Jaeger is checked for the spans sent from the kill on.
func TestJaegerDown60s(t *testing.T) {
	t.Parallel()
	down := 60 * time.Second
	if s := os.Getenv("TRACEPORT_E2E_OUTAGE"); s != "" { // shorter while developing
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		down = d
	}
	for _, persistent := range []bool{true, false} {
		name := "memory"
		if persistent {
			name = "persistent"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			j := startJaeger(t)
			args := append([]string{"--jaeger", j.otlpGRPC(), "--retry-max-elapsed", "5m", "--export-timeout", "1s",
				"--shutdown-timeout", "3s", "--batch-max-spans", "500"}, fastRetries...)
			if persistent {
				args = append(args, "--queue-dir", filepath.Join(t.TempDir(), "queue"))
			} else {
				// Room for 30% of the outage at 200 spans/s: it overflows.
				args = append(args, "--queue-spans", fmt.Sprint(max(500, int(down.Seconds()*200*0.3))))
			}
			tp := startTraceport(t, args...)
			service := "outage-" + name

			// Before: Jaeger up. Drain and check, so the kill loses nothing
			// that was delivered.
			s1 := startStream(t, tp, service, 20, 100*time.Millisecond)
			time.Sleep(2 * time.Second)
			s1.halt()
			acked1, _, failed1 := s1.snapshot()
			if failed1 > 0 {
				t.Fatalf("%d requests failed with Jaeger up", failed1)
			}
			scrapeUntil(t, tp, 10*time.Second, drained)
			eventually(t, 10*time.Second, func() error { return allStored(j, service, acked1) })
			time.Sleep(300 * time.Millisecond)
			m1, err := tp.scrape()
			if err != nil {
				t.Fatal(err)
			}
			receivedBefore := m1.account().Received

			j.kill()
			outage := time.Now()
			s2 := startStream(t, tp, service, 20, 100*time.Millisecond)
			time.Sleep(down / 2)
			s2.retarget(nil)
			m, err := tp.scrape()
			if err != nil {
				t.Fatal(err)
			}
			overflow1 := m.by("traceport_rejected_requests_total", "reason")["queue_full"]
			t.Logf("restarting traceport mid-outage: %s", m.account())
			tp.stop()
			exported1, dropped1 := stoppedLine(t, tp)
			tp = startTraceport(t, args...)
			s2.retarget(tp)
			m = scrapeUntil(t, tp, 5*time.Second, func(metrics) error { return nil })
			replayed := m.sum("traceport_queue_replayed_spans_total")
			// At exit, received = exported + dropped + what stayed queued on
			// disk, which the new process replayed.
			received1 := exported1 + dropped1 + replayed
			time.Sleep(time.Until(outage.Add(down)))
			j.start()
			t.Logf("Jaeger back after %s", time.Since(outage).Round(time.Second))
			time.Sleep(2 * time.Second)
			s2.halt()
			acked2, sent2, failed2 := s2.snapshot()

			m = scrapeUntil(t, tp, 60*time.Second, drained)
			a := m.account()
			dropped2 := m.by("traceport_dropped_spans_total", "reason")
			// Spans traceport took in from the kill on, by both processes.
			took := received1 - receivedBefore + a.Received
			var stored map[string]int
			if persistent {
				eventually(t, 30*time.Second, func() error {
					var err error
					stored, err = j.storedCounts(service)
					if err != nil {
						return err
					}
					return allStoredCounts(stored, acked2)
				})
			}
			// traceport has exported all it will; Jaeger's batch processor
			// stores it a little later, later still on a busy machine.
			eventually(t, 60*time.Second, func() error {
				var err error
				stored, err = j.storedCounts(service)
				if err != nil {
					return err
				}
				if lost := took - float64(len(stored)); lost > dropped1+a.Dropped {
					return fmt.Errorf("%g spans taken in and not in Jaeger, but dropped_spans_total = %g + %g", lost, dropped1, a.Dropped)
				}
				return nil
			})
			accepted, err := j.accepted()
			if err != nil {
				t.Fatal(err)
			}
			ackedLost := 0
			for k := range acked2 {
				if stored[k] == 0 {
					ackedLost++
				}
			}
			lost := took - float64(len(stored))
			t.Logf("outage: %d spans sent, %d acknowledged (%d of them lost), %d requests refused or failed; "+
				"first traceport: exported %g, dropped %g, refused %g requests as queue_full; second: replayed %g, %s, dropped %v, refused %v; "+
				"Jaeger holds %d unique spans, accepted %g (%g duplicates); %g spans taken in and lost",
				sent2, len(acked2), ackedLost, failed2, exported1, dropped1, overflow1, replayed, a, dropped2,
				m.by("traceport_rejected_requests_total", "reason"), len(stored), accepted, accepted-float64(len(stored)), lost)
			if lost != dropped1+a.Dropped {
				t.Errorf("%g spans taken in and not in Jaeger, but dropped_spans_total = %g + %g", lost, dropped1, a.Dropped)
			}
			if persistent {
				if dropped1 != 0 || a.Dropped != 0 || ackedLost != 0 {
					t.Errorf("persistent queue: dropped %g + %v, %d acknowledged spans lost", dropped1, dropped2, ackedLost)
				}
				if replayed == 0 {
					t.Error("nothing replayed after the restart")
				}
			} else {
				if ackedLost == 0 || overflow1 == 0 {
					t.Errorf("the memory queue lost no acknowledged span at the restart (%d) or never overflowed (%g refused): the test shows nothing",
						ackedLost, overflow1)
				}
				if float64(ackedLost) > dropped1+a.Dropped {
					t.Errorf("%d acknowledged spans lost, more than dropped_spans_total %g", ackedLost, dropped1+a.Dropped)
				}
			}
			tp.stop()
		})
	}
}

var stoppedRE = regexp.MustCompile(`msg=stopped exported=(\d+) dropped=(\d+)`)

// stoppedLine reads the final accounts from a stopped traceport's log.
func stoppedLine(t testing.TB, tp *traceport) (exported, dropped float64) {
	t.Helper()
	m := stoppedRE.FindStringSubmatch(tp.proc.out.String())
	if m == nil {
		t.Fatalf("no final accounts in traceport's log:\n%s", tail(tp.proc.out.String(), 2000))
	}
	e, _ := strconv.ParseFloat(m[1], 64)
	d, _ := strconv.ParseFloat(m[2], 64)
	return e, d
}

func allStored(j *jaeger, service string, want map[string]bool) error {
	got, err := j.storedCounts(service)
	if err != nil {
		return err
	}
	return allStoredCounts(got, want)
}

func allStoredCounts(got map[string]int, want map[string]bool) error {
	missing := 0
	for k := range want {
		if got[k] == 0 {
			missing++
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d acknowledged spans not in Jaeger", missing, len(want))
	}
	return nil
}
