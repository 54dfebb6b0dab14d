package transport

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/traceport/traceport/internal/bufpool"
)

// The gRPC fast path serves unary requests of the methods the UnaryHandler
// names (OTLP Export, Jaeger PostSpans), uncompressed or gzipped, one
// goroutine per connection, every reply of a batch of frames written in one
// syscall; any other method is answered UNIMPLEMENTED, as grpc.Server does.
// A later request of another kind hands the connection over with a GOAWAY.
// Replies, errors included, are grpc.Server's. See DESIGN.md for why.

const (
	h2StreamWindow  = 1 << 20 // per request before window is returned, as grpc.StaticStreamWindowSize
	h2ConnWindow    = 4 << 20 // as grpc.StaticConnWindowSize
	h2ReadBufSize   = 64 << 10
	h2MaxHeaderList = 64 << 10 // as grpc.MaxHeaderListSize
	h2InitialWindow = 65535    // RFC 9113 §6.9.2
	h2MaxFrameSize  = 16384    // RFC 9113 §6.5.2: neither side asks for more
	h2DrainTime     = 5 * time.Second
	pingMinTime     = 10 * time.Second // grpc.KeepaliveEnforcementPolicy.MinTime
	maxPingStrikes  = 2                // as grpc-go
	h2MaxWindow     = 1<<31 - 1        // RFC 9113 §6.9.1
	// MaxResetsInARow is how many streams a client may reset, with no
	// request completing in between, before the connection is closed
	// (a rapid-reset attack costs no more than this many streams).
	MaxResetsInARow = 1000
)

// h2Conn is one connection on the fast path. Everything runs on its serve
// goroutine; nothing is shared but the tracking in fastConns.
type h2Conn struct {
	fastConn
	srv    *Server
	br     *bufio.Reader
	fr     *http2.Framer
	out    bytes.Buffer // frames to write at the end of the batch
	client string

	head     h2Head // what the last header block says
	streams  map[uint32]*h2Stream
	lastID   uint32 // highest stream id the client opened
	lastGood uint32 // highest stream id served: a GOAWAY's last stream
	goneAway bool   // GOAWAY sent: later streams are not processed
	peerGone bool   // the client sent GOAWAY: no new streams will come
	preAcked bool   // the replayed SETTINGS were acknowledged by the sniffer

	sendConn    int64 // the client's connection window for our DATA
	peerInitial int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	blocked     []*h2Stream
	recvUnacked int // connection-level DATA consumed, not yet given back

	lastPing    time.Time
	pingStrikes int
	wroteData   bool // since the last PING: resets the strikes, as in grpc-go
	resets      int  // streams the client reset since a request last completed

	replyBlock    []byte // replyHeaders' last block other than okHeaders
	replySubtype  string
	replyGzip     bool
	deadline      time.Time // the read deadline set last
	writeDeadline writeDeadline
}

// h2Stream is one request being uploaded.
type h2Stream struct {
	id          uint32
	method      string
	gzip        bool // grpc-encoding: gzip
	sendWindow  int64
	recvUnacked int
	prefix      [5]byte // the gRPC message prefix: compressed flag, length
	nprefix     int
	msg         *[]byte   // the message, from bufpool.Shared, grown as it arrives
	size        int       // the message's length, as its prefix declares
	n           int       // bytes of msg received
	hold        Hold      // the bytes received, charged to the in-flight budget
	deadline    time.Time // --read-timeout after the headers: the whole request is in by then
	complete    bool      // the message is in, decompressed and decoded
	decoded     any       // what UnaryHandler.Decode made of it; nil: msg
	ended       bool      // the client's END_STREAM was seen
	reply       []byte    // a response waiting for flow-control window
	subtype     string    // of the content type ("proto" in application/grpc+proto): the reply's too

	// A second message, which grpc.Server reads whole before it refuses
	// the request; so does the fast path, to give the same answer.
	next     [5]byte
	nnext    int
	nextLeft int
}

