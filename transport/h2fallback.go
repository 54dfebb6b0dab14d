package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 frame types the fallback watches besides those in h2sniff.go.
const (
	frameData      = 0x0
	frameRSTStream = 0x3
	frameGoAway    = 0x7
	flagEndStream  = 0x1
)

// grpcOnlyConn is a native gRPC connection that stays correct when a client
// later sends a plain HTTP request on it (an Istio sidecar's pool may mix
// them): grpc.Server would answer such a request 415. Instead the request
// never reaches grpc; the client gets a GOAWAY whose last stream id is the
// last gRPC stream, which per RFC 9113 §6.8 tells it that the plain request
// was not processed and can be retried on a new connection. That new
// connection starts with a plain request and goes to net/http, which routes
// per request. Streams are only inspected, never rewritten, so gRPC keeps
// its native speed; the cost is a frame-header walk and one HPACK decode
// per request, by x/net's framer (the policy grpc's own reader applies).
//
// It also keeps grpc.Server's memory bounded: grpc reads a whole message
// (up to --max-request-bytes) before a handler sees it, so the DATA of each
// stream is charged to the in-flight budget as it passes, and freed when
// grpc ends the stream (END_STREAM or RST_STREAM written), the client resets
// it, or the connection closes. A stream whose DATA does not fit is reset
// (REFUSED_STREAM to the client, which retries it; CANCEL to grpc), and its
// remaining DATA dropped.
type grpcOnlyConn struct {
	net.Conn
	budget *Budget

	// read side, used only by grpc's reader goroutine
	in       []byte // read from the client, not yet checked
	out      []byte // checked, to be returned to grpc
	rbuf     []byte // read buffer, reused
	inBuf    []byte // backing array of in, reused once in is drained
	outBuf   []byte // backing array of out, reused once out is drained
	skip     int    // payload bytes of the current frame still to pass
	dropData bool   // the current frame's payload is being dropped
	hfr      *http2.Framer
	feed     bytes.Reader // what hfr reads: one whole header block
	lastGood uint32       // highest stream id handed to grpc
	refusing bool         // a plain request was seen: new streams are dropped
	held     []byte       // HEADERS(+CONTINUATION) of a new stream, until END_HEADERS
	heldID   uint32
	cut      map[uint32]bool // streams reset for the budget: their DATA is dropped
	err      error           // the connection was ended here

	// per-stream charges, freed by either side
	hmu   sync.Mutex
	holds map[uint32]*Hold

	// write side
	wmu     sync.Mutex
	wd      writeDeadline
	wleft   int      // bytes of grpc's current outgoing frame still to come
	whdr    []byte   // partial outgoing frame header
	pending [][]byte // frames to inject at the next frame boundary
}

var errHeaderFlood = errors.New("header block over the sniffing limit")

func newGRPCOnlyConn(c net.Conn, budget *Budget) *grpcOnlyConn {
	g := &grpcOnlyConn{Conn: c, budget: budget, skip: len(http2Preface), // the preface is not a frame
		cut: map[uint32]bool{}, holds: map[uint32]*Hold{}}
	g.hfr = newH2Framer(nil, &g.feed, hpack.NewDecoder(4096, nil))
	return g
}

func (g *grpcOnlyConn) Read(p []byte) (int, error) {
	for {
		if len(g.out) > 0 {
			n := copy(p, g.out)
			g.out = g.out[n:]
			if len(g.out) == 0 {
				g.out = g.outBuf[:0]
			}
			return n, nil
		}
		if g.err != nil {
			return 0, g.err
		}
		if len(g.in) == 0 {
			// The usual case: read straight into grpc's buffer and let
			// it have the bytes where they are.
			n, err := g.Conn.Read(p)
			m, kept := g.pass(p[:n])
			if m < kept {
				g.in = append(g.inBuf[:0], p[m:kept]...)
				g.inBuf = g.in[:0]
				if m > 0 {
					return m, nil // the error, if any, comes again
				}
			} else if m > 0 || err != nil {
				return m, err
			}
			continue
		}
		// Something was held back: check() needs whole frame headers
		// and whole header blocks.
		g.check()
		if len(g.out) > 0 || g.err != nil {
			continue
		}
		if g.rbuf == nil {
			g.rbuf = make([]byte, 16<<10)
		}
		n, err := g.Conn.Read(g.rbuf)
		g.in = append(g.in, g.rbuf[:n]...)
		g.inBuf = g.in[:0]
		if err != nil {
			g.check()
			if len(g.out) > 0 {
				continue
			}
			return 0, err
		}
	}
}

