package receiver

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fsyncSink accounts a push at once, then waits as a persistent queue waits
// for its fsync: for wait, or until release is closed.
type fsyncSink struct {
	wait    time.Duration
	release chan struct{} // nil: sleep wait instead
	entered chan int      // each push's spans as it starts waiting; may be nil
	spans   atomic.Int64
}

func (s *fsyncSink) Admit(bool) (bool, time.Duration) { return true, 0 }

func (s *fsyncSink) Push(_ []byte, spans int, _ bool, accounted func()) error {
	s.spans.Add(int64(spans))
	accounted()
	if s.entered != nil {
		s.entered <- spans
	}
	if s.release != nil {
		<-s.release
	} else {
		time.Sleep(s.wait)
	}
	return nil
}

// Describe and Collect make the sink its own accounts collector, as the
// exporter's is: the receiver collects it under its books.
func (s *fsyncSink) Describe(ch chan<- *prometheus.Desc) { ch <- pushedDesc }
func (s *fsyncSink) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(pushedDesc, prometheus.CounterValue, float64(s.spans.Load()))
}

var pushedDesc = prometheus.NewDesc("test_sink_pushed_spans_total", "Spans the sink accounted.", nil, nil)

func startFsyncReceiver(t *testing.T, sink *fsyncSink) (addr string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{MaxRequestBytes: 1 << 20, MaxServices: 100, Accounts: sink}
	rc := New(cfg, sink, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go rc.Serve(ln)
	t.Cleanup(func() { rc.Shutdown(t.Context()) })
	return ln.Addr().String()
}

// postSpans posts one span as Zipkin JSON and returns the status, or 0.
func postSpans(c *http.Client, addr string) int {
	body := []byte(`[{"traceId":"5af7183fb1d4cf5f","id":"6b221d5bc9e6496c","name":"get","timestamp":1700000000000000,"duration":2,"localEndpoint":{"serviceName":"s"}}]`)
	resp, err := c.Post("http://"+addr+"/api/v2/spans", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func scrapeOnce(c *http.Client, addr string) error {
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// A scrape never waits for a push that waits for its fsync, and intake goes
// on while a scrape runs: the receiver's books are held only until the sink
// has accounted the spans. Before, a scrape waited for the slowest fsync
// and every new request waited behind the scrape.
func TestScrapeDoesNotWaitForFsync(t *testing.T) {
	sink := &fsyncSink{release: make(chan struct{}), entered: make(chan int, 8)}
	addr := startFsyncReceiver(t, sink)
	c := &http.Client{Timeout: 30 * time.Second}
	defer close(sink.release)

	var pushes sync.WaitGroup
	pushes.Go(func() { postSpans(c, addr) })
	<-sink.entered // request A waits in its "fsync"

	scraped := make(chan error, 1)
	go func() { scraped <- scrapeOnce(c, addr) }()
	select {
	case err := <-scraped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a scrape waited for a push's fsync")
	}

	// With a scrape loop running, a second request still reaches the sink
	// while the first one is waiting.
	stop := make(chan struct{})
	var scrapes sync.WaitGroup
	scrapes.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				scrapeOnce(c, addr)
			}
		}
	})
	pushes.Go(func() { postSpans(c, addr) })
	select {
	case <-sink.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("intake stalled behind a scrape while a push waited for its fsync")
	}
	close(stop)
	scrapes.Wait()
}

// Intake latency with a scrape loop stays within 10% of intake latency
// without one (p99 of a steady sender), with fsyncs of 100 ms. The slack of
// a quarter fsync is for a loaded 2-core machine; the stall this guards
// against added a whole fsync to the tail (measured: p99 106 ms without
// scrapes, 203 ms with, before; 106 and 108 ms after).
func TestScrapeLoopKeepsIntakeLatency(t *testing.T) {
	if raceEnabled {
		t.Skip("measures latency, which the race detector's cost would swamp; make test runs it again without -race")
	}
	sink := &fsyncSink{wait: 100 * time.Millisecond}
	addr := startFsyncReceiver(t, sink)
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

	p99 := func(withScrapes bool) time.Duration {
		stop := make(chan struct{})
		var scrapes sync.WaitGroup
		if withScrapes { // a scrape every 20 ms: hundreds of times Prometheus' pace
			scrapes.Go(func() {
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						scrapeOnce(c, addr)
					}
				}
			})
		}
		var mu sync.Mutex
		var lat []time.Duration
		var senders sync.WaitGroup
		for range 4 {
			senders.Go(func() {
				for range 15 {
					start := time.Now()
					if code := postSpans(c, addr); code != http.StatusAccepted {
						t.Errorf("status %d", code)
					}
					mu.Lock()
					lat = append(lat, time.Since(start))
					mu.Unlock()
				}
			})
		}
		senders.Wait()
		close(stop)
		scrapes.Wait()
		slices.Sort(lat)
		return lat[len(lat)*99/100]
	}
	p99(false) // warm up connections
	// The best of three rounds each: noise only ever adds latency.
	without, with := time.Hour, time.Hour
	for range 3 {
		without = min(without, p99(false))
		with = min(with, p99(true))
	}
	t.Logf("intake p99: %v without scrapes, %v with a scrape loop", without, with)
	if with > without+without/10+sink.wait/4 {
		t.Errorf("intake p99 %v with scrapes, %v without: scrapes stall intake", with, without)
	}
}