// serveH2 runs the fast path on one HTTP/2 connection; frames, read while
// sniffing (after the preface), are replayed first.
func (srv *Server) serveH2(conn net.Conn, frames []byte, settingsAcked bool) {
	c := &h2Conn{
		fastConn:    fastConn{conn: conn},
		srv:         srv,
		client:      conn.RemoteAddr().String(),
		streams:     map[uint32]*h2Stream{},
		sendConn:    h2InitialWindow,
		peerInitial: h2InitialWindow,
		preAcked:    settingsAcked,
	}
	if !srv.h2.add(&c.fastConn, srv) {
		conn.Close()
		return
	}
	defer srv.h2.remove(&c.fastConn)
	c.br = bufio.NewReaderSize(&replayConn{Conn: conn, head: frames}, h2ReadBufSize)
	c.fr = newH2Framer(&c.out, c.br, hpack.NewDecoder(4096, nil))
	c.fr.SetReuseFrames()
	c.serve()
}

func (c *h2Conn) serve() {
	defer c.close()
	c.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.srv.cfg.MaxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: h2MaxHeaderList},
	)
	c.fr.WriteWindowUpdate(0, h2ConnWindow-h2InitialWindow)
	for {
		if !c.frameBuffered() {
			if !c.flush() || !c.wait() {
				return
			}
		}
		fh, err := c.fr.ReadFrameHeader()
		var f http2.Frame
		if err == nil {
			f, err = c.fr.ReadFrameForHeader(fh)
		}
		if err != nil {
			if se, ok := err.(http2.StreamError); ok {
				// A bad frame, or a header block x/net decoded whole but
				// refuses (a field not allowed): the stream is reset and
				// the connection goes on, as in grpc.Server.
				c.resetStream(se.StreamID, se.Code)
				continue
			}
			if ce, ok := err.(http2.ConnectionError); ok {
				c.fail(http2.ErrCode(ce))
			} else if errors.Is(err, http2.ErrFrameTooLarge) {
				c.fail(http2.ErrCodeFrameSize)
			}
			return
		}
		if !c.handle(f) {
			return
		}
	}
}

// frameBuffered reports whether a whole frame is in the read buffer, so
// that reading it cannot block.
func (c *h2Conn) frameBuffered() bool {
	n := c.br.Buffered()
	if n < 9 {
		return false
	}
	h, _ := c.br.Peek(9)
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	return n >= 9+length
}

// wait blocks until the client sends more. It reports false when the
// connection is to be closed: idle too long, gone, or drained after a
// GOAWAY (shutdown or hand-over) once no request is left open.
func (c *h2Conn) wait() bool {
	srv := c.srv
	idle := len(c.streams) == 0
	if idle {
		c.idle.Store(true)
		defer c.idle.Store(false)
	}
	if srv.shuttingDown.Load() && !c.goneAway {
		c.goAway(http2.ErrCodeNo)
		if !c.flush() {
			return false
		}
	}
	timeout := srv.cfg.IdleTimeout
	if (c.goneAway || c.peerGone) && idle {
		// Done: wait a little for the client to close first, so that
		// the GOAWAY is read before the connection goes.
		timeout = h2DrainTime
	}
	now := time.Now()
	d := now.Add(timeout)
	// Each request must be in by its --read-timeout: the earliest is
	// the deadline, set exactly once for that request.
	expiring := c.firstExpiry()
	if !expiring.IsZero() && expiring.Before(d) {
		d = expiring
	}
	if d.Before(c.deadline) || d.Sub(c.deadline) > timeout/16 || d.Equal(expiring) && !d.Equal(c.deadline) {
		c.conn.SetReadDeadline(d)
		c.deadline = d
	}
	if idle && srv.shuttingDown.Load() && !c.goneAway {
		// Shutdown's wake-up (closeIdle) may have come between the look
		// above and the deadline just set, which replaced it: look again.
		c.deadline = time.Time{}
		return c.wait()
	}
	for c.br.Buffered() == 0 || !c.frameBuffered() {
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			if isTimeout(err) && srv.shuttingDown.Load() && !c.goneAway {
				c.deadline = time.Time{} // woken by Shutdown: say goodbye
				return c.wait()
			}
			if isTimeout(err) && !expiring.IsZero() && !time.Now().Before(expiring) {
				c.expire()
				return c.flush() && c.wait()
			}
			if isTimeout(err) && idle && !c.goneAway {
				c.goAway(http2.ErrCodeNo)
				c.flush()
			}
			return false
		}
		if c.br.Buffered() >= 9 {
			break // ReadFrame reads the rest of the frame
		}
	}
	return true
}

