package receiver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"runtime/metrics"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/internal/h2test"
	"github.com/traceport/traceport/transport"
)

// settingsAcks counts the SETTINGS ACKs the server sent.
func (c *h2Client) settingsAcks() int {
	return c.count(func(ev h2Event) bool { return ev.typ == http2.FrameSettings && ev.flags.Has(http2.FlagSettingsAck) })
}

// A client that waits for the ACK of its SETTINGS before its first request
// (RFC 9113 §6.5.3: "immediately"; h2spec does) gets it before routing,
// and exactly once, whichever server the connection then goes to.
func TestH2SettingsAckedBeforeRouting(t *testing.T) {
	msg := grpcMessage(0, bench.SDKOTLP(2, 1))
	for _, tc := range []struct {
		name    string
		headers []hpack.HeaderField
		body    []byte
	}{
		{"fast path", exportHeaders(), msg},
		{"grpc.Server (zstd)", exportHeaders("grpc-encoding", "zstd"), grpcMessage(1, []byte("not zstd"))},
		{"net/http", hdrs(":method", "GET", ":scheme", "http", ":path", "/healthz", ":authority", "traceport"), nil},
	} {
		for _, settings := range [][]http2.Setting{nil, {{ID: http2.SettingInitialWindowSize, Val: 1 << 20}}} {
			t.Run(fmt.Sprintf("%s, %d settings", tc.name, len(settings)), func(t *testing.T) {
				tr := startReceiver(t, Config{})
				c := dialH2(t, tr.addr, settings...)
				c.waitUntil("the ACK of the client's SETTINGS, before any request", func() bool {
					for _, ev := range c.events {
						if ev.typ == http2.FrameSettings && ev.flags.Has(http2.FlagSettingsAck) {
							return true
						}
					}
					return false
				})
				c.headers(1, tc.headers, tc.body == nil, 1)
				if tc.body != nil {
					c.data(1, tc.body, true)
				}
				c.await(1)
				c.barrier([8]byte{'d', 'o', 'n', 'e'})
				if n := c.settingsAcks(); n != 1 {
					t.Errorf("%d SETTINGS ACKs for the client's one SETTINGS, want 1:\n%s", n, c.frames())
				}
				if o := c.outcome(1); o.text == "" || o.code == noReply && tc.body != nil {
					t.Errorf("no reply: %s", o.text)
				}
			})
		}
	}
}

// Frames the sniffer must refuse without holding what they declare: a
// frame longer than the 16 KiB it advertised (FRAME_SIZE_ERROR), and
// SETTINGS with more entries than net/http allows (PROTOCOL_ERROR).
func TestH2SnifferRefuses(t *testing.T) {
	tr := startReceiver(t, Config{})
	for _, tc := range []struct {
		name  string
		frame []byte
		code  http2.ErrCode
	}{
		{"HEADERS declaring 16 MiB", []byte{0xff, 0xff, 0xff, frameHeaders, flagEndHeaders, 0, 0, 0, 1}, http2.ErrCodeFrameSize},
		{"SETTINGS of 101 entries", frame(frameSettings, 0, 0, make([]byte, 6*101)), http2.ErrCodeProtocol},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialH2(t, tr.addr)
			c.raw(tc.frame)
			ga := c.awaitGoAway()
			if ga.code != tc.code {
				t.Errorf("%v, want GOAWAY %v", ga, tc.code)
			}
			c.awaitClosed()
		})
	}
}

