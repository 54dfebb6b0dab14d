package receiver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/internal/grpcraw"
)

// hangGuard bounds every wait of these tests: far longer than anything
// takes on a loaded machine, it only turns a hang into a failure.
const hangGuard = 30 * time.Second

// ---- a raw HTTP/2 client ----

// h2Event is one frame the server sent.
type h2Event struct {
	typ      http2.FrameType
	stream   uint32
	flags    http2.Flags
	fields   []hpack.HeaderField // HEADERS (with its CONTINUATIONs)
	data     []byte
	code     http2.ErrCode // RST_STREAM, GOAWAY
	last     uint32        // GOAWAY
	debug    string        // GOAWAY
	inc      uint32        // WINDOW_UPDATE
	ping     [8]byte
	settings []http2.Setting
}

func (e h2Event) String() string {
	switch e.typ {
	case http2.FrameHeaders:
		return fmt.Sprintf("HEADERS[%d flags=%v] %s", e.stream, e.flags, fieldsText(e.fields))
	case http2.FrameData:
		return fmt.Sprintf("DATA[%d flags=%v] %d bytes", e.stream, e.flags, len(e.data))
	case http2.FrameRSTStream:
		return fmt.Sprintf("RST_STREAM[%d] %v", e.stream, e.code)
	case http2.FrameGoAway:
		return fmt.Sprintf("GOAWAY last=%d %v %q", e.last, e.code, e.debug)
	case http2.FrameWindowUpdate:
		return fmt.Sprintf("WINDOW_UPDATE[%d] +%d", e.stream, e.inc)
	case http2.FramePing:
		return fmt.Sprintf("PING flags=%v %q", e.flags, e.ping[:])
	case http2.FrameSettings:
		return fmt.Sprintf("SETTINGS flags=%v %v", e.flags, e.settings)
	}
	return fmt.Sprintf("%v[%d]", e.typ, e.stream)
}

// h2Client writes whatever frames a test gives it, honours the server's
// flow-control windows when asked to, acknowledges the server's SETTINGS,
// and records every frame the server sends.
type h2Client struct {
	t    testing.TB
	conn net.Conn

	wmu  sync.Mutex
	w    *http2.Framer
	enc  *hpack.Encoder // with a dynamic table: the server must decode every block in order
	hbuf bytes.Buffer

	mu      sync.Mutex
	cond    *sync.Cond
	events  []h2Event
	readErr error
	// The server's flow-control windows for what the client sends.
	connWin int64
	initWin int64
	strInc  map[uint32]int64
	strSent map[uint32]int64
}

// newH2Client starts reading conn; the caller sends the preface if the
// server expects it.
func newH2Client(t testing.TB, conn net.Conn) *h2Client {
	c := &h2Client{t: t, conn: conn, connWin: 65535, initWin: 65535, strInc: map[uint32]int64{}, strSent: map[uint32]int64{}}
	c.cond = sync.NewCond(&c.mu)
	c.w = http2.NewFramer(conn, nil)
	c.w.AllowIllegalWrites = true
	c.enc = hpack.NewEncoder(&c.hbuf)
	go c.readLoop()
	return c
}

// dialH2 opens a connection to addr and sends the preface and settings.
func dialH2(t *testing.T, addr string, settings ...http2.Setting) *h2Client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(2 * hangGuard))
	t.Cleanup(func() { conn.Close() })
	c := newH2Client(t, conn)
	c.start(settings...)
	return c
}

func (c *h2Client) start(settings ...http2.Setting) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.Write(http2Preface)
	c.w.WriteSettings(settings...)
}

func (c *h2Client) readLoop() {
	r := http2.NewFramer(nil, c.conn)
	r.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.MaxHeaderListSize = 1 << 20
	for {
		f, err := r.ReadFrame()
		c.mu.Lock()
		if err != nil {
			c.readErr = err
			c.cond.Broadcast()
			c.mu.Unlock()
			return
		}
		h := f.Header()
		ev := h2Event{typ: h.Type, stream: h.StreamID, flags: h.Flags}
		ack := false
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			ev.fields = slices.Clone(f.Fields)
		case *http2.DataFrame:
			ev.data = bytes.Clone(f.Data())
		case *http2.RSTStreamFrame:
			ev.code = f.ErrCode
		case *http2.GoAwayFrame:
			ev.code, ev.last, ev.debug = f.ErrCode, f.LastStreamID, string(f.DebugData())
		case *http2.PingFrame:
			ev.ping = f.Data
		case *http2.WindowUpdateFrame:
			ev.inc = f.Increment
			if h.StreamID == 0 {
				c.connWin += int64(f.Increment)
			} else {
				c.strInc[h.StreamID] += int64(f.Increment)
			}
		case *http2.SettingsFrame:
			if !f.IsAck() {
				f.ForeachSetting(func(s http2.Setting) error {
					ev.settings = append(ev.settings, s)
					if s.ID == http2.SettingInitialWindowSize {
						c.initWin = int64(s.Val)
					}
					return nil
				})
				ack = true
			}
		}
		c.events = append(c.events, ev)
		c.cond.Broadcast()
		c.mu.Unlock()
		if ack {
			// Not on this goroutine: on a net.Pipe, a write blocks until the
			// server reads, which may wait for this goroutine to read.
			go func() {
				c.wmu.Lock()
				defer c.wmu.Unlock()
				c.w.WriteSettingsAck()
			}()
		}
	}
}

// hangTimer wakes the waiters on c.cond when the hang guard expires; the
// flag (read with c.mu held) says it has.
func (c *h2Client) hangTimer() (expired *bool, stop func() bool) {
	expired = new(bool)
	timer := time.AfterFunc(hangGuard, func() {
		c.mu.Lock()
		*expired = true
		c.cond.Broadcast()
		c.mu.Unlock()
	})
	return expired, timer.Stop
}

// waitUntil waits until cond (called with c.mu held) holds; the connection
// ending or the hang guard first fails the test.
func (c *h2Client) waitUntil(what string, cond func() bool) {
	c.t.Helper()
	expired, stop := c.hangTimer()
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for !cond() {
		if c.readErr != nil || *expired {
			c.t.Fatalf("waiting for %s: connection: %v (hang guard expired: %v); frames from the server:\n%s", what, c.readErr, *expired, c.framesLocked())
		}
		c.cond.Wait()
	}
}

func (c *h2Client) framesLocked() string {
	var b strings.Builder
	for _, ev := range c.events {
		fmt.Fprintf(&b, "  %v\n", ev)
	}
	return b.String()
}

func (c *h2Client) frames() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.framesLocked()
}

// headers writes a header block for stream id in pieces frames (HEADERS,
// then CONTINUATIONs; at least as many as 16 KiB frames need).
func (c *h2Client) headers(id uint32, fields []hpack.HeaderField, endStream bool, pieces int) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.hbuf.Reset()
	for _, f := range fields {
		c.enc.WriteField(f)
	}
	block := bytes.Clone(c.hbuf.Bytes())
	pieces = max(pieces, 1, (len(block)+16383)/16384)
	size := (len(block) + pieces - 1) / pieces
	first := block[:min(size, len(block))]
	rest := block[len(first):]
	c.w.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(rest) == 0})
	for len(rest) > 0 {
		k := min(size, len(rest))
		c.w.WriteContinuation(id, k == len(rest), rest[:k])
		rest = rest[k:]
	}
}

// data writes b on stream id in frames of at most 16 KiB, without waiting
// for window (the server's initial windows hold small requests).
func (c *h2Client) data(id uint32, b []byte, endStream bool) { c.send(id, b, endStream, false) }

// upload writes b on stream id as the server's flow-control windows allow.
func (c *h2Client) upload(id uint32, b []byte, endStream bool) { c.send(id, b, endStream, true) }