// firstExpiry is the earliest --read-timeout of the requests being
// uploaded; zero if none.
func (c *h2Conn) firstExpiry() time.Time {
	var first time.Time
	for _, s := range c.streams {
		if !s.ended && (first.IsZero() || s.deadline.Before(first)) {
			first = s.deadline
		}
	}
	return first
}

// expire cuts off the requests not in by their --read-timeout, as net/http
// cuts off a slow upload: counted (read_body) and answered.
func (c *h2Conn) expire() {
	now := time.Now()
	for _, s := range c.streams {
		if !s.ended && !now.Before(s.deadline) {
			c.srv.h.Unary.Reject(s.method, ErrCutShort)
			c.replyError(s, status.Error(codes.DeadlineExceeded, "request not received within --read-timeout"))
		}
	}
}

// flush writes the batch's frames; false means the connection is gone.
func (c *h2Conn) flush() bool {
	if c.out.Len() == 0 {
		return true
	}
	c.writeDeadline.extend(c.conn) // a client that stops reading is cut off
	_, err := c.conn.Write(c.out.Bytes())
	c.out.Reset()
	return err == nil
}

// close ends the connection; requests still being uploaded were cut off.
func (c *h2Conn) close() {
	for _, s := range c.streams {
		c.cutOff(s)
	}
	c.conn.Close()
}

// fail ends the connection on a protocol error (RFC 9113 §5.4.1).
func (c *h2Conn) fail(code http2.ErrCode) {
	c.fr.WriteGoAway(c.lastGood, code, nil)
	c.goneAway = true
	c.flush()
}

// goAway tells the client that no stream after lastGood will be processed.
// Header blocks are not decoded from then on: no request will be read.
func (c *h2Conn) goAway(code http2.ErrCode) {
	if !c.goneAway {
		c.goneAway = true
		c.fr.WriteGoAway(c.lastGood, code, nil)
	}
	c.fr.ReadMetaHeaders = nil
}

// handle acts on one frame; false closes the connection.
func (c *h2Conn) handle(f http2.Frame) bool {
	switch f := f.(type) {
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f.HeadersFrame, f.Fields, f.Truncated)
	case *http2.HeadersFrame:
		return c.onHeaders(f, nil, false) // after our GOAWAY: not decoded
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.PingFrame:
		return c.onPing(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.RSTStreamFrame:
		if s := c.streams[f.StreamID]; s != nil {
			c.cutOff(s) // the client gave up on it
			if c.resets++; c.resets > MaxResetsInARow {
				c.fail(http2.ErrCodeEnhanceYourCalm)
				return false
			}
		}
	case *http2.GoAwayFrame:
		c.peerGone = true
	case *http2.PushPromiseFrame:
		c.fail(http2.ErrCodeProtocol) // clients never push
		return false
	}
	return true
}

// onHeaders takes a request's header block, decoded by x/net's framer
// (fields stop at h2MaxHeaderList: truncated says some were left out).
func (c *h2Conn) onHeaders(f *http2.HeadersFrame, fields []hpack.HeaderField, truncated bool) bool {
	if f.StreamID <= c.lastID || f.StreamID%2 == 0 {
		// Request trailers, a stream id used before, or an even one:
		// grpc.Server ends the connection on all three.
		c.fail(http2.ErrCodeProtocol)
		return false
	}
	c.lastID = f.StreamID
	if truncated {
		// As grpc.Server answers a header list over its limit.
		c.fr.WriteRSTStream(f.StreamID, http2.ErrCodeFrameSize)
		return true
	}
	c.head = h2Head{}
	for _, hf := range fields {
		c.head.field(hf)
	}
	c.open(f.StreamID, f.StreamEnded())
	return true
}

// onWindowUpdate adds to a send window; one past 2^31-1 is a flow-control
// error (RFC 9113 §6.9.1) of the stream, or of the connection.
func (c *h2Conn) onWindowUpdate(f *http2.WindowUpdateFrame) bool {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if c.sendConn+inc > h2MaxWindow {
			c.fail(http2.ErrCodeFlowControl)
			return false
		}
		c.sendConn += inc
	} else if s := c.streams[f.StreamID]; s != nil {
		if s.sendWindow+inc > h2MaxWindow {
			c.resetStream(s.id, http2.ErrCodeFlowControl)
			return true
		}
		s.sendWindow += inc
	}
	c.sendBlocked()
	return true
}