// The fast path: SETTINGS of more than 100 entries is PROTOCOL_ERROR;
// a WINDOW_UPDATE past 2^31-1 is FLOW_CONTROL_ERROR, of the stream
// (RST_STREAM) or of the connection (GOAWAY), RFC 9113 §6.9.1.
func TestH2FastSettingsAndWindowLimits(t *testing.T) {
	t.Run("101 settings", func(t *testing.T) {
		c := fastConnection(t, startReceiver(t, Config{}))
		c.raw(frame(frameSettings, 0, 0, make([]byte, 6*101)))
		if ga := c.awaitGoAway(); ga.code != http2.ErrCodeProtocol {
			t.Errorf("%v, want GOAWAY PROTOCOL_ERROR", ga)
		}
		c.awaitClosed()
	})
	t.Run("connection window overflow", func(t *testing.T) {
		c := fastConnection(t, startReceiver(t, Config{}))
		c.windowUpdate(0, 1<<31-1)
		if ga := c.awaitGoAway(); ga.code != http2.ErrCodeFlowControl {
			t.Errorf("%v, want GOAWAY FLOW_CONTROL_ERROR", ga)
		}
		c.awaitClosed()
	})
	t.Run("stream window overflow", func(t *testing.T) {
		tr := startReceiver(t, Config{})
		c := fastConnection(t, tr)
		c.headers(3, exportHeaders(), false, 1)
		c.windowUpdate(3, 1<<31-1)
		c.await(3)
		if n := c.count(func(ev h2Event) bool {
			return ev.typ == http2.FrameRSTStream && ev.stream == 3 && ev.code == http2.ErrCodeFlowControl
		}); n != 1 {
			t.Errorf("no RST_STREAM FLOW_CONTROL_ERROR on stream 3:\n%s", c.frames())
		}
		c.request(5, exportHeaders(), grpcMessage(0, bench.SDKOTLP(1, 1)))
		c.await(5)
		if o := c.outcome(5); o.code != codes.OK {
			t.Errorf("the connection after a stream's flow-control error: %s", o.text)
		}
	})
}

// --read-timeout bounds each request on the fast path: an upload trickled
// a byte at a time is cut off once, at its deadline (counted read_body),
// and the connection goes on serving.
func TestH2FastReadTimeout(t *testing.T) {
	const readTimeout = time.Second
	tr := startReceiver(t, Config{ReadTimeout: readTimeout, IdleTimeout: time.Hour})
	c := fastConnection(t, tr)
	msg := grpcMessage(0, bench.SDKOTLP(2, 1))
	start := time.Now()
	c.headers(3, exportHeaders(), false, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; i < len(msg)-1; i++ {
			select {
			case <-stop:
				return
			case <-time.After(readTimeout / 8):
			}
			c.data(3, msg[i:i+1], false)
		}
	}()
	c.await(3)
	if elapsed := time.Since(start); elapsed < readTimeout {
		t.Errorf("cut off after %v, before --read-timeout %v", elapsed, readTimeout)
	}
	if o := c.outcome(3); o.code != codes.DeadlineExceeded {
		t.Errorf("trickled upload: %s, want DEADLINE_EXCEEDED", o.text)
	}
	if got := tr.rejected(t, protoOTLPGRPC, reasonReadBody); got != 1 {
		t.Errorf("rejected_requests_total{read_body} = %v, want 1", got)
	}
	c.request(5, exportHeaders(), msg)
	c.await(5)
	if o := c.outcome(5); o.code != codes.OK {
		t.Errorf("a request after the cut-off one: %s", o.text)
	}
}

// A client that resets stream after stream with none completing (rapid
// reset) is told ENHANCE_YOUR_CALM and cut off after transport.MaxResetsInARow.
func TestH2FastRapidReset(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := fastConnection(t, tr)
	for i := 0; i <= transport.MaxResetsInARow; i++ {
		id := uint32(3 + 2*i)
		c.headers(id, exportHeaders(), false, 1)
		c.rst(id, http2.ErrCodeCancel)
	}
	if ga := c.awaitGoAway(); ga.code != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("%v, want GOAWAY ENHANCE_YOUR_CALM", ga)
	}
	c.awaitClosed()
}

// Resets mixed with completed requests (clients cancelling on their
// deadlines) are not an attack.
func TestH2FastResetsBetweenRequests(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := fastConnection(t, tr)
	msg := grpcMessage(0, bench.SDKOTLP(1, 1))
	id := uint32(3)
	for round := 0; round < 3; round++ {
		for i := 0; i < transport.MaxResetsInARow; i++ {
			c.headers(id, exportHeaders(), false, 1)
			c.rst(id, http2.ErrCodeCancel)
			id += 2
		}
		c.request(id, exportHeaders(), msg)
		c.await(id)
		if o := c.outcome(id); o.code != codes.OK {
			t.Fatalf("round %d: %s", round, o.text)
		}
		id += 2
	}
}

