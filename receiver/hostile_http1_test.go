package receiver

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/traceport/traceport/bench"
)

// legitClients runs two Envoy-like clients (keep-alive, fast-path shaped
// requests) until stop is called, which returns how many requests they sent
// and how many got a 202 within a second.
func legitHTTP1Clients(addr string) (stop func() (sent, answered int)) {
	body := bench.EnvoyZipkinJSON(5, 1)
	req := []byte(envoyHead("/api/v2/spans", len(body), "") + string(body))
	var mu sync.Mutex
	var wg sync.WaitGroup
	var sent, answered int
	done := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			for {
				select {
				case <-done:
					if c != nil {
						c.Close()
					}
					return
				case <-time.After(50 * time.Millisecond):
				}
				if c == nil {
					var err error
					if c, err = net.Dial("tcp", addr); err != nil {
						continue
					}
					br = bufio.NewReader(c)
				}
				c.SetDeadline(time.Now().Add(time.Second))
				ok := false
				if _, err := c.Write(req); err == nil {
					resp, err := http.ReadResponse(br, nil)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						ok = resp.StatusCode == http.StatusAccepted
					}
				}
				if !ok {
					c.Close()
					c = nil
				}
				mu.Lock()
				sent++
				if ok {
					answered++
				}
				mu.Unlock()
			}
		}()
	}
	return func() (int, int) {
		close(done)
		wg.Wait()
		return sent, answered
	}
}

// TestHTTP1DeclaredLengths: heads that declare 20 MiB bodies and send one
// byte cost what arrived, not what was declared, and legitimate clients
// keep being answered under --memory-limit 256Mi.
func TestHTTP1DeclaredLengths(t *testing.T) {
	tr := startReceiver(t, Config{MaxRequestBytes: 20 << 20, MemoryLimit: 256 << 20})
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const attackers = 40
	for range attackers {
		c, err := net.Dial("tcp", tr.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte(envoyHead("/api/v2/spans", 20971520, "") + "["))
	}
	stop := legitHTTP1Clients(tr.addr)
	deadline := time.Now().Add(20 * time.Second)
	for tr.rc.budget.InUse() < attackers && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // every attacker's one byte has arrived
	}
	time.Sleep(2 * time.Second)
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	sent, answered := stop()
	if grew := int64(during.HeapInuse) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("heap grew by %d MiB for %d heads declaring 20 MiB with 1 byte each", grew>>20, attackers)
	}
	if got := tr.rc.budget.InUse(); got != attackers {
		t.Errorf("in-flight budget holds %d bytes, want the %d that arrived", got, attackers)
	}
	if sent == 0 || answered*10 < sent*9 {
		t.Errorf("legitimate clients: %d of %d requests answered within 1 s, want at least 90%%", answered, sent)
	}
}

// TestHTTP1TimeoutsFireOnce: a slow head is cut at --read-header-timeout
// and a slow body at --read-timeout, once, not again when net/http takes
// over. The margins are wide; twice the timeout is what they rule out.
func TestHTTP1TimeoutsFireOnce(t *testing.T) {
	const header, read = 2 * time.Second, 3 * time.Second
	tr := startReceiver(t, Config{ReadHeaderTimeout: header, ReadTimeout: read})
	f := func(name string, timeout time.Duration, head string, trickle string) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", tr.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			c.Write([]byte(head))
			go func() {
				for range 100 {
					time.Sleep(100 * time.Millisecond)
					if _, err := c.Write([]byte(trickle)); err != nil {
						return
					}
				}
			}()
			c.SetReadDeadline(time.Now().Add(4 * timeout))
			reply, _ := io.ReadAll(c)
			took := time.Since(start)
			if took < timeout*9/10 || took > timeout*3/2 { // the server's clock starts at its accept, a little before Dial returns
				t.Errorf("cut after %v, want at %v (twice it is the bug)", took.Round(time.Millisecond), timeout)
			}
			t.Logf("cut after %v: %q", took.Round(time.Millisecond), reply)
		})
	}
	f("slow head", header, "POST /api/v2/spans HTTP/1.1\r\nHost: x\r\n", "X-A: b\r\n")
	f("slow body", read, envoyHead("/api/v2/spans", 100000, "")+"[", " ")
}

// TestHTTP1WriteDeadline: a client that sends a request and never reads the
// reply does not hold the fast path's goroutine past --read-timeout.
func TestHTTP1WriteDeadline(t *testing.T) {
	tr := startReceiver(t, Config{ReadTimeout: 200 * time.Millisecond})
	server, client := net.Pipe() // unbuffered: the reply's write blocks until read
	defer client.Close()
	done := make(chan struct{})
	go func() { tr.rc.transport.ServeHTTP1Conn(server); close(done) }()
	client.Write([]byte(envoyHead("/api/v2/spans", 2, "") + "[]"))
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the fast path is still writing to a client that does not read, 30 s on")
	}
}