// open starts a request whose headers just ended.
func (c *h2Conn) open(id uint32, endStream bool) {
	srv := c.srv
	kind := c.head.kind()
	switch {
	case c.goneAway:
		return // after our GOAWAY: not processed, the client retries it
	case kind == h2Other:
		srv.h2.handedOff.Add(1)
		c.goAway(http2.ErrCodeNo) // grpc.Server takes it on a new connection
		return
	case len(c.streams) >= int(srv.cfg.MaxStreams):
		c.fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		return
	}
	c.lastGood = id
	s := &h2Stream{id: id, method: c.head.path, gzip: c.head.encoding == "gzip", sendWindow: c.peerInitial, ended: endStream,
		hold: srv.budget.NewHold(), deadline: time.Now().Add(srv.cfg.ReadTimeout)}
	s.subtype, _ = grpcSubtype(c.head.contentType)
	if !srv.h.Unary.Serves(s.method) {
		c.replyError(s, srv.h.Unary.Unknown(c.head.path))
		return
	}
	if err := srv.h.Unary.Admit(s.method); err != nil {
		c.replyError(s, err)
		return
	}
	c.streams[id] = s
	if endStream {
		c.finish(s)
	}
}

func (c *h2Conn) onData(f *http2.DataFrame) bool {
	n := int(f.Length) // padding included: it counts against flow control
	c.recvUnacked += n
	if c.recvUnacked >= h2ConnWindow/4 {
		c.fr.WriteWindowUpdate(0, uint32(c.recvUnacked))
		c.recvUnacked = 0
	}
	s := c.streams[f.StreamID]
	if s == nil || s.ended {
		if f.StreamID > c.lastID {
			c.fail(http2.ErrCodeProtocol) // DATA on a stream never opened
			return false
		}
		return true // answered, refused or not processed: dropped
	}
	if err := c.take(s, f.Data()); err == ErrOverBudget {
		// The bytes of requests in flight are spent: this one was not
		// processed, and grpc-go clients retry a REFUSED_STREAM.
		c.srv.h.Unary.Reject(s.method, ErrOverBudget)
		c.fr.WriteRSTStream(s.id, http2.ErrCodeRefusedStream)
		s.ended = true
		c.drop(s)
		return true
	} else if err != nil {
		c.replyError(s, c.srv.h.Unary.Refuse(s.method, err))
		return true
	}
	if f.StreamEnded() {
		s.ended = true
		c.finish(s)
		return true
	}
	if s.recvUnacked += n; s.recvUnacked >= h2StreamWindow/4 {
		c.fr.WriteWindowUpdate(s.id, uint32(s.recvUnacked))
		s.recvUnacked = 0
	}
	return true
}

// take adds DATA to a request's message. Errors are grpc-go's for the same
// upload, in the same order: the message is checked, decompressed and
// decoded as soon as it is in, a second one refused once it is in too.
func (c *h2Conn) take(s *h2Stream, data []byte) error {
	max := c.srv.cfg.MaxRequestBytes
	for len(data) > 0 {
		if s.nprefix < len(s.prefix) {
			k := copy(s.prefix[s.nprefix:], data)
			s.nprefix += k
			data = data[k:]
			if s.nprefix == len(s.prefix) {
				size := binary.BigEndian.Uint32(s.prefix[1:])
				if int64(size) > max {
					return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", size, max)
				}
				s.size = int(size)
				if size == 0 {
					s.msg = bufpool.Shared.Get(0)
					if err := c.decode(s); err != nil {
						return err
					}
				}
			}
			continue
		}
		if !s.complete {
			k := min(s.size-s.n, len(data))
			if !s.hold.Grow(int64(k)) {
				return ErrOverBudget
			}
			s.reserve(s.n + k)
			copy((*s.msg)[s.n:], data[:k])
			s.n += k
			data = data[k:]
			if s.n == s.size {
				*s.msg = (*s.msg)[:s.n]
				if err := c.decode(s); err != nil {
					return err
				}
			}
			continue
		}
		if s.nnext < len(s.next) {
			k := copy(s.next[s.nnext:], data)
			s.nnext += k
			data = data[k:]
			if s.nnext < len(s.next) {
				continue
			}
			size := binary.BigEndian.Uint32(s.next[1:])
			if int64(size) > max {
				return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", size, max)
			}
			s.nextLeft = int(size)
		}
		k := min(s.nextLeft, len(data))
		s.nextLeft -= k
		data = data[k:]
		if s.nextLeft == 0 {
			if err := payloadError(s.next[0], s.gzip); err != nil {
				return err
			}
			return status.Error(codes.Internal, "cardinality violation: received multiple request messages for non-client-streaming RPC")
		}
	}
	return nil
}