func (c *h2Client) send(id uint32, b []byte, endStream, wait bool) {
	c.t.Helper()
	for first := true; first || len(b) > 0; first = false {
		k := int64(min(len(b), 16384))
		if wait {
			c.waitUntil(fmt.Sprintf("window for %d bytes on stream %d", k, id), func() bool {
				return c.connWin >= k && c.initWin+c.strInc[id]-c.strSent[id] >= k
			})
		}
		c.mu.Lock()
		c.connWin -= k
		c.strSent[id] += k
		c.mu.Unlock()
		c.wmu.Lock()
		c.w.WriteData(id, endStream && int(k) == len(b), b[:k])
		c.wmu.Unlock()
		b = b[k:]
	}
}

func (c *h2Client) request(id uint32, fields []hpack.HeaderField, body []byte) {
	c.headers(id, fields, false, 1)
	c.data(id, body, true)
}

func (c *h2Client) rst(id uint32, code http2.ErrCode) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.WriteRSTStream(id, code)
}

func (c *h2Client) windowUpdate(id, inc uint32) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.WriteWindowUpdate(id, inc)
}

func (c *h2Client) settings(s ...http2.Setting) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.WriteSettings(s...)
}

func (c *h2Client) raw(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.Write(b)
}

func (c *h2Client) ping(data [8]byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.WritePing(false, data)
}

func (c *h2Client) pingAcksLocked(data [8]byte) int {
	n := 0
	for _, ev := range c.events {
		if ev.typ == http2.FramePing && ev.flags.Has(http2.FlagPingAck) && ev.ping == data {
			n++
		}
	}
	return n
}

// barrier sends a PING and waits for its ACK: the server has read
// everything sent before it. (The fast path handles frames in order.)
func (c *h2Client) barrier(data [8]byte) {
	c.t.Helper()
	c.mu.Lock()
	before := c.pingAcksLocked(data)
	c.mu.Unlock()
	c.ping(data)
	c.waitUntil(fmt.Sprintf("the ACK of PING %q", data[:]), func() bool { return c.pingAcksLocked(data) > before })
}

// closedLocked reports whether the server has ended stream id: END_STREAM,
// RST_STREAM, or a GOAWAY saying it will not be processed.
func (c *h2Client) closedLocked(id uint32) bool {
	for _, ev := range c.events {
		switch {
		case ev.stream == id && ev.typ == http2.FrameRSTStream,
			ev.stream == id && (ev.typ == http2.FrameHeaders || ev.typ == http2.FrameData) && ev.flags.Has(http2.FlagHeadersEndStream),
			ev.typ == http2.FrameGoAway && ev.last < id:
			return true
		}
	}
	return false
}

func (c *h2Client) await(ids ...uint32) {
	c.t.Helper()
	for _, id := range ids {
		c.waitUntil(fmt.Sprintf("the reply on stream %d", id), func() bool { return c.closedLocked(id) })
	}
}

func (c *h2Client) awaitGoAway() h2Event {
	c.t.Helper()
	var ga h2Event
	c.waitUntil("a GOAWAY", func() bool {
		for _, ev := range c.events {
			if ev.typ == http2.FrameGoAway {
				ga = ev
				return true
			}
		}
		return false
	})
	return ga
}

// awaitClosed waits for the server to close the connection.
func (c *h2Client) awaitClosed() {
	c.t.Helper()
	expired, stop := c.hangTimer()
	defer stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.readErr == nil {
		if *expired {
			c.t.Fatalf("the server did not close the connection; frames from the server:\n%s", c.framesLocked())
		}
		c.cond.Wait()
	}
}

func (c *h2Client) count(match func(h2Event) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, ev := range c.events {
		if match(ev) {
			n++
		}
	}
	return n
}

// noReply stands for a stream the server never answered.
const noReply = codes.Code(999)

// outcome is what a client saw of one call: the gRPC status code, and
// everything else that must be the same on both servers.
type outcome struct {
	code codes.Code
	text string
}

// outcome summarizes what the server sent on stream id: its header blocks
// (fields sorted), the DATA, a RST_STREAM before the end of the response,
// or that a GOAWAY left it unprocessed.
func (c *h2Client) outcome(id uint32) outcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	var blocks []string
	var data []byte
	ended := false
	rst := ""
	code := noReply
	for _, ev := range c.events {
		switch {
		case ev.typ == http2.FrameGoAway && ev.last < id && !ended && len(blocks) == 0:
			rst = fmt.Sprintf("unprocessed (GOAWAY last=%d %v)", ev.last, ev.code)
		case ev.stream != id:
		case ev.typ == http2.FrameHeaders:
			blocks = append(blocks, fieldsText(ev.fields))
			for _, f := range ev.fields {
				if f.Name == "grpc-status" {
					n, _ := strconv.Atoi(f.Value)
					code = codes.Code(n)
				}
			}
			ended = ended || ev.flags.Has(http2.FlagHeadersEndStream)
		case ev.typ == http2.FrameData:
			data = append(data, ev.data...)
			ended = ended || ev.flags.Has(http2.FlagDataEndStream)
		case ev.typ == http2.FrameRSTStream && !ended:
			rst = "RST_STREAM " + ev.code.String()
		}
	}
	return outcome{code, fmt.Sprintf("headers=%v data=%x %s", blocks, data, rst)}
}

func fieldsText(fields []hpack.HeaderField) string {
	var kv []string
	for _, f := range fields {
		kv = append(kv, f.Name+"="+f.Value)
	}
	sort.Strings(kv)
	return "[" + strings.Join(kv, " ") + "]"
}