// PING strikes are reset as grpc-go resets them: by a reply's HEADERS or
// DATA written (http2_server.go: setResetPingStrikes on writeHeader,
// writeStatus, Write). A RST_STREAM sent does not reset them, so a client
// cannot earn pings with streams the server refuses.
func TestH2FastPingStrikesNotResetByRSTStream(t *testing.T) {
	tr := startReceiver(t, Config{MaxStreams: 1})
	c := fastConnection(t, tr)
	c.headers(3, exportHeaders(), false, 1) // holds the one stream
	for i := 0; i < 4; i++ {
		c.headers(uint32(5+2*i), exportHeaders(), false, 1) // refused: RST_STREAM REFUSED_STREAM
		c.ping([8]byte{byte(i)})
	}
	if ga := c.awaitGoAway(); ga.code != http2.ErrCodeEnhanceYourCalm || ga.debug != "too_many_pings" {
		t.Errorf("%v, want GOAWAY ENHANCE_YOUR_CALM too_many_pings", ga)
	}
}

// heapPeak samples the Go runtime's mapped memory (what GOMEMLIMIT and the
// memory guard count) until stop, and returns its peak.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
		var peak uint64
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64()-s[1].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return out
}

func heapNow() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// legitClients are two real OTLP/gRPC clients exporting until stop; the
// result is how many requests were answered OK within a second, of how
// many sent.
func legitClients(t *testing.T, addr string, stop <-chan struct{}) func() (ok, sent int) {
	return h2test.LegitExporters(t, addr, bench.SDKOTLP(10, 1), stop, func(c codes.Code) bool { return c == codes.OK })
}

// hostileRow runs attack while two legitimate clients export, and checks
// that the receiver's memory grew by less than bound and that the clients
// got at least 90% of their requests answered within a second.
func hostileRow(t *testing.T, tr *testReceiver, bound uint64, attack func()) {
	t.Helper()
	before := heapNow()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	results := legitClients(t, tr.addr, stop)
	time.Sleep(300 * time.Millisecond) // the clients connect first
	attack()
	time.Sleep(time.Second) // the attack stays open while the clients go on
	close(stop)
	grown := int64(<-peak) - int64(before)
	ok, sent := results()
	t.Logf("memory grew by %d MiB (bound %d MiB); legitimate clients: %d of %d answered within 1 s", grown>>20, bound>>20, ok, sent)
	if grown > int64(bound) {
		t.Errorf("memory grew by %d MiB during the attack, bound %d MiB", grown>>20, bound>>20)
	}
	if sent < 10 || ok*10 < sent*9 {
		t.Errorf("legitimate clients got %d of %d requests answered within 1 s, want at least 90%%", ok, sent)
	}
}