// reserve makes room for n bytes of the message: the buffer grows with what
// has arrived (doubling, up to the declared size), never by the declared
// size alone, so a prefix declaring 20 MiB costs nothing until they come.
func (s *h2Stream) reserve(n int) {
	if s.msg != nil && n <= cap(*s.msg) {
		*s.msg = (*s.msg)[:cap(*s.msg)]
		return
	}
	size := n
	if s.msg != nil {
		size = min(max(n, 2*cap(*s.msg)), s.size)
	}
	bigger := bufpool.Shared.Get(size)
	if s.msg != nil {
		copy(*bigger, (*s.msg)[:s.n])
		bufpool.Shared.Put(s.msg)
	}
	s.msg = bigger
	*s.msg = (*s.msg)[:cap(*s.msg)]
}

// decode does what grpc.Server does with a message as soon as it is in:
// check its compressed flag, decompress it, unmarshal it (Jaeger's; OTLP
// stays bytes).
func (c *h2Conn) decode(s *h2Stream) error {
	s.complete = true
	if err := payloadError(s.prefix[0], s.gzip); err != nil {
		return err
	}
	if s.prefix[0] == 1 {
		out, err := gunzipMessage(*s.msg, int(c.srv.cfg.MaxRequestBytes))
		bufpool.Shared.Put(s.msg)
		s.msg = out
		if err != nil {
			return err
		}
	}
	decoded, err := c.srv.h.Unary.Decode(s.method, *s.msg)
	if decoded != nil || err != nil {
		bufpool.Shared.Put(s.msg) // copied what it keeps
		s.msg = nil
	}
	s.decoded = decoded
	return err
}

// payloadError is grpc-go's checkRecvPayload: the status it answers for a
// message's compressed flag.
func payloadError(flag byte, gzip bool) error {
	switch {
	case flag == 1 && !gzip:
		return status.Error(codes.Internal, "grpc: compressed flag set with identity or empty encoding")
	case flag > 1:
		return status.Errorf(codes.Internal, "grpc: received unexpected payload format %d", flag)
	}
	return nil
}

var gzipPool sync.Pool // *gzip.Reader

// gunzipMessage decompresses a gzipped gRPC message into a buffer of
// bufpool.Shared, stopping past limit bytes (a gzip bomb costs no more);
// errors are grpc-go's.
func gunzipMessage(src []byte, limit int) (*[]byte, error) {
	zr, _ := gzipPool.Get().(*gzip.Reader)
	var err error
	if zr == nil {
		zr, err = gzip.NewReader(bytes.NewReader(src))
	} else {
		err = zr.Reset(bytes.NewReader(src))
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "grpc: failed to decompress the message: %v", err)
	}
	defer gzipPool.Put(zr)
	out := bufpool.Shared.Get(min(max(4*len(src), 4<<10), limit+1))
	n := 0
	for {
		if n == len(*out) {
			if n > limit {
				break
			}
			bigger := bufpool.Shared.Get(min(2*n, limit+1))
			copy(*bigger, (*out)[:n])
			bufpool.Shared.Put(out)
			out = bigger
		}
		k, err := zr.Read((*out)[n:])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			bufpool.Shared.Put(out)
			return nil, status.Errorf(codes.Internal, "grpc: failed to read decompressed data: %v", err)
		}
	}
	if n > limit {
		bufpool.Shared.Put(out)
		return nil, status.Errorf(codes.ResourceExhausted, "grpc: received message after decompression larger than max %d", limit)
	}
	*out = (*out)[:n]
	return out, nil
}