// hdrs makes header fields from name, value pairs.
func hdrs(kv ...string) []hpack.HeaderField {
	var out []hpack.HeaderField
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// exportHeaders are an OTLP Export's request headers as grpc-go sends
// them, with changes: a pair replaces the field of that name, a name with
// the value "-" removes it, a new name is added.
func exportHeaders(changes ...string) []hpack.HeaderField {
	fields := hdrs(":method", "POST", ":scheme", "http", ":path", grpcraw.OTLPExport, ":authority", "traceport:4317",
		"content-type", "application/grpc", "user-agent", "grpc-go/1.85.0", "te", "trailers", "grpc-timeout", "9999985u")
	for i := 0; i+1 < len(changes); i += 2 {
		name, value := changes[i], changes[i+1]
		j := slices.IndexFunc(fields, func(f hpack.HeaderField) bool { return f.Name == name })
		switch {
		case value == "-" && j >= 0:
			fields = slices.Delete(fields, j, j+1)
		case j >= 0:
			fields[j].Value = value
		default:
			fields = append(fields, hpack.HeaderField{Name: name, Value: value})
		}
	}
	return fields
}

// grpcMessage frames msg as a gRPC length-prefixed message.
func grpcMessage(flag byte, msg []byte) []byte {
	out := make([]byte, 5, 5+len(msg))
	out[0] = flag
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

// ---- requests ----

// partialBody is an OTLP request with one span of three invalid.
func partialBody(t testing.TB) []byte {
	span := func(id []byte) *tracepb.Span {
		return &tracepb.Span{TraceId: bytes.Repeat([]byte{1}, 16), SpanId: id, Name: "s"}
	}
	b, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{
		Spans: []*tracepb.Span{span([]byte{1, 1, 1, 1, 1, 1, 1, 1}), span([]byte{2, 2}), span([]byte{3, 3, 3, 3, 3, 3, 3, 3})},
	}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func exportRequest(t testing.TB, body []byte) *coltracepb.ExportTraceServiceRequest {
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(body, req); err != nil {
		t.Fatal(err)
	}
	return req
}

// grpcClient is a real grpc-go client connection to addr.
func grpcClient(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// call invokes method with req (a proto message, or a *grpcraw.Message sent with
// the raw codec, as content-type application/grpc+proto) and tells what the
// client got.
func call(conn *grpc.ClientConn, method string, req any, opts ...grpc.CallOption) outcome {
	return callCtx(context.Background(), conn, method, req, opts...)
}

func callCtx(ctx context.Context, conn *grpc.ClientConn, method string, req any, opts ...grpc.CallOption) outcome {
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	var resp any = &coltracepb.ExportTraceServiceResponse{}
	if _, raw := req.(*grpcraw.Message); raw {
		resp = &grpcraw.Message{}
		opts = append(opts, grpc.ForceCodecV2(grpcraw.Codec{}))
	}
	err := conn.Invoke(ctx, method, req, resp, opts...)
	var body []byte
	switch r := resp.(type) {
	case *grpcraw.Message:
		body = bytes.Clone(r.Data)
		release(r.Buf)
	case proto.Message:
		body, _ = proto.MarshalOptions{Deterministic: true}.Marshal(r)
	}
	st := status.Convert(err)
	// The whole status: code, message and details (RetryInfo).
	stBytes, _ := proto.MarshalOptions{Deterministic: true}.Marshal(st.Proto())
	if err != nil {
		body = nil
	}
	return outcome{st.Code(), fmt.Sprintf("code=%v msg=%q status=%x resp=%x", st.Code(), st.Message(), stBytes, body)}
}

// ---- the differential test ----

type fastCase struct {
	name      string
	cfg       Config
	pushFails bool // the sink refuses at the push
	full      bool // the sink refuses at the door
	// Exactly one of grpc (a real grpc-go client) and raw (frames on one
	// connection) is set; each returns one outcome per call.
	grpc func(t *testing.T, addr string) []outcome
	raw  func(t *testing.T, c *h2Client) []outcome

	codes             []codes.Code       // per call
	served, handedOff int64              // on the fast path
	rejected          map[reason]float64 // rejected_requests_total{otlp_grpc}: the non-zero ones
}

type fastRun struct {
	outs              []outcome
	counters          string
	sinkSpans         int
	served, handedOff int64
	rejected          map[reason]float64 // rejected_requests_total{otlp_grpc}, non-zero ones
}

// runFastCase runs c against a receiver with or without the fast path,
// then shuts it down: every handler of either server has returned and
// counted when the counters are read.
func runFastCase(t *testing.T, c fastCase, off bool) fastRun {
	tr := startReceiver(t, c.cfg)
	tr.rc.transport.SetFastPaths(true, !off)
	tr.sink.pushFails, tr.sink.full = c.pushFails, c.full
	var run fastRun
	if c.grpc != nil {
		run.outs = c.grpc(t, tr.addr)
	} else {
		cl := dialH2(t, tr.addr)
		run.outs = c.raw(t, cl)
		cl.conn.Close()
	}
	// grpc.Server runs each handler on a goroutine of its own: one that
	// starts after Shutdown begins finds the door shut and counts
	// shutting_down, not what the client did. The requests the case
	// expects refused are counted before the receiver is shut down; a
	// count that never comes is left to the assertions below.
	want := 0.0
	for _, n := range c.rejected {
		want += n
	}
	for deadline := time.Now().Add(hangGuard); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		got := 0.0
		for _, r := range allReasons {
			got += tr.rejected(t, protoOTLPGRPC, r)
		}
		if got >= want {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	tr.rc.Shutdown(ctx)
	if ctx.Err() != nil {
		t.Errorf("Shutdown did not finish within %v", hangGuard)
	}
	run.counters = countersText(t, tr)
	tr.sink.mu.Lock()
	run.sinkSpans = tr.sink.spans
	tr.sink.mu.Unlock()
	run.served, run.handedOff = h2Served(tr.rc), h2HandedOff(tr.rc)
	run.rejected = map[reason]float64{}
	for _, r := range allReasons {
		if v := tr.rejected(t, protoOTLPGRPC, r); v != 0 {
			run.rejected[r] = v
		}
	}
	// A refused push counts the spans received, and dropped by the sink
	// (recordingSink keeps no count of drops).
	if received := receivedSpans(tr.rc); received != int64(run.sinkSpans) && !c.pushFails {
		t.Errorf("accounting: %d spans counted received, the sink got %d", received, run.sinkSpans)
	}
	return run
}

// lineDiff lists the lines of a and b that the other lacks.
func lineDiff(a, b, aName, bName string) string {
	as, bs := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for _, l := range as {
		if !slices.Contains(bs, l) {
			fmt.Fprintf(&out, "  only %s: %s\n", aName, l)
		}
	}
	for _, l := range bs {
		if !slices.Contains(as, l) {
			fmt.Fprintf(&out, "  only %s: %s\n", bName, l)
		}
	}
	return out.String()
}

func receivedSpans(rc *Receiver) int64 {
	var n int64
	for _, s := range rc.Sources() {
		n += s.Spans
	}
	return n
}

// TestOTLPGRPCFastPath sends the same calls to a receiver whose OTLP/gRPC
// fast path is off (grpc.Server serves every connection) and to one with
// it: what the client gets (gRPC status code, message, details, response
// message, and for raw frames every header of the reply) and every counter
// must be the same, and the fast path must have served exactly the
// requests of its shape, handing the others to grpc.Server.
func TestOTLPGRPCFastPath(t *testing.T) {
	ten := bench.SDKOTLP(10, 1)
	export := func(conn *grpc.ClientConn, body []byte, opts ...grpc.CallOption) outcome {
		return call(conn, grpcraw.OTLPExport, exportRequest(t, body), opts...)
	}
	// calls runs a sequence of calls on one grpc-go ClientConn.
	calls := func(fs ...func(*grpc.ClientConn) outcome) func(t *testing.T, addr string) []outcome {
		return func(t *testing.T, addr string) []outcome {
			conn := grpcClient(t, addr)
			defer conn.Close()
			var outs []outcome
			for _, f := range fs {
				outs = append(outs, f(conn))
			}
			return outs
		}
	}
	exportOf := func(body []byte, opts ...grpc.CallOption) func(*grpc.ClientConn) outcome {
		return func(conn *grpc.ClientConn) outcome { return export(conn, body, opts...) }
	}
	rawOf := func(method string, body []byte) func(*grpc.ClientConn) outcome {
		return func(conn *grpc.ClientConn) outcome { return call(conn, method, &grpcraw.Message{Data: body}) }
	}
	// rawCall sends one request on stream 1 and waits for its reply.
	// (A nil body: END_STREAM on the HEADERS.)
	rawCall := func(fields []hpack.HeaderField, body []byte) func(t *testing.T, c *h2Client) []outcome {
		return func(t *testing.T, c *h2Client) []outcome {
			c.headers(1, fields, body == nil, 1)
			if body != nil {
				c.data(1, body, true)
			}
			c.await(1)
			return []outcome{c.outcome(1)}
		}
	}
	msg := grpcMessage(0, ten)
	var bigMetadata []string // 75 KB in headers of 15 KB
	for i := range 5 {
		bigMetadata = append(bigMetadata, fmt.Sprintf("x-big-%d", i), strings.Repeat("v", 15000))
	}

	cases := []fastCase{
		{name: "valid export", grpc: calls(exportOf(ten)), codes: []codes.Code{codes.OK}, served: 1},
		{name: "OpenTelemetry SDK exporter", grpc: func(t *testing.T, addr string) []outcome {
			exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure())
			if err != nil {
				t.Fatal(err)
			}
			sendWithSDK(t, exp, "sdk", 7) // a span per export
			return nil
		}, served: 7},
		{name: "concurrent requests on one connection", grpc: func(t *testing.T, addr string) []outcome {
			conn := grpcClient(t, addr)
			defer conn.Close()
			outs := make([]outcome, 8)
			var wg sync.WaitGroup
			for i := range outs {
				wg.Go(func() { outs[i] = export(conn, bench.SDKOTLP(10, uint64(i))) })
			}
			wg.Wait()
			return outs
		}, codes: slices.Repeat([]codes.Code{codes.OK}, 8), served: 8},
		{name: "one invalid span: partial success", grpc: calls(exportOf(partialBody(t))), codes: []codes.Code{codes.OK}, served: 1},
		{name: "malformed protobuf", grpc: calls(rawOf(grpcraw.OTLPExport, []byte{0x0a, 0x05, 0x01})), codes: []codes.Code{codes.InvalidArgument}, served: 1, rejected: map[reason]float64{reasonMalformed: 1}},
		{name: "over max-request-bytes", cfg: Config{MaxRequestBytes: 64 << 10}, grpc: calls(exportOf(bench.SDKOTLP(400, 1)), exportOf(ten)),
			codes: []codes.Code{codes.ResourceExhausted, codes.OK}, served: 1, rejected: map[reason]float64{reasonTooLarge: 1}},
		{name: "queue full at the push", pushFails: true, grpc: calls(exportOf(ten), exportOf(ten)),
			codes: []codes.Code{codes.ResourceExhausted, codes.ResourceExhausted}, served: 2, rejected: map[reason]float64{reasonQueueFull: 2}},
		{name: "refused at the door", full: true, grpc: calls(exportOf(ten), exportOf(ten)),
			codes: []codes.Code{codes.ResourceExhausted, codes.ResourceExhausted}, rejected: map[reason]float64{reasonQueueFull: 2}},
		{name: "unknown method after an Export", grpc: calls(exportOf(ten), rawOf("/foo.Bar/Baz", ten), exportOf(ten)),
			codes: []codes.Code{codes.OK, codes.Unimplemented, codes.OK}, served: 2},
		{name: "unknown method first", grpc: calls(rawOf("/foo.Bar/Baz", ten), exportOf(ten)),
			codes: []codes.Code{codes.Unimplemented, codes.OK}, served: 1},
		{name: "Jaeger PostSpans after an Export", grpc: calls(exportOf(ten), rawOf(grpcraw.JaegerPostSpans, bench.JaegerPostSpans(10, 2)), exportOf(ten)),
			codes: []codes.Code{codes.OK, codes.OK, codes.OK}, served: 3},
		{name: "Jaeger PostSpans first, gzipped", grpc: calls(func(conn *grpc.ClientConn) outcome {
			return call(conn, grpcraw.JaegerPostSpans, &grpcraw.Message{Data: bench.JaegerPostSpans(10, 2)}, grpc.UseCompressor(gzip.Name))
		}), codes: []codes.Code{codes.OK}, served: 1},
		{name: "Jaeger PostSpans that does not decode", grpc: calls(rawOf(grpcraw.JaegerPostSpans, []byte{0x0a, 0xff, 0xff})),
			codes: []codes.Code{codes.Internal}},
		{name: "gzip Export first", grpc: calls(exportOf(ten, grpc.UseCompressor(gzip.Name)), exportOf(ten)),
			codes: []codes.Code{codes.OK, codes.OK}, served: 2},
		{name: "gzip Export after an Export", grpc: calls(exportOf(ten), exportOf(ten, grpc.UseCompressor(gzip.Name)), exportOf(ten)),
			codes: []codes.Code{codes.OK, codes.OK, codes.OK}, served: 3},
		{name: "metadata and a deadline", grpc: calls(func(conn *grpc.ClientConn) outcome {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tenant", "a", "x-trace-bin", string([]byte{0, 1, 2}))
			return callCtx(ctx, conn, grpcraw.OTLPExport, exportRequest(t, ten))
		}), codes: []codes.Code{codes.OK}, served: 1},
		{name: "sink whose Push waits: grpc.Server serves", cfg: Config{PushWaits: true}, grpc: calls(exportOf(ten), exportOf(ten)), codes: []codes.Code{codes.OK, codes.OK}},

		// Raw frames: what a real client does not send.
		{name: "valid export, raw", raw: rawCall(exportHeaders(), msg), codes: []codes.Code{codes.OK}, served: 1},
		{name: "empty message", raw: rawCall(exportHeaders(), grpcMessage(0, nil)), codes: []codes.Code{codes.OK}, served: 1},
		{name: "no message: END_STREAM on HEADERS", raw: rawCall(exportHeaders(), nil), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonMalformed: 1}},
		{name: "message cut short", raw: rawCall(exportHeaders(), msg[:len(msg)/2]), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonReadBody: 1}},
		{name: "prefix cut short", raw: rawCall(exportHeaders(), msg[:3]), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonReadBody: 1}},
		{name: "two messages", raw: rawCall(exportHeaders(), append(bytes.Clone(msg), msg...)), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonDecompress: 1}},
		{name: "second message cut short", raw: rawCall(exportHeaders(), append(bytes.Clone(msg), msg[:3]...)), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonMalformed: 1}},
		{name: "second message over max-request-bytes", raw: rawCall(exportHeaders(), append(bytes.Clone(msg), grpcMessage(0, make([]byte, 2<<20))[:5]...)),
			codes: []codes.Code{codes.ResourceExhausted}, rejected: map[reason]float64{reasonTooLarge: 1}},
		{name: "second message with the compressed flag", raw: rawCall(exportHeaders(), append(bytes.Clone(msg), grpcMessage(1, ten)...)), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonDecompress: 1}},
		{name: "compressed flag, then a second message", raw: rawCall(exportHeaders(), append(grpcMessage(1, ten), msg...)), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonDecompress: 1}},
		{name: "compressed flag without grpc-encoding", raw: rawCall(exportHeaders(), grpcMessage(1, ten)), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonDecompress: 1}},
		{name: "unknown payload format", raw: rawCall(exportHeaders(), grpcMessage(2, ten)), codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonDecompress: 1}},
		{name: "grpc-encoding identity", raw: rawCall(exportHeaders("grpc-encoding", "identity"), msg), codes: []codes.Code{codes.OK}, served: 1},
		{name: "grpc-encoding gzip, message not compressed", raw: rawCall(exportHeaders("grpc-encoding", "gzip"), msg), codes: []codes.Code{codes.OK}, served: 1},
		{name: "gzip: not gzip", raw: rawCall(exportHeaders("grpc-encoding", "gzip"), grpcMessage(1, []byte("not gzip at all"))),
			codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonDecompress: 1}},
		{name: "gzip: cut short", raw: rawCall(exportHeaders("grpc-encoding", "gzip"), grpcMessage(1, gzipped(ten)[:40])),
			codes: []codes.Code{codes.Internal}, rejected: map[reason]float64{reasonDecompress: 1}},
		{name: "gzip: over max-request-bytes once inflated", raw: rawCall(exportHeaders("grpc-encoding", "gzip"), grpcMessage(1, gzipped(make([]byte, 3<<20)))),
			codes: []codes.Code{codes.ResourceExhausted}, rejected: map[reason]float64{reasonTooLarge: 1}},
		{name: "gzip: exactly max-request-bytes once inflated (zeros: malformed)", raw: rawCall(exportHeaders("grpc-encoding", "gzip"), grpcMessage(1, gzipped(make([]byte, 1<<20)))),
			codes: []codes.Code{codes.InvalidArgument}, served: 1, rejected: map[reason]float64{reasonMalformed: 1}},
		{name: "gzip: a partial success reply is gzipped too", raw: rawCall(exportHeaders("grpc-encoding", "gzip"), grpcMessage(1, gzipped(partialBody(t)))),
			codes: []codes.Code{codes.OK}, served: 1, rejected: nil},
		// grpc.Server refuses it before any handler runs, so it is not
		// counted on either path.
		{name: "an encoding traceport lacks: grpc.Server answers", raw: rawCall(exportHeaders("grpc-encoding", "snappy"), grpcMessage(1, ten)),
			codes: []codes.Code{codes.Unimplemented}},
		{name: "more streams than max-streams", cfg: Config{MaxStreams: 1}, raw: func(t *testing.T, c *h2Client) []outcome {
			c.headers(1, exportHeaders(), false, 1)
			c.headers(3, exportHeaders(), false, 1)
			c.await(3)
			c.data(3, msg, true) // dropped
			c.data(1, msg, true)
			c.await(1)
			return []outcome{c.outcome(1), c.outcome(3)}
		}, codes: []codes.Code{codes.OK, noReply}, served: 1},
		{name: "request trailers", raw: func(t *testing.T, c *h2Client) []outcome {
			c.headers(1, exportHeaders(), false, 1)
			c.data(1, msg, false)
			c.headers(1, hdrs("x-trailer", "t"), true, 1)
			c.waitUntil("a reply or the end of the connection", func() bool { return c.closedLocked(1) || c.readErr != nil })
			return []outcome{c.outcome(1)}
		}, codes: []codes.Code{noReply}, rejected: map[reason]float64{reasonReadBody: 1}},
		{name: "padded DATA frames", raw: func(t *testing.T, c *h2Client) []outcome {
			c.headers(1, exportHeaders(), false, 1)
			c.wmu.Lock()
			c.w.WriteDataPadded(1, false, msg[:100], make([]byte, 200))
			c.w.WriteDataPadded(1, true, msg[100:], make([]byte, 7))
			c.wmu.Unlock()
			c.await(1)
			return []outcome{c.outcome(1)}
		}, codes: []codes.Code{codes.OK}, served: 1},
		{name: "client RST_STREAM mid-upload", raw: func(t *testing.T, c *h2Client) []outcome {
			c.headers(1, exportHeaders(), false, 1)
			c.data(1, msg[:len(msg)/2], false)
			c.rst(1, http2.ErrCodeCancel)
			c.request(3, exportHeaders(), msg)
			c.await(3)
			return []outcome{c.outcome(1), c.outcome(3)}
		}, codes: []codes.Code{noReply, codes.OK}, served: 1, rejected: map[reason]float64{reasonReadBody: 1}},
		{name: "connection closed mid-upload", raw: func(t *testing.T, c *h2Client) []outcome {
			c.request(1, exportHeaders(), msg)
			c.headers(3, exportHeaders(), false, 1)
			c.data(3, msg[:len(msg)/2], false)
			c.await(1)
			c.barrier([8]byte{'c', 'u', 't'})
			return []outcome{c.outcome(1)}
		}, codes: []codes.Code{codes.OK}, served: 1, rejected: map[reason]float64{reasonReadBody: 1}},
		{name: "over max-request-bytes while uploading, then another request", cfg: Config{MaxRequestBytes: 64 << 10}, raw: func(t *testing.T, c *h2Client) []outcome {
			big := grpcMessage(0, bench.SDKOTLP(400, 3))
			c.headers(1, exportHeaders(), false, 1)
			c.data(1, big[:60000], false)
			c.await(1)
			c.data(1, big[60000:], true) // dropped
			c.request(3, exportHeaders(), msg)
			c.await(3)
			return []outcome{c.outcome(1), c.outcome(3)}
		}, codes: []codes.Code{codes.ResourceExhausted, codes.OK}, served: 1, rejected: map[reason]float64{reasonTooLarge: 1}},
		{name: "refused at the door while uploading", full: true, raw: func(t *testing.T, c *h2Client) []outcome {
			c.headers(1, exportHeaders(), false, 1)
			c.await(1)
			c.data(1, msg, true) // dropped
			c.barrier([8]byte{'d', 'o', 'o', 'r'})
			return []outcome{c.outcome(1)}
		}, codes: []codes.Code{codes.ResourceExhausted}, rejected: map[reason]float64{reasonQueueFull: 1}},

		// Header blocks that grpc.Server refuses or answers differently:
		// the fast path leaves them to it.
		{name: "content-type application/grpc+proto", raw: rawCall(exportHeaders("content-type", "application/grpc+proto"), msg), codes: []codes.Code{codes.OK}, served: 1},
		{name: "content-type application/grpc-web", raw: rawCall(exportHeaders("content-type", "application/grpc-web+proto"), msg), codes: []codes.Code{codes.InvalidArgument}},
		// No DATA after the header block: net/http takes DATA on a stream
		// whose header block it refused for DATA on an idle stream, and the
		// GOAWAY for that can overtake the RST_STREAM queued for the block.
		{name: "duplicate :path", raw: func(t *testing.T, c *h2Client) []outcome {
			c.headers(1, append(exportHeaders(), hpack.HeaderField{Name: ":path", Value: grpcraw.OTLPExport}), false, 1)
			c.await(1)
			return []outcome{c.outcome(1)}
		}, codes: []codes.Code{noReply}},
		{name: "grpc-timeout already expired", raw: rawCall(exportHeaders("grpc-timeout", "1n"), msg), codes: []codes.Code{codes.DeadlineExceeded}},
		{name: "no :authority", raw: rawCall(exportHeaders(":authority", "-"), msg), codes: []codes.Code{codes.Internal}},
		{name: "malformed grpc-timeout", raw: rawCall(exportHeaders("grpc-timeout", "soon"), msg), codes: []codes.Code{codes.Internal}},
		{name: "metadata over 64 KiB on a new connection", grpc: calls(func(conn *grpc.ClientConn) outcome {
			ctx := metadata.AppendToOutgoingContext(context.Background(), bigMetadata...)
			return callCtx(ctx, conn, grpcraw.OTLPExport, exportRequest(t, ten))
		}, exportOf(ten)), codes: []codes.Code{codes.Internal, codes.OK}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := runFastCase(t, c, true)
			fast := runFastCase(t, c, false)
			var got []codes.Code
			for _, o := range fast.outs {
				got = append(got, o.code)
			}
			if !slices.Equal(got, c.codes) {
				t.Errorf("codes %v, want %v", got, c.codes)
			}
			for i := range max(len(ref.outs), len(fast.outs)) {
				var r, f outcome
				if i < len(ref.outs) {
					r = ref.outs[i]
				}
				if i < len(fast.outs) {
					f = fast.outs[i]
				}
				if r != f {
					t.Errorf("call %d differs:\ngrpc.Server: %s\nfast path:   %s", i, r.text, f.text)
				}
			}
			if ref.counters != fast.counters {
				t.Errorf("counters differ:\n%s", lineDiff(ref.counters, fast.counters, "grpc.Server", "fast path"))
			}
			if c.rejected == nil {
				c.rejected = map[reason]float64{}
			}
			if !maps.Equal(fast.rejected, c.rejected) {
				t.Errorf("rejected_requests_total{otlp_grpc} %v, want %v", fast.rejected, c.rejected)
			}
			if ref.sinkSpans != fast.sinkSpans {
				t.Errorf("the sink got %d spans from grpc.Server, %d from the fast path", ref.sinkSpans, fast.sinkSpans)
			}
			if ref.served != 0 || ref.handedOff != 0 {
				t.Errorf("with the fast path off, it served %d and handed off %d", ref.served, ref.handedOff)
			}
			if fast.served != c.served || fast.handedOff != c.handedOff {
				t.Errorf("fast path served %d and handed off %d requests, want %d and %d", fast.served, fast.handedOff, c.served, c.handedOff)
			}
		})
	}
}