// Row: 60 connections × 43 bytes, an HTTP/2 frame header declaring a
// 16 MiB frame and nothing after. The sniffer holds at most the 16 KiB it
// advertised, so they cost nothing.
func TestHostileH2DeclaredFrameSize(t *testing.T) {
	tr := startReceiverBudget(t, Config{MaxRequestBytes: 20 << 20}, 64<<20)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	hostileRow(t, tr, 48<<20, func() {
		for range 60 {
			c, err := net.Dial("tcp", tr.addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			attack := append(bytes.Clone(http2Preface), 0, 0, 0, frameSettings, 0, 0, 0, 0, 0)
			attack = append(attack, 0xff, 0xff, 0xff, frameHeaders, flagEndHeaders, 0, 0, 0, 1, 0x82)
			c.Write(attack)
		}
	})
}

// Row: 200 gRPC streams, each HEADERS and a 5-byte prefix declaring
// 20 MiB (about 28 KB in all), held open. Declared bytes cost nothing: the
// legitimate clients are not refused and the budget is not spent.
func TestHostileH2DeclaredMessageSize(t *testing.T) {
	tr := startReceiverBudget(t, Config{MaxRequestBytes: 20 << 20}, 64<<20)
	prefix := make([]byte, 5)
	binary.BigEndian.PutUint32(prefix[1:], 20<<20)
	hostileRow(t, tr, 48<<20, func() {
		for conn := range 2 {
			c := dialH2(t, tr.addr)
			for i := range 100 {
				id := uint32(1 + 2*i)
				if conn == 0 && i == 0 {
					// The first request puts the connection on the fast path.
					c.request(1, exportHeaders(), grpcMessage(0, bench.SDKOTLP(1, 1)))
					c.await(1)
					continue
				}
				c.headers(id, exportHeaders(), false, 1)
				c.data(id, prefix, false)
			}
			c.barrier([8]byte{'h', 'e', 'l', 'd'})
		}
		if used := tr.rc.budget.InUse(); used > 1<<20 {
			t.Errorf("200 streams that only declared 20 MiB hold %d bytes of the in-flight budget", used)
		}
	})
}

// The budget, once really spent, refuses: on the fast path a stream whose
// DATA does not fit is reset REFUSED_STREAM (counted memory_limit), a new
// one gets RESOURCE_EXHAUSTED, and everything is given back when the
// streams end.
func TestH2FastBudget(t *testing.T) {
	tr := startReceiverBudget(t, Config{MaxRequestBytes: 4 << 20}, 2<<20)
	c := fastConnection(t, tr)
	big := make([]byte, 3<<20)
	binary.BigEndian.PutUint32(big[1:], 4<<20-5)
	c.headers(3, exportHeaders(), false, 1)
	c.upload(3, big[:3<<20>>1], false) // 1.5 MiB: fits
	c.barrier([8]byte{1})
	c.headers(5, exportHeaders(), false, 1)
	c.upload(5, big[:3<<20>>1], false) // another 1.5 MiB: does not
	c.await(5)
	if n := c.count(func(ev h2Event) bool {
		return ev.typ == http2.FrameRSTStream && ev.stream == 5 && ev.code == http2.ErrCodeRefusedStream
	}); n != 1 {
		t.Errorf("stream over the budget: want RST_STREAM REFUSED_STREAM:\n%s", c.frames())
	}
	if got := tr.rejected(t, protoOTLPGRPC, reasonMemoryLimit); got != 1 {
		t.Errorf("rejected_requests_total{memory_limit} = %v, want 1", got)
	}
	c.rst(3, http2.ErrCodeCancel)
	c.barrier([8]byte{2})
	if used := tr.rc.budget.InUse(); used != 0 {
		t.Errorf("%d bytes of the budget still held after every stream ended", used)
	}
	c.request(7, exportHeaders(), grpcMessage(0, bench.SDKOTLP(1, 1)))
	c.await(7)
	if o := c.outcome(7); o.code != codes.OK {
		t.Errorf("after the budget was given back: %s", o.text)
	}
}

// On grpc.Server's connections too: DATA is charged as it passes, a
// stream that does not fit is refused, and the charge is
// given back when grpc ends the stream or the connection closes.
func TestH2NativeBudget(t *testing.T) {
	tr := startReceiverBudget(t, Config{MaxRequestBytes: 4 << 20}, 2<<20)
	c := dialH2(t, tr.addr)
	snappy := exportHeaders("grpc-encoding", "snappy") // registered by nobody
	c.request(1, snappy, grpcMessage(1, []byte("x")))  // routes to grpc.Server
	c.await(1)
	if o := c.outcome(1); o.code != codes.Unimplemented {
		t.Fatalf("snappy request: %s, want UNIMPLEMENTED from grpc.Server", o.text)
	}
	// The connection is grpc.Server's now: plain Exports on it are too.
	big := make([]byte, 3<<20)
	binary.BigEndian.PutUint32(big[1:], 4<<20-5)
	c.headers(3, exportHeaders(), false, 1)
	c.upload(3, big[:3<<20>>1], false)
	c.barrier([8]byte{1})
	if used := tr.rc.budget.InUse(); used < 1<<20 {
		t.Errorf("a stream uploading 1.5 MiB to grpc.Server holds %d bytes of the budget", used)
	}
	// 1 MiB more does not fit: within the stream's initial window, so the
	// upload never waits for a WINDOW_UPDATE that the reset makes moot.
	c.headers(5, exportHeaders(), false, 1)
	c.upload(5, big[:1<<20], false)
	c.await(5)
	// Refused by whichever sees it first: the transport charging its DATA
	// (RST_STREAM REFUSED_STREAM), or its handler's admission, which
	// grpc.Server runs on a goroutine of its own and so may run after
	// some of that DATA was charged (RESOURCE_EXHAUSTED).
	c.mu.Lock()
	refused := c.refusedLocked(5)
	c.mu.Unlock()
	if !refused {
		t.Errorf("stream over the budget: want RST_STREAM REFUSED_STREAM or RESOURCE_EXHAUSTED:\n%s", c.frames())
	}
	c.data(3, nil, true) // ends stream 3: grpc answers it
	c.await(3)
	c.barrier([8]byte{2})
	if used := tr.rc.budget.InUse(); used != 0 {
		t.Errorf("%d bytes of the budget still held after grpc ended every stream", used)
	}
}

// hostileRowAnswered is hostileRow for an attack that really spends the
// budget: legitimate clients may be refused (RESOURCE_EXHAUSTED, which
// they retry), but must be answered, within a second, at least 90% of the
// time: the receiver stays responsive.
func (c *h2Client) resetLocked(id uint32) bool {
	for _, ev := range c.events {
		if ev.stream == id && ev.typ == http2.FrameRSTStream || ev.typ == http2.FrameGoAway {
			return true
		}
	}
	return false
}

// refusedLocked reports whether the server refused stream id: RST_STREAM
// REFUSED_STREAM, or a gRPC status RESOURCE_EXHAUSTED.
func (c *h2Client) refusedLocked(id uint32) bool {
	for _, ev := range c.events {
		if ev.stream != id {
			continue
		}
		if ev.typ == http2.FrameRSTStream && ev.code == http2.ErrCodeRefusedStream {
			return true
		}
		for _, f := range ev.fields {
			if ev.typ == http2.FrameHeaders && f.Name == "grpc-status" && f.Value == fmt.Sprint(int(codes.ResourceExhausted)) {
				return true
			}
		}
	}
	return false
}

// uploadUntilReset sends b on stream id as the windows allow, and stops
// when the server resets the stream (or the connection).
func (c *h2Client) uploadUntilReset(id uint32, b []byte) {
	for len(b) > 0 {
		k := int64(min(len(b), 16384))
		ok := false
		c.waitUntil("window or a reset", func() bool {
			ok = c.connWin >= k && c.initWin+c.strInc[id]-c.strSent[id] >= k
			return ok || c.resetLocked(id)
		})
		if !ok {
			return
		}
		c.mu.Lock()
		c.connWin -= k
		c.strSent[id] += k
		c.mu.Unlock()
		c.wmu.Lock()
		c.w.WriteData(id, false, b[:k])
		c.wmu.Unlock()
		b = b[k:]
	}
}

// Row: a first request with grpc-encoding zstd puts the connection on
// grpc.Server; then 200 streams upload (really) 2 MiB each of a message
// declaring 20 MiB, and hold it open: 400 MiB against a 64 MiB budget.
// The budget is charged as DATA passes, so grpc.Server holds no more; the
// streams past it are refused (all but the 32 that fit in 64 MiB, give
// or take one), and the receiver keeps answering.
func TestHostileH2NativeUploads(t *testing.T) {
	const budget = 64 << 20
	tr := startReceiverBudget(t, Config{MaxRequestBytes: 20 << 20}, budget)
	chunk := make([]byte, 2<<20)
	binary.BigEndian.PutUint32(chunk[1:], 20<<20)
	refused := 0
	before := heapNow()
	stop := make(chan struct{})
	peak := heapPeak(stop)
	answered := legitAnswered(t, tr.addr, stop)
	time.Sleep(300 * time.Millisecond)
	var clients []*h2Client
	for range 2 {
		c := dialH2(t, tr.addr)
		c.request(1, exportHeaders("grpc-encoding", "zstd"), grpcMessage(1, []byte("x")))
		c.await(1)
		for i := 1; i <= 100; i++ {
			id := uint32(1 + 2*i)
			c.headers(id, exportHeaders(), false, 1)
			c.uploadUntilReset(id, chunk)
		}
		c.barrier([8]byte{'u', 'p'})
		clients = append(clients, c)
	}
	// Refused: reset REFUSED_STREAM as its DATA came, or answered
	// RESOURCE_EXHAUSTED by the handler's admission, whichever came first.
	// grpc.Server runs each handler on a goroutine of its own, so an
	// admission's answer may come after the barrier: wait for the refusals
	// (a stream held open, or ended any other way, is not one).
	countRefused := func() int {
		n := 0
		for _, c := range clients {
			c.mu.Lock()
			for i := 1; i <= 100; i++ {
				if c.refusedLocked(uint32(1 + 2*i)) {
					n++
				}
			}
			c.mu.Unlock()
		}
		return n
	}
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		if refused = countRefused(); refused >= 160 || time.Now().After(deadline) {
			break
		}
	}
	if used := tr.rc.budget.InUse(); used > budget {
		t.Errorf("the budget holds %d bytes, over its %d", used, budget)
	}
	time.Sleep(time.Second)
	close(stop)
	grown := int64(<-peak) - int64(before)
	ok, sent := answered()
	t.Logf("memory grew by %d MiB; %d streams refused; legitimate clients answered %d of %d within 1 s", grown>>20, refused, ok, sent)
	if grown > 3*budget {
		t.Errorf("memory grew by %d MiB for a budget of %d MiB", grown>>20, budget>>20)
	}
	if refused < 160 {
		t.Errorf("%d of 200 streams uploading 2 MiB each were refused with a 64 MiB budget, want at least 160", refused)
	}
	if sent < 10 || ok*10 < sent*9 {
		t.Errorf("legitimate clients got %d of %d requests answered within 1 s, want at least 90%%", ok, sent)
	}
}