// finish handles a request the client has ended.
func (c *h2Conn) finish(s *h2Stream) {
	srv := c.srv
	c.resets = 0
	var err error
	switch {
	case s.nprefix == 0:
		err = status.Error(codes.Internal, "cardinality violation: received no request message from non-client-streaming RPC")
	case !s.complete:
		err = status.Error(codes.Internal, "unexpected EOF")
	}
	switch {
	case err != nil:
	case s.nnext > 0:
		// A second message cut short. grpc.Server answers as below but
		// its handler sees a plain io.ErrUnexpectedEOF: malformed.
		srv.h.Unary.Reject(s.method, ErrMalformed)
		c.replyError(s, status.Error(codes.Internal, "unexpected EOF"))
		return
	}
	if err != nil {
		c.replyError(s, srv.h.Unary.Refuse(s.method, err))
		return
	}
	var resp []byte
	if s.decoded != nil {
		resp, err = srv.h.Unary.Serve(s.method, c.client, s.decoded, nil, nil)
		s.decoded = nil
	} else {
		msg := *s.msg
		buf := mem.NewBuffer(s.msg, bufpool.Shared)
		s.msg = nil // the handler frees it
		resp, err = srv.h.Unary.Serve(s.method, c.client, nil, msg, buf)
	}
	srv.h2.served.Add(1)
	if err != nil {
		c.replyError(s, err)
		return
	}
	if need := int64(5 + len(resp)); need > c.sendConn || need > s.sendWindow {
		s.reply = append([]byte{}, resp...) // waits for the client's WINDOW_UPDATE
		c.blocked = append(c.blocked, s)
		return
	}
	c.writeReply(s, resp)
}

// writeReply answers a request: headers, the response message, trailers.
func (c *h2Conn) writeReply(s *h2Stream, resp []byte) {
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: c.replyHeaders(s), EndHeaders: true})
	var prefix [5]byte
	if s.gzip && len(resp) > 0 {
		prefix[0] = 1
		resp = gzipReply(resp)
	}
	binary.BigEndian.PutUint32(prefix[1:], uint32(len(resp)))
	c.fr.WriteData(s.id, false, append(prefix[:], resp...))
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: s.id, BlockFragment: okTrailers, EndHeaders: true, EndStream: true})
	c.sendConn -= int64(5 + len(resp))
	c.wroteData = true
	c.drop(s)
}

// replyHeaders is the header block of a reply. As grpc.Server's, it
// carries the request's content subtype and, for a gzipped request, the
// reply's compression; a block other than okHeaders is kept for the next
// reply on the connection, which is most often alike.
func (c *h2Conn) replyHeaders(s *h2Stream) []byte {
	if s.subtype == "" && !s.gzip {
		return okHeaders
	}
	if c.replyBlock == nil || s.subtype != c.replySubtype || s.gzip != c.replyGzip {
		kv := []string{":status", "200", "content-type", replyType(s.subtype)}
		if s.gzip {
			kv = append(kv, "grpc-encoding", "gzip")
		}
		c.replyBlock, c.replySubtype, c.replyGzip = hpackBlock(kv...), s.subtype, s.gzip
	}
	return c.replyBlock
}

// replyType is the content type of a reply, as grpc-go derives it.
func replyType(subtype string) string {
	if subtype == "" {
		return "application/grpc"
	}
	return "application/grpc+" + subtype
}

// gzipReply compresses a reply message as grpc-go's gzip compressor does
// (the standard library's, default level). Only partial-success replies
// to gzipped requests take it: rare.
func gzipReply(b []byte) []byte {
	var out bytes.Buffer
	zw, _ := encoding.GetCompressor("gzip").Compress(&out) // the one grpc.Server replies with
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// sendBlocked writes the responses that were waiting for window, in order.
func (c *h2Conn) sendBlocked() {
	kept := c.blocked[:0]
	for _, s := range c.blocked {
		switch need := int64(5 + len(s.reply)); {
		case c.streams[s.id] != s: // reset meanwhile
		case need > c.sendConn || need > s.sendWindow:
			kept = append(kept, s)
		default:
			c.writeReply(s, s.reply)
		}
	}
	clear(c.blocked[len(kept):])
	c.blocked = kept
}

// replyError answers with a gRPC status (already counted) in a
// trailers-only response; a request still uploading is then reset, as
// grpc-go does, and its remaining DATA dropped.
func (c *h2Conn) replyError(s *h2Stream, err error) {
	c.writeHeaderBlock(s.id, trailersOnly(replyType(s.subtype), status.Convert(err)))
	if !s.ended {
		c.fr.WriteRSTStream(s.id, http2.ErrCodeNo)
		s.ended = true
	}
	c.wroteData = true
	c.drop(s)
}

// writeHeaderBlock writes a block that ends the stream, in CONTINUATION
// frames past the frame size (a long error message).
func (c *h2Conn) writeHeaderBlock(id uint32, block []byte) {
	first := block[:min(len(block), h2MaxFrameSize)]
	block = block[len(first):]
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndHeaders: len(block) == 0, EndStream: true})
	for len(block) > 0 {
		frag := block[:min(len(block), h2MaxFrameSize)]
		block = block[len(frag):]
		c.fr.WriteContinuation(id, len(block) == 0, frag)
	}
}