// pass walks frames read straight into grpc's buffer and returns how many
// bytes of b grpc may have as they are (m), and b's length after a refused
// new stream's headers were cut out of it (kept). It stops where check()
// must take over: a frame header cut by the end of the read, a header block
// continued in CONTINUATION frames, frames of refused streams, or DATA the
// budget has no room for. A new stream's headers that arrived whole are
// decoded in place: the one HPACK decode per request, and no copy.
func (g *grpcOnlyConn) pass(b []byte) (m, kept int) {
	i := 0
	for i < len(b) {
		if g.skip > 0 {
			if g.dropData {
				return i, len(b)
			}
			k := min(g.skip, len(b)-i)
			i += k
			g.skip -= k
			continue
		}
		if len(b)-i < 9 || g.heldID != 0 {
			return i, len(b)
		}
		length := int(b[i])<<16 | int(b[i+1])<<8 | int(b[i+2])
		typ, flags := b[i+3], b[i+4]
		stream := binary.BigEndian.Uint32(b[i+5:i+9]) & 0x7fffffff
		switch {
		case typ == frameHeaders && stream > g.lastGood && length <= h2MaxFrameSize:
			if g.refusing || flags&flagEndHeaders == 0 || len(b)-i < 9+length {
				return i, len(b)
			}
			if g.isGRPC(b[i : i+9+length]) {
				g.open(stream)
				i += 9 + length
				continue
			}
			g.refuse()
			b = b[:i+copy(b[i:], b[i+9+length:])]
		case typ == frameContinuation && stream > g.lastGood, g.refusing && stream > g.lastGood,
			typ == frameData && (g.cut[stream] || length > 0 && !g.charge(stream, length)):
			return i, len(b)
		default:
			g.ended(typ, stream)
			i += 9
			g.skip, g.dropData = length, false
		}
	}
	return i, len(b)
}

// check moves whole frames (and payload as it streams in) from in to out,
// holding back new streams' headers until they are known to be gRPC.
func (g *grpcOnlyConn) check() {
	for len(g.in) > 0 && g.err == nil {
		if g.skip > 0 {
			k := min(g.skip, len(g.in))
			if !g.dropData {
				g.appendOut(g.in[:k])
			}
			g.in = g.in[k:]
			g.skip -= k
			continue
		}
		if len(g.in) < 9 {
			return
		}
		length := int(g.in[0])<<16 | int(g.in[1])<<8 | int(g.in[2])
		typ, flags := g.in[3], g.in[4]
		stream := binary.BigEndian.Uint32(g.in[5:9]) & 0x7fffffff
		isHeader := typ == frameHeaders && stream > g.lastGood || typ == frameContinuation && g.heldID != 0
		switch {
		case isHeader && !g.refusing && length <= h2MaxFrameSize:
			if len(g.in) < 9+length {
				return // need the whole header fragment
			}
			g.holdHeaders(typ, flags, stream, g.in[:9+length])
			g.in = g.in[9+length:]
		case g.refusing && stream > g.lastGood, typ == frameData && g.cut[stream]:
			// A refused stream's frames: drop them, undecoded, but give
			// back the connection-level flow control its DATA consumed.
			g.dropFrame(typ, flags, stream, length)
		case typ == frameData && length > 0 && !g.charge(stream, length):
			g.cutStream(stream)
			g.dropFrame(typ, flags, stream, length)
		default:
			// Also a header frame over the frame size: grpc answers
			// FRAME_SIZE_ERROR.
			g.ended(typ, stream)
			g.appendOut(g.in[:9])
			g.in = g.in[9:]
			g.skip, g.dropData = length, false
		}
	}
}

