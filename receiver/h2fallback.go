package receiver

import (
	"encoding/binary"
	"net"
	"strings"
	"sync"

	"golang.org/x/net/http2/hpack"
)

// HTTP/2 frame types the fallback watches besides those in h2sniff.go.
const (
	frameData   = 0x0
	frameGoAway = 0x7
	flagPadded0 = 0x8
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
// per request.
type grpcOnlyConn struct {
	net.Conn

	// read side, used only by grpc's reader goroutine
	in       []byte // read from the client, not yet checked
	out      []byte // checked, to be returned to grpc
	rbuf     []byte // read buffer, reused
	inBuf    []byte // backing array of in, reused once in is drained
	outBuf   []byte // backing array of out, reused once out is drained
	skip     int    // payload bytes of the current frame still to pass
	dropData bool   // the current frame's payload is being dropped
	dec      *hpack.Decoder
	isGRPC   bool
	lastGood uint32 // highest stream id handed to grpc
	refusing bool   // a plain request was seen: new streams are dropped
	held     []byte // HEADERS(+CONTINUATION) of a new stream, until END_HEADERS
	heldID   uint32

	// write side
	wmu     sync.Mutex
	wleft   int      // bytes of grpc's current outgoing frame still to come
	whdr    []byte   // partial outgoing frame header
	pending [][]byte // frames to inject at the next frame boundary
}

func newGRPCOnlyConn(c net.Conn) *grpcOnlyConn {
	g := &grpcOnlyConn{Conn: c, skip: len(http2Preface)} // the preface is not a frame
	g.dec = hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == "content-type" && strings.HasPrefix(f.Value, "application/grpc") {
			g.isGRPC = true
		}
	})
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
		if len(g.out) > 0 {
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
// continued in CONTINUATION frames, or frames of refused streams. A new
// stream's headers that arrived whole are decoded in place: the one HPACK
// decode per request, and no copy.
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
		case typ == frameHeaders && stream > g.lastGood:
			if g.refusing || flags&flagEndHeaders == 0 || len(b)-i < 9+length {
				return i, len(b)
			}
			g.decodeFragment(typ, flags, b[i+9:i+9+length])
			if g.endBlock() {
				g.lastGood = stream
				i += 9 + length
				continue
			}
			g.refuse()
			b = b[:i+copy(b[i:], b[i+9+length:])]
		case typ == frameContinuation && stream > g.lastGood, g.refusing && stream > g.lastGood:
			return i, len(b)
		default:
			i += 9
			g.skip, g.dropData = length, false
		}
	}
	return i, len(b)
}

// check moves whole frames (and payload as it streams in) from in to out,
// holding back new streams' headers until they are known to be gRPC.
func (g *grpcOnlyConn) check() {
	for len(g.in) > 0 {
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
		switch {
		case typ == frameHeaders && stream > g.lastGood || typ == frameContinuation && g.heldID != 0:
			if len(g.in) < 9+length {
				return // need the whole header fragment
			}
			g.holdHeaders(typ, flags, stream, g.in[:9+length])
			g.in = g.in[9+length:]
		case g.refusing && stream > g.lastGood:
			// A refused stream's frames: drop them, but give back the
			// connection-level flow control its DATA consumed.
			if typ == frameData && length > 0 {
				g.inject(windowUpdateFrame(uint32(length)))
			}
			g.in = g.in[9:]
			g.skip, g.dropData = length, true
		default:
			g.appendOut(g.in[:9])
			g.in = g.in[9:]
			g.skip, g.dropData = length, false
		}
	}
}

// holdHeaders collects a new stream's header block; at END_HEADERS it is
// either released to grpc or refused.
func (g *grpcOnlyConn) holdHeaders(typ, flags byte, stream uint32, frame []byte) {
	if typ == frameHeaders {
		g.held, g.heldID = g.held[:0], stream
	}
	g.held = append(g.held, frame...)
	g.decodeFragment(typ, flags, frame[9:])
	if flags&flagEndHeaders == 0 {
		return
	}
	g.heldID = 0
	if !g.endBlock() || g.refusing {
		g.refuse()
		return
	}
	g.lastGood = stream
	g.appendOut(g.held)
}

// decodeFragment feeds one fragment of a new stream's header block to the
// HPACK decoder, which must see every block in order to keep its table.
func (g *grpcOnlyConn) decodeFragment(typ, flags byte, frag []byte) {
	if typ == frameHeaders {
		g.isGRPC = false
		if flags&flagPadded != 0 && len(frag) > 0 {
			if pad := int(frag[0]); pad < len(frag) {
				frag = frag[1 : len(frag)-pad]
			}
		}
		if flags&flagPriority != 0 && len(frag) >= 5 {
			frag = frag[5:]
		}
	}
	if _, err := g.dec.Write(frag); err != nil {
		g.isGRPC = true // let grpc report the compression error itself
	}
}

// endBlock ends a header block and reports whether it is a gRPC request.
func (g *grpcOnlyConn) endBlock() bool {
	g.dec.Close()
	return g.isGRPC
}

// refuse sends, once, the GOAWAY that leaves every later stream
// unprocessed; from then on new streams are dropped.
func (g *grpcOnlyConn) refuse() {
	if !g.refusing {
		g.refusing = true
		g.inject(goAwayFrame(g.lastGood))
	}
}

func (g *grpcOnlyConn) appendOut(b []byte) {
	if len(g.out) == 0 {
		g.out = g.outBuf[:0]
	}
	g.out = append(g.out, b...)
	g.outBuf = g.out[:0]
}

func goAwayFrame(lastStream uint32) []byte {
	f := []byte{0, 0, 8, frameGoAway, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0} // NO_ERROR
	binary.BigEndian.PutUint32(f[9:13], lastStream)
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
			g.whdr = g.whdr[:0]
		}
	}
}