// resetStream ends a stream on a stream error (RFC 9113 §5.4.2).
func (c *h2Conn) resetStream(id uint32, code http2.ErrCode) {
	if s := c.streams[id]; s != nil {
		c.cutOff(s)
	}
	c.fr.WriteRSTStream(id, code)
}

// cutOff drops a request whose upload will not complete; it was admitted,
// so it is counted, as grpc.Server's handler counts a failed read.
func (c *h2Conn) cutOff(s *h2Stream) {
	if s.reply == nil {
		c.srv.h.Unary.Reject(s.method, ErrCutShort)
	}
	c.drop(s)
}

func (c *h2Conn) drop(s *h2Stream) {
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
	}
	s.hold.Free()
	if s.msg != nil {
		bufpool.Shared.Put(s.msg)
		s.msg = nil
	}
}

func (c *h2Conn) onSettings(f *http2.SettingsFrame) bool {
	if f.IsAck() {
		return true
	}
	if f.NumSettings() > maxSettings {
		c.fail(http2.ErrCodeProtocol) // as net/http's server
		return false
	}
	err := f.ForeachSetting(func(set http2.Setting) error {
		if err := set.Valid(); err != nil {
			return err
		}
		if set.ID == http2.SettingInitialWindowSize {
			delta := int64(set.Val) - c.peerInitial
			c.peerInitial = int64(set.Val)
			for _, s := range c.streams {
				if s.sendWindow += delta; s.sendWindow > h2MaxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl) // RFC 9113 §6.9.2
				}
			}
		}
		return nil
	})
	if ce, ok := err.(http2.ConnectionError); ok {
		c.fail(http2.ErrCode(ce))
		return false
	}
	if c.preAcked {
		c.preAcked = false
	} else {
		c.fr.WriteSettingsAck()
	}
	c.sendBlocked()
	return true
}

// onPing answers a PING, and enforces the keepalive policy grpc.Server has:
// more than two pings closer than pingMinTime apart, with nothing sent in
// between, and the client is told "too_many_pings" and cut off.
func (c *h2Conn) onPing(f *http2.PingFrame) bool {
	if f.IsAck() {
		return true
	}
	now := time.Now()
	if c.wroteData {
		c.wroteData, c.pingStrikes = false, 0
	} else if !c.lastPing.IsZero() && now.Sub(c.lastPing) < pingMinTime {
		c.pingStrikes++
	}
	c.lastPing = now
	if c.pingStrikes > maxPingStrikes {
		c.fr.WriteGoAway(c.lastGood, http2.ErrCodeEnhanceYourCalm, []byte("too_many_pings"))
		c.goneAway = true
		c.flush()
		return false
	}
	c.fr.WritePing(true, f.Data)
	return true
}

// The header blocks of replies: literals never indexed, so no HPACK state
// is shared with the client's decoder and each block is a constant.
var (
	okHeaders  = hpackBlock(":status", "200", "content-type", "application/grpc")
	okTrailers = hpackBlock("grpc-status", "0", "grpc-message", "")
)

func hpackBlock(kv ...string) []byte {
	var b bytes.Buffer
	enc := hpack.NewEncoder(&b)
	for i := 0; i < len(kv); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1], Sensitive: true})
	}
	return b.Bytes()
}

// trailersOnly is the header block of an error reply, as grpc-go writes it.
func trailersOnly(contentType string, st *status.Status) []byte {
	kv := []string{":status", "200", "content-type", contentType,
		"grpc-status", strconv.Itoa(int(st.Code())), "grpc-message", encodeGRPCMessage(st.Message())}
	if p := st.Proto(); len(p.Details) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			kv = append(kv, "grpc-status-details-bin", base64.RawStdEncoding.EncodeToString(b))
		}
	}
	return hpackBlock(kv...)
}

// encodeGRPCMessage percent-encodes a status message (gRPC over HTTP/2:
// "Status-Message").
func encodeGRPCMessage(msg string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		if c := msg[i]; c < 0x20 || c > 0x7e || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}