func (g *grpcOnlyConn) dropFrame(typ, flags byte, stream uint32, length int) {
	if typ == frameData && length > 0 {
		g.inject(windowUpdateFrame(uint32(length)))
	}
	if flags&flagEndStream != 0 {
		delete(g.cut, stream)
	}
	g.in = g.in[9:]
	g.skip, g.dropData = length, true
}

// holdHeaders collects a new stream's header block; at END_HEADERS it is
// either released to grpc or refused.
func (g *grpcOnlyConn) holdHeaders(typ, flags byte, stream uint32, frame []byte) {
	if typ == frameHeaders {
		g.held, g.heldID = g.held[:0], stream
	}
	if len(g.held)+len(frame) > maxSniffBytes {
		// A CONTINUATION flood: x/net would have given up long before.
		g.inject(goAwayFrame(g.lastGood, http2.ErrCodeEnhanceYourCalm))
		g.err = errHeaderFlood
		return
	}
	g.held = append(g.held, frame...)
	if flags&flagEndHeaders == 0 {
		return
	}
	g.heldID = 0
	if !g.isGRPC(g.held) {
		g.refuse()
		return
	}
	g.open(stream)
	g.appendOut(g.held)
}

// isGRPC decodes a new stream's header block (x/net's framer, whose HPACK
// decoder must see every block in order to keep its table) and reports
// whether grpc should have it: a gRPC request, or one grpc will refuse
// itself (a block x/net will not decode, a field not allowed, a header list
// over its limit).
func (g *grpcOnlyConn) isGRPC(block []byte) bool {
	g.feed.Reset(block)
	f, err := g.hfr.ReadFrame()
	mh, ok := f.(*http2.MetaHeadersFrame)
	if err != nil || !ok || mh.Truncated {
		return true
	}
	for _, f := range mh.RegularFields() {
		if f.Name == "content-type" && strings.HasPrefix(f.Value, "application/grpc") {
			return true
		}
	}
	return false
}

// open: a stream is handed to grpc; its DATA is charged from now on.
func (g *grpcOnlyConn) open(stream uint32) {
	g.lastGood = stream
	h := g.budget.NewHold()
	g.hmu.Lock()
	g.holds[stream] = &h
	g.hmu.Unlock()
}

// charge takes length bytes of a stream's DATA from the budget; false
// means they do not fit. DATA of a stream not open (ended, or never
// opened) is grpc's to drop and costs nothing.
func (g *grpcOnlyConn) charge(stream uint32, length int) bool {
	g.hmu.Lock()
	defer g.hmu.Unlock()
	h := g.holds[stream]
	return h == nil || h.Grow(int64(length))
}

// cutStream resets a stream whose DATA does not fit in the budget: the
// client is told REFUSED_STREAM (not processed: it retries), grpc gets a
// CANCEL as if from the client and drops what it holds of the stream.
func (g *grpcOnlyConn) cutStream(stream uint32) {
	g.release(stream)
	g.cut[stream] = true
	g.inject(rstStreamFrame(stream, http2.ErrCodeRefusedStream))
	g.appendOut(rstStreamFrame(stream, http2.ErrCodeCancel))
}

// ended frees the charge of a stream the client reset.
func (g *grpcOnlyConn) ended(typ byte, stream uint32) {
	if typ == frameRSTStream {
		g.release(stream)
		delete(g.cut, stream)
	}
}

func (g *grpcOnlyConn) release(stream uint32) {
	g.hmu.Lock()
	if h := g.holds[stream]; h != nil {
		h.Free()
		delete(g.holds, stream)
	}
	g.hmu.Unlock()
}