// ---- protocol-level tests of the fast path, with raw frames ----

// fastConnection opens a connection whose first request (a valid Export on
// stream 1) puts it on the fast path, and waits for its reply.
func fastConnection(t *testing.T, tr *testReceiver, settings ...http2.Setting) *h2Client {
	t.Helper()
	c := dialH2(t, tr.addr, settings...)
	c.request(1, exportHeaders(), grpcMessage(0, bench.SDKOTLP(10, 1)))
	c.await(1)
	if o := c.outcome(1); o.code != codes.OK {
		t.Fatalf("first Export: %s", o.text)
	}
	if n := h2Served(tr.rc); n != 1 {
		t.Fatalf("the first Export was not served by the fast path (served %d)", n)
	}
	return c
}

// A client that gives no window for responses gets them when it does: the
// request is handled (its spans accepted) at once, and its reply waits for
// a WINDOW_UPDATE of the stream, or a SETTINGS that enlarges the initial
// window.
func TestH2FastResponsesWaitForWindow(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := dialH2(t, tr.addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	msg := grpcMessage(0, bench.SDKOTLP(10, 1))
	c.request(1, exportHeaders(), msg)
	c.request(3, exportHeaders(), msg)
	c.barrier([8]byte{1})
	if n := h2Served(tr.rc); n != 2 {
		t.Fatalf("fast path served %d requests, want 2", n)
	}
	if got := receivedSpans(tr.rc); got != 20 {
		t.Errorf("%d spans accepted before the window opened, want 20", got)
	}
	replies := func(id uint32) int {
		return c.count(func(ev h2Event) bool {
			return ev.stream == id && (ev.typ == http2.FrameData || ev.typ == http2.FrameHeaders)
		})
	}
	if replies(1)+replies(3) != 0 {
		t.Fatalf("replies sent without window:\n%s", c.frames())
	}
	c.windowUpdate(1, 4) // the reply needs 5 bytes
	c.barrier([8]byte{2})
	if replies(1) != 0 {
		t.Fatalf("a reply of 5 bytes sent with a window of 4:\n%s", c.frames())
	}
	c.windowUpdate(1, 1)
	c.await(1)
	if o := c.outcome(1); o.code != codes.OK || !strings.Contains(o.text, "data=0000000000 ") {
		t.Errorf("stream 1 after its WINDOW_UPDATE: %s", o.text)
	}
	c.barrier([8]byte{3})
	if replies(3) != 0 {
		t.Fatalf("stream 3 answered without window:\n%s", c.frames())
	}
	c.settings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
	c.await(3)
	if o := c.outcome(3); o.code != codes.OK {
		t.Errorf("stream 3 after SETTINGS_INITIAL_WINDOW_SIZE: %s", o.text)
	}
}

// Replies share the client's connection window: when they have used it up,
// the next ones wait for a WINDOW_UPDATE of the connection.
func TestH2FastResponsesWaitForConnectionWindow(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := dialH2(t, tr.addr)
	body := grpcMessage(0, partialBody(t)) // its reply carries a partial success: ~60 bytes
	c.request(1, exportHeaders(), body)
	c.await(1)
	replySize := 0
	c.count(func(ev h2Event) bool {
		if ev.stream == 1 && ev.typ == http2.FrameData {
			replySize += len(ev.data)
		}
		return false
	})
	if replySize < 20 {
		t.Fatalf("reply of %d bytes: want a partial success", replySize)
	}
	fit := 65535/replySize - 1 // more replies that fit in the client's initial connection window
	ids := func(from, n int) []uint32 {
		var out []uint32
		for i := range n {
			out = append(out, uint32(3+2*(from+i)))
		}
		return out
	}
	for _, id := range ids(0, fit+3) {
		c.request(id, exportHeaders(), body)
	}
	c.barrier([8]byte{1})
	answered := func(ids []uint32) (n int) {
		for _, id := range ids {
			n += c.count(func(ev h2Event) bool { return ev.stream == id && ev.typ == http2.FrameData })
		}
		return n
	}
	if n := answered(ids(0, fit)); n != fit {
		t.Errorf("%d of the %d replies that fit the window were sent", n, fit)
	}
	if n := answered(ids(fit, 3)); n != 0 {
		t.Errorf("%d replies sent past the connection window (%d bytes each)", n, replySize)
	}
	if n := h2Served(tr.rc); n != int64(fit+4) {
		t.Errorf("fast path served %d requests, want %d: replies wait, requests do not", n, fit+4)
	}
	c.windowUpdate(0, 1<<20)
	c.await(ids(fit, 3)...)
	for _, id := range ids(fit, 3) {
		if o := c.outcome(id); o.code != codes.OK {
			t.Errorf("stream %d after the WINDOW_UPDATE: %s", id, o.text)
		}
	}
}

// PINGs are acknowledged with their data; the client's own ACKs are not.
func TestH2FastPing(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := fastConnection(t, tr)
	c.wmu.Lock()
	c.w.WritePing(true, [8]byte{'a', 'c', 'k'}) // an ACK from the client: no answer
	c.wmu.Unlock()
	c.barrier([8]byte{'h', 'e', 'l', 'l', 'o'})
	if n := c.count(func(ev h2Event) bool { return ev.typ == http2.FramePing }); n != 1 {
		t.Errorf("%d PING frames from the server, want the one ACK:\n%s", n, c.frames())
	}
}

// More than two PINGs closer than 10s apart with nothing sent between them
// get GOAWAY ENHANCE_YOUR_CALM "too_many_pings", then the connection is
// closed, as grpc.Server's keepalive policy does.
func TestH2FastPingFlood(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := fastConnection(t, tr)
	for i := range 4 {
		c.ping([8]byte{byte(i)})
	}
	ga := c.awaitGoAway()
	if ga.code != http2.ErrCodeEnhanceYourCalm || ga.debug != "too_many_pings" || ga.last != 1 {
		t.Errorf("GOAWAY %v, want ENHANCE_YOUR_CALM \"too_many_pings\" with last stream 1", ga)
	}
	c.awaitClosed()
}

// PINGs between requests (a client's keepalive while it exports) are not a
// flood: each reply sent resets the count.
func TestH2FastPingsBetweenRequests(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := fastConnection(t, tr)
	msg := grpcMessage(0, bench.SDKOTLP(2, 1))
	for i := uint32(0); i < 10; i++ {
		c.barrier([8]byte{byte(i)})
		c.barrier([8]byte{byte(i), 1})
		id := 3 + 2*i
		c.request(id, exportHeaders(), msg)
		c.await(id)
		if o := c.outcome(id); o.code != codes.OK {
			t.Fatalf("request %d between pings: %s", i, o.text)
		}
	}
	if n := c.count(func(ev h2Event) bool { return ev.typ == http2.FrameGoAway }); n != 0 {
		t.Errorf("GOAWAY for pings between requests:\n%s", c.frames())
	}
}

// Requests larger than the 1 MiB stream window and, together, the 4 MiB
// connection window: the client can only finish them if the fast path gives
// window back as it reads.
func TestH2FastLargeRequests(t *testing.T) {
	tr := startReceiver(t, Config{MaxRequestBytes: 8 << 20})
	body := bench.SDKOTLP(7000, 5)
	if len(body) < 5<<19 {
		t.Fatalf("request of %d bytes: want over 2.5 MiB", len(body))
	}
	msg := grpcMessage(0, body)
	c := dialH2(t, tr.addr)
	for _, id := range []uint32{1, 3} {
		c.headers(id, exportHeaders(), false, 1)
		c.upload(id, msg, true)
		c.await(id)
		if o := c.outcome(id); o.code != codes.OK {
			t.Fatalf("stream %d: %s", id, o.text)
		}
	}
	if n := h2Served(tr.rc); n != 2 {
		t.Errorf("fast path served %d requests, want 2", n)
	}
	if got := receivedSpans(tr.rc); got != 14000 {
		t.Errorf("%d spans accepted, want 14000", got)
	}
	if n := c.count(func(ev h2Event) bool { return ev.typ == http2.FrameWindowUpdate && ev.stream == 1 }); n == 0 {
		t.Errorf("no WINDOW_UPDATE for stream 1")
	}
}

// Header blocks split over CONTINUATION frames, with HPACK's dynamic table
// in use across them: every request is read right.
func TestH2FastContinuation(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := dialH2(t, tr.addr)
	msg := grpcMessage(0, bench.SDKOTLP(3, 1))
	fields := exportHeaders("x-padding", strings.Repeat("p", 3000))
	for i, pieces := range []int{3, 2, 5, 1} {
		id := uint32(1 + 2*i)
		c.headers(id, fields, false, pieces)
		c.data(id, msg, true)
		c.await(id)
		if o := c.outcome(id); o.code != codes.OK {
			t.Fatalf("request in %d frames: %s", pieces, o.text)
		}
	}
	if s, h := h2Served(tr.rc), h2HandedOff(tr.rc); s != 4 || h != 0 {
		t.Errorf("fast path served %d and handed off %d, want 4 and 0", s, h)
	}
}

// Frames a client must not send end the connection with GOAWAY
// PROTOCOL_ERROR naming the last request served.
func TestH2FastProtocolErrors(t *testing.T) {
	msg := grpcMessage(0, bench.SDKOTLP(1, 1))
	for _, tc := range []struct {
		name string
		send func(c *h2Client)
	}{
		{"HEADERS on an even stream", func(c *h2Client) { c.request(4, exportHeaders(), msg) }},
		{"DATA on an idle stream", func(c *h2Client) { c.data(7, msg, true) }},
		{"CONTINUATION without HEADERS", func(c *h2Client) { c.raw(frame(frameContinuation, flagEndHeaders, 3, []byte{0x82})) }},
		{"PUSH_PROMISE", func(c *h2Client) { c.raw(frame(0x5, flagEndHeaders, 1, []byte{0, 0, 0, 2, 0x82})) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := startReceiver(t, Config{})
			c := fastConnection(t, tr)
			tc.send(c)
			ga := c.awaitGoAway()
			if ga.code != http2.ErrCodeProtocol || ga.last != 1 {
				t.Errorf("%v, want GOAWAY PROTOCOL_ERROR with last stream 1", ga)
			}
			c.awaitClosed()
		})
	}
}

// A frame larger than SETTINGS_MAX_FRAME_SIZE (16 KiB: the fast path
// announces no other) is a connection error FRAME_SIZE_ERROR (RFC 9113
// §4.2); grpc.Server closes such a connection too. The fast path's framer
// must not read it: its length can be up to 16 MiB, which the framer
// would allocate for the connection's life.
func TestH2FastFrameTooLarge(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := fastConnection(t, tr)
	c.headers(3, exportHeaders(), false, 1)
	c.wmu.Lock()
	c.w.WriteData(3, true, grpcMessage(0, bench.SDKOTLP(60, 1))) // one frame of ~26 KB
	c.wmu.Unlock()
	c.awaitClosed()
	if n := h2Served(tr.rc); n != 1 {
		t.Errorf("a request in a %d-byte DATA frame was served; want the connection closed (FRAME_SIZE_ERROR)", len(bench.SDKOTLP(60, 1))+5)
	}
	if n := c.count(func(ev h2Event) bool { return ev.typ == http2.FrameGoAway && ev.code == http2.ErrCodeFrameSize }); n != 1 {
		t.Errorf("no GOAWAY FRAME_SIZE_ERROR:\n%s", c.frames())
	}
}

// A HEADERS frame whose padding is longer than the frame is a connection
// error (RFC 9113 §6.2): its header block cannot be decoded, and HPACK
// state is lost with it. The fast path must not go on with the previous
// request's header block: that reopened stream 1, already answered, and
// counted it as cut off (read_body) when the connection closed.
func TestH2FastBadPadding(t *testing.T) {
	tr := startReceiver(t, Config{})
	c := fastConnection(t, tr)
	// HEADERS on stream 3, PADDED, pad length 200 in a 2-byte payload, no
	// END_HEADERS; a CONTINUATION with a literal "x-a: b"; then DATA.
	c.raw(frame(frameHeaders, flagPadded, 3, []byte{200, 0x82}))
	c.raw(frame(frameContinuation, flagEndHeaders, 3, []byte{0x00, 3, 'x', '-', 'a', 1, 'b'}))
	c.data(3, grpcMessage(0, bench.SDKOTLP(1, 1)), true)
	ga := c.awaitGoAway()
	if ga.code != http2.ErrCodeProtocol && ga.code != http2.ErrCodeCompression {
		t.Errorf("%v, want GOAWAY PROTOCOL_ERROR (or COMPRESSION_ERROR)", ga)
	}
	c.awaitClosed()
	if got := tr.rejected(t, protoOTLPGRPC, reasonReadBody); got != 0 {
		t.Errorf("rejected_requests_total{otlp_grpc,read_body} = %v: a request the client never sent was counted", got)
	}
	if s, h := h2Served(tr.rc), h2HandedOff(tr.rc); s != 1 || h != 0 {
		t.Errorf("fast path served %d and handed off %d, want 1 and 0", s, h)
	}
}

// Shutdown tells an idle fast-path connection GOAWAY(NO_ERROR) at once (the
// idle timeout here is an hour) and returns when the client has closed it.
func TestH2FastShutdownIdle(t *testing.T) {
	tr := startReceiver(t, Config{IdleTimeout: time.Hour})
	c := fastConnection(t, tr)
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tr.rc.Shutdown(ctx) }()
	ga := c.awaitGoAway()
	if ga.code != http2.ErrCodeNo || ga.last != 1 {
		t.Errorf("%v, want GOAWAY NO_ERROR with last stream 1", ga)
	}
	c.conn.Close() // as clients do after a GOAWAY with nothing in flight
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Shutdown waited for its deadline")
	}
	if _, n := tr.rc.transport.FastConns(); n != 0 {
		t.Errorf("Shutdown returned with %d fast-path connections open", n)
	}
}