// TestInflightBudget: requests charge the budget as their bodies arrive and
// free it on every way out (queued, refused, too large, malformed, cut
// off); a request that does not fit is refused with 429, Retry-After and
// reason memory_limit; traceport_inflight_request_bytes shows the holding.
// On the fast path and on net/http's.
func TestInflightBudget(t *testing.T) {
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("fast path off=%v", off), func(t *testing.T) {
			tr := startReceiverBudget(t, Config{MaxRequestBytes: 32 << 10, ReadTimeout: 5 * time.Second}, 64<<10)
			tr.rc.transport.SetFastPaths(!off, true)
			good := bench.EnvoyZipkinJSON(5, 1)
			gz := gzipped(good)
			otlp := bench.SDKOTLP(5, 1)
			big := bytes.Repeat([]byte(" "), 20<<10)
			big[0], big[len(big)-1] = '[', ']'
			ask := func(raw string, want int) string {
				t.Helper()
				got := exchange(t, tr.addr, []byte(raw), true, 1)
				if len(got) != 1 || got[0].status != want {
					t.Fatalf("%.60q: got %v, want %d", raw, got, want)
				}
				return got[0].body + got[0].header.Get("Retry-After")
			}
			zipkin := func(body []byte, extra string) string {
				return envoyHead("/api/v2/spans", len(body), extra) + string(body)
			}
			otlpReq := func(body []byte) string {
				return fmt.Sprintf("POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			}
			mix := func() {
				ask(zipkin(good, ""), 202)
				ask(zipkin(big, ""), 202)
				ask(zipkin([]byte("[{,]}"), ""), 400)
				ask(zipkin(gz, "Content-Encoding: gzip\r\n"), 202)
				ask(otlpReq(otlp), 200)
				ask(otlpReq([]byte{0xff, 0xff}), 400)
				ask(envoyHead("/api/v2/spans", 2<<20, ""), 413)
				ask("POST /api/v2/spans HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+fmt.Sprintf("%x\r\n%s\r\n", 33<<10, make([]byte, 33<<10)), 413)
				ask(envoyHead("/api/v2/spans", 1000, "")+"[{", 400) // cut off
				tr.sink.pushFails = true
				ask(zipkin(good, ""), 429)
				tr.sink.pushFails = false
			}
			mix()

			// Two uploads hold 58 KiB of the 64 KiB budget while they last.
			var holders []net.Conn
			for range 2 {
				c, err := net.Dial("tcp", tr.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.Write([]byte(envoyHead("/api/v2/spans", 30<<10, "") + "[" + strings.Repeat(" ", 29<<10-1)))
				holders = append(holders, c)
			}
			waitFor(t, "the uploads' 58 KiB charged", func() bool { return tr.rc.budget.InUse() == 58<<10 })
			if g := gatherValue(t, tr.reg, "traceport_inflight_request_bytes", nil); g != 58<<10 {
				t.Errorf("traceport_inflight_request_bytes = %v, want %d", g, 58<<10)
			}
			msg := ask(zipkin(big, ""), 429)
			if !strings.Contains(msg, "in-flight request budget") || !strings.HasSuffix(msg, "1") {
				t.Errorf("over the budget: %q, want a message naming the budget and Retry-After: 1", msg)
			}
			if got := tr.rejected(t, protoZipkin, reasonMemoryLimit); got != 1 {
				t.Errorf("rejected_requests_total{zipkin,memory_limit} = %v, want 1", got)
			}
			ask(zipkin(good, ""), 202) // what fits still passes
			for _, c := range holders {
				c.Close()
			}
			waitFor(t, "every hold freed", func() bool { return tr.rc.budget.InUse() == 0 })
			ask(zipkin(big, ""), 202)
			mix()
			waitFor(t, "every hold freed", func() bool { return tr.rc.budget.InUse() == 0 })
		})
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFastPathMetrics: traceport_fastpath_requests_total counts what the
// HTTP/1.1 fast path served and handed over; with the fast paths off it
// serves nothing.
func TestFastPathMetrics(t *testing.T) {
	body := bench.EnvoyZipkinJSON(2, 1)
	for _, off := range []bool{false, true} {
		tr := startReceiver(t, Config{FastPathsOff: off})
		exchange(t, tr.addr, []byte(envoyHead("/api/v2/spans", len(body), "")+string(body)+"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), false, 2)
		served := gatherValue(t, tr.reg, "traceport_fastpath_requests_total", map[string]string{"path": "http1", "outcome": "served"})
		handed := gatherValue(t, tr.reg, "traceport_fastpath_requests_total", map[string]string{"path": "http1", "outcome": "handed_over"})
		if want := map[bool][2]float64{false: {1, 1}, true: {0, 0}}[off]; served != want[0] || handed != want[1] {
			t.Errorf("--fast-paths off=%v: served %v, handed over %v; want %v", off, served, handed, want)
		}
	}
}