// Close frees what the connection's streams still hold.
func (g *grpcOnlyConn) Close() error {
	g.hmu.Lock()
	for id, h := range g.holds {
		h.Free()
		delete(g.holds, id)
	}
	g.hmu.Unlock()
	return g.Conn.Close()
}

// refuse sends, once, the GOAWAY that leaves every later stream
// unprocessed; from then on new streams are dropped.
func (g *grpcOnlyConn) refuse() {
	if !g.refusing {
		g.refusing = true
		g.inject(goAwayFrame(g.lastGood, http2.ErrCodeNo))
	}
}

func (g *grpcOnlyConn) appendOut(b []byte) {
	if len(g.out) == 0 {
		g.out = g.outBuf[:0]
	}
	g.out = append(g.out, b...)
	g.outBuf = g.out[:0]
}

func goAwayFrame(lastStream uint32, code http2.ErrCode) []byte {
	f := []byte{0, 0, 8, frameGoAway, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[9:13], lastStream)
	binary.BigEndian.PutUint32(f[13:17], uint32(code))
	return f
}

func rstStreamFrame(stream uint32, code http2.ErrCode) []byte {
	f := []byte{0, 0, 4, frameRSTStream, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[5:9], stream)
	binary.BigEndian.PutUint32(f[9:13], uint32(code))
	return f
}

func windowUpdateFrame(n uint32) []byte {
	f := []byte{0, 0, 4, frameWindowUpdate, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[9:13], n)
	return f
}

// inject queues a frame to the client and writes it at once if grpc is
// between frames.
func (g *grpcOnlyConn) inject(frame []byte) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.pending = append(g.pending, frame)
	if g.wleft == 0 && len(g.whdr) == 0 {
		g.flushPending()
	}
}

func (g *grpcOnlyConn) flushPending() {
	g.wd.extend(g.Conn)
	for _, f := range g.pending {
		g.Conn.Write(f)
	}
	g.pending = g.pending[:0]
}

// Write passes grpc's bytes through, tracking frame boundaries so injected
// frames never land inside one of grpc's frames.
func (g *grpcOnlyConn) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.wd.extend(g.Conn) // grpc sets no write deadline
	if len(g.pending) == 0 {
		n, err := g.Conn.Write(p)
		g.track(p[:n])
		return n, err
	}
	written := 0
	for len(p) > 0 {
		k := len(p)
		if g.wleft > 0 {
			k = min(g.wleft, len(p))
		} else if len(g.whdr) < 9 {
			k = min(9-len(g.whdr), len(p))
		}
		n, err := g.Conn.Write(p[:k])
		g.track(p[:n])
		written += n
		if err != nil {
			return written, err
		}
		p = p[k:]
		if g.wleft == 0 && len(g.whdr) == 0 {
			g.flushPending()
		}
	}
	return written, nil
}

// track advances the frame-boundary state over bytes written in bulk.
func (g *grpcOnlyConn) track(p []byte) {
	for len(p) > 0 {
		if g.wleft > 0 {
			k := min(g.wleft, len(p))
			g.wleft -= k
			p = p[k:]
			continue
		}
		k := min(9-len(g.whdr), len(p))
		g.whdr = append(g.whdr, p[:k]...)
		p = p[k:]
		if len(g.whdr) == 9 {
			g.wleft = int(g.whdr[0])<<16 | int(g.whdr[1])<<8 | int(g.whdr[2])
			typ, flags := g.whdr[3], g.whdr[4]
			if typ == frameRSTStream || (typ == frameHeaders || typ == frameData) && flags&flagEndStream != 0 {
				// grpc ended the stream: what it held of it is freed.
				g.release(binary.BigEndian.Uint32(g.whdr[5:9]) & 0x7fffffff)
			}
			g.whdr = g.whdr[:0]
		}
	}
}