// Shutdown while a request is being uploaded: the client is told GOAWAY
// with that request as the last one processed, the request is served when
// its upload ends, and only then does Shutdown return.
func TestH2FastShutdownInFlight(t *testing.T) {
	tr := startReceiver(t, Config{IdleTimeout: time.Hour})
	c := dialH2(t, tr.addr)
	msg := grpcMessage(0, bench.SDKOTLP(10, 1))
	c.headers(1, exportHeaders(), false, 1)
	c.data(1, msg[:100], false)
	c.barrier([8]byte{1})
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- tr.rc.Shutdown(ctx) }()
	for guard := time.Now().Add(hangGuard); !tr.rc.shuttingDown.Load(); time.Sleep(time.Millisecond) {
		if time.Now().After(guard) {
			t.Fatal("Shutdown did not start")
		}
	}
	c.ping([8]byte{2}) // the fast path looks at shutdown when it next reads
	ga := c.awaitGoAway()
	if ga.code != http2.ErrCodeNo || ga.last != 1 {
		t.Errorf("%v, want GOAWAY NO_ERROR with last stream 1", ga)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a request was being uploaded", err)
	default:
	}
	c.data(1, msg[100:], true)
	c.await(1)
	if o := c.outcome(1); o.code != codes.OK {
		t.Errorf("the request in flight at Shutdown: %s", o.text)
	}
	if got := receivedSpans(tr.rc); got != 10 {
		t.Errorf("%d spans accepted, want 10", got)
	}
	c.conn.Close()
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if ctx.Err() != nil {
		t.Errorf("Shutdown waited for its deadline")
	}
}