// legitAnswered is legitClients counting any gRPC status (a refusal
// included) received within a second as answered.
func legitAnswered(t *testing.T, addr string, stop <-chan struct{}) func() (ok, sent int) {
	return h2test.LegitExporters(t, addr, bench.SDKOTLP(10, 1), stop, func(c codes.Code) bool { return c == codes.OK || c == codes.ResourceExhausted })
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Row: HPACK bombs, as a connection's first request (the sniffer) and as a
// later one (the fast path), with a plain and a -bin header name. x/net's
// policy applies: fields stop being emitted at the 64 KiB header-list
// limit and the connection ends at the next fragment, so a bomb costs
// what it costs net/http, not a field validated per byte received.
func TestHostileH2HPACKBomb(t *testing.T) {
	const perConn = 1 << 20
	tr := startReceiver(t, Config{})
	for _, name := range []string{"x-bomb", "x-bomb-bin"} {
		for _, later := range []bool{false, true} {
			start := cpuTime()
			var wg sync.WaitGroup
			for range 4 {
				c := dialH2(t, tr.addr)
				id := uint32(1)
				if later {
					c.request(1, exportHeaders(), grpcMessage(0, bench.SDKOTLP(1, 1)))
					c.await(1)
					id = 3
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.raw(h2test.HPACKBomb(id, exportHeaders(), name, perConn))
				}()
				c.awaitGoAway()
				c.awaitClosed()
			}
			wg.Wait()
			cpu := cpuTime() - start
			perKB := cpu / (4 * perConn >> 10)
			t.Logf("%s, later request %v: %v of CPU for 4 bombs of %d KiB: %v per KiB", name, later, cpu.Round(time.Millisecond), perConn>>10, perKB)
			// net/http's h2c server: ~0.01 s for the same; traceport before
			// x/net's policy: 1.1 ms (3.7 ms with -bin) per KB.
			if perKB > 500*time.Microsecond {
				t.Errorf("%v of CPU per KiB of HPACK bomb, want under 0.5 ms", perKB)
			}
		}
	}
}