// When Shutdown's context ends with an upload still in flight, the
// connection is closed (as grpc.Server.Stop does) and the request counted
// as cut off: Shutdown does not leave fast-path connections behind.
func TestH2FastShutdownDeadline(t *testing.T) {
	tr := startReceiver(t, Config{IdleTimeout: time.Hour})
	c := dialH2(t, tr.addr)
	msg := grpcMessage(0, bench.SDKOTLP(10, 1))
	c.headers(1, exportHeaders(), false, 1)
	c.data(1, msg[:100], false) // and never the rest
	c.barrier([8]byte{1})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	tr.rc.Shutdown(ctx)
	c.awaitClosed()
	// The connection's goroutine counts it before it stops being tracked.
	waitFor(t, "the fast-path connection gone", func() bool { _, n := tr.rc.transport.FastConns(); return n == 0 })
	if got := tr.rejected(t, protoOTLPGRPC, reasonReadBody); got != 1 {
		t.Errorf("rejected_requests_total{otlp_grpc,read_body} = %v, want 1", got)
	}
}

// ---- fuzzing ----

// countingSink takes everything and counts spans only (a fuzzing run
// pushes too much to keep).
type countingSink struct{ spans atomic.Int64 }

func (*countingSink) Admit(bool) (bool, time.Duration) { return true, time.Second }
func (s *countingSink) Push(_ []byte, spans int, _ bool, accounted func()) error {
	s.spans.Add(int64(spans))
	accounted()
	return nil
}

// tinyOTLP is a request of one span: small seeds mutate and minimize fast.
func tinyOTLP() []byte {
	b, _ := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{{Key: "service.name", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: "f"}}}}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), Name: "s", StartTimeUnixNano: 1, EndTimeUnixNano: 2,
		}}}},
	}}})
	return b
}

// h2FastSeeds are the seed corpus of FuzzH2Fast (also in
// testdata/fuzz/FuzzH2Fast): frames after the preface and a SETTINGS.
func h2FastSeeds() map[string][]byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(fields []hpack.HeaderField) []byte {
		hb.Reset()
		for _, f := range fields {
			enc.WriteField(f)
		}
		return bytes.Clone(hb.Bytes())
	}
	msg := grpcMessage(0, tinyOTLP())
	cat := func(fs ...[]byte) []byte { return bytes.Join(fs, nil) }
	head := block(exportHeaders())
	again := block(exportHeaders()) // indexed: the decoder's table must be in step
	ping := frame(0x6, 0, 0, []byte("12345678"))
	return map[string][]byte{
		"valid-request": cat(frame(frameHeaders, flagEndHeaders, 1, head), frame(frameData, 1, 1, msg)),
		"two-requests":  cat(frame(frameHeaders, flagEndHeaders, 1, head), frame(frameData, 1, 1, msg), frame(frameHeaders, flagEndHeaders, 3, again), frame(frameData, 1, 3, msg)),
		"continuation": cat(frame(frameHeaders, 0, 1, head[:10]), frame(frameContinuation, 0, 1, head[10:20]),
			frame(frameContinuation, flagEndHeaders, 1, head[20:]), frame(frameData, 1, 1, msg)),
		"multi-data": cat(frame(frameHeaders, flagEndHeaders, 1, head), frame(frameData, 0, 1, msg[:3]), frame(frameData, 0, 1, msg[3:40]),
			frame(frameData, flagPadded, 1, append(append([]byte{4}, msg[40:50]...), 0, 0, 0, 0)), frame(frameData, 1, 1, msg[50:])),
		"rst-mid-upload": cat(frame(frameHeaders, flagEndHeaders, 1, head), frame(frameData, 0, 1, msg[:30]), frame(0x3, 0, 1, []byte{0, 0, 0, 8}),
			frame(frameHeaders, flagEndHeaders, 3, again), frame(frameData, 1, 3, msg)),
		"ping":          cat(ping, frame(frameHeaders, flagEndHeaders, 1, head), ping, frame(frameData, 1, 1, msg), ping, ping, ping),
		"window-update": cat(frame(frameWindowUpdate, 0, 0, []byte{0, 1, 0, 0}), frame(frameHeaders, flagEndHeaders, 1, head), frame(frameWindowUpdate, 0, 1, []byte{0, 0, 0, 10}), frame(frameData, 1, 1, msg)),
		"settings": cat(frame(frameSettings, 0, 0, []byte{0, 4, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1}), frame(frameHeaders, flagEndHeaders, 1, head), frame(frameData, 1, 1, msg),
			frame(frameSettings, 0, 0, []byte{0, 4, 0, 0, 0, 100}), frame(frameSettings, flagAck, 0, nil)),
		"unknown-method": cat(frame(frameHeaders, flagEndHeaders, 1, head), frame(frameData, 1, 1, msg),
			frame(frameHeaders, flagEndHeaders, 3, block(exportHeaders(":path", "/foo.Bar/Baz"))), frame(frameData, 1, 3, msg),
			frame(frameHeaders, flagEndHeaders, 5, again), frame(frameData, 1, 5, msg)),
		"goaway": cat(frame(frameHeaders, flagEndHeaders, 1, head), frame(0x7, 0, 0, []byte{0, 0, 0, 0, 0, 0, 0, 0}), frame(frameData, 1, 1, msg)),
		"gzip":   cat(frame(frameHeaders, flagEndHeaders, 1, block(exportHeaders("grpc-encoding", "gzip"))), frame(frameData, 1, 1, grpcMessage(1, gzipped(tinyOTLP())))),
		"jaeger": cat(frame(frameHeaders, flagEndHeaders, 1, block(exportHeaders(":path", grpcraw.JaegerPostSpans))),
			frame(frameData, 1, 1, grpcMessage(0, bench.JaegerPostSpans(2, 1)))),
		"zstd-handoff": cat(frame(frameHeaders, flagEndHeaders, 1, head), frame(frameData, 1, 1, msg),
			frame(frameHeaders, flagEndHeaders, 3, block(exportHeaders("grpc-encoding", "zstd"))), frame(frameData, 1, 3, grpcMessage(1, tinyOTLP()))),
	}
}

// checkH2Output reads what the server writes until the connection ends:
// it must be frames a client can read, ending each stream at most once.
func checkH2Output(conn net.Conn) error {
	fr := http2.NewFramer(nil, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	ended := map[uint32]bool{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				return nil // (a reset: the server closed with input unread)
			}
			return fmt.Errorf("the server wrote what a client cannot read: %v", err)
		}
		id := f.Header().StreamID
		switch f := f.(type) {
		case *http2.MetaHeadersFrame, *http2.DataFrame:
			if ended[id] {
				return fmt.Errorf("the server answered stream %d again: %v", id, f)
			}
			ended[id] = f.Header().Flags.Has(http2.FlagHeadersEndStream)
		case *http2.RSTStreamFrame:
			ended[id] = true
		}
	}
}

// FuzzH2Fast feeds arbitrary frames to a fast-path connection, then ends
// the client's side of it. Whatever comes in: no panic, the connection
// ends, what the server wrote is HTTP/2 a client can read that answers no
// stream twice, every span counted received reached the sink, and the
// receiver still serves a normal request on a new connection.
func FuzzH2Fast(f *testing.F) {
	seeds := h2FastSeeds()
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	sink := &countingSink{}
	reg := prometheus.NewRegistry()
	rc := New(Config{MaxRequestBytes: 1 << 20, MaxServices: 50}, sink, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	raw, err := net.Listen("tcp", "127.0.0.1:0") // connections given to the fast path directly
	if err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the receiver's port
	if err != nil {
		f.Fatal(err)
	}
	go rc.Serve(ln)
	f.Cleanup(func() {
		raw.Close()
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		rc.Shutdown(ctx)
	})
	normal := grpcMessage(0, tinyOTLP())
	f.Fuzz(func(t *testing.T, frames []byte) {
		cli, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		cli.SetDeadline(time.Now().Add(hangGuard))
		srv, err := raw.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); rc.transport.ServeGRPCConn(srv) }()
		checked := make(chan error, 1)
		go func() { checked <- checkH2Output(cli) }()
		cli.Write(frame(frameSettings, 0, 0, nil))
		cli.Write(frames)
		cli.(*net.TCPConn).CloseWrite()
		select {
		case <-done:
		case <-time.After(hangGuard):
			t.Fatalf("the fast path did not end after the client's end of input")
		}
		if err := <-checked; err != nil {
			t.Fatal(err)
		}
		if got, want := sink.spans.Load(), receivedSpans(rc); got != want {
			t.Fatalf("accounting: %d spans counted received, the sink got %d", want, got)
		}

		c := dialH2(t, ln.Addr().String())
		c.request(1, exportHeaders(), normal)
		c.await(1)
		if o := c.outcome(1); o.code != codes.OK {
			t.Fatalf("a normal request after the input: %s", o.text)
		}
		c.conn.Close()
		if got, want := sink.spans.Load(), receivedSpans(rc); got != want {
			t.Fatalf("accounting: %d spans counted received, the sink got %d", want, got)
		}
	})
}
