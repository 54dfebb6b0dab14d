package receiver

import (
	"errors"
	"io"
	"net"

	"golang.org/x/net/http2/hpack"
)

// HTTP/2 frame types and flags used while sniffing (RFC 9113 §6).
const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9
	frameWindowUpdate = 0x8
	framePriority     = 0x2

	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20

	maxSniffBytes = 1 << 20 // give up sniffing (and assume gRPC) after this much
)

// emptySettingsFrame changes no setting; it only tells a gRPC client that a
// server is there, so that it sends its first request.
var emptySettingsFrame = []byte{0, 0, 0, frameSettings, 0, 0, 0, 0, 0}

// h2Sniffer reads an HTTP/2 connection's first frames, keeping every byte
// for replay, until the first request's headers show its content type.
type h2Sniffer struct {
	conn   net.Conn
	frames []byte // raw frames read, the ACK of our SETTINGS removed
	acked  bool   // the client's ACK of emptySettingsFrame was seen and removed
	block  []byte // header block fragments of the first HEADERS
	head   h2Head // what the first request's headers say

	afterFirstFrame func() // called once the client's first frame is in
}

var errSniffGaveUp = errors.New("no request headers within the sniffing limit")

func (s *h2Sniffer) firstRequestIsGRPC() (bool, error) {
	var hdr [9]byte
	for len(s.frames) < maxSniffBytes {
		if _, err := io.ReadFull(s.conn, hdr[:]); err != nil {
			return false, err
		}
		length := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags := hdr[3], hdr[4]
		start := len(s.frames)
		s.frames = append(s.frames, hdr[:]...)
		s.frames = append(s.frames, make([]byte, length)...)
		if _, err := io.ReadFull(s.conn, s.frames[start+9:]); err != nil {
			return false, err
		}
		payload := s.frames[start+9:]
		if start == 0 && s.afterFirstFrame != nil {
			s.afterFirstFrame()
		}
		switch typ {
		case frameSettings:
			if flags&flagAck != 0 && !s.acked && length == 0 {
				s.frames = s.frames[:start]
				s.acked = true
			}
		case frameWindowUpdate, framePriority:
		case frameHeaders, frameContinuation:
			if typ == frameHeaders {
				if flags&flagPadded != 0 && len(payload) > 0 {
					pad := int(payload[0])
					if pad >= len(payload) {
						return true, nil // malformed: let the real server say so
					}
					payload = payload[1 : len(payload)-pad]
				}
				if flags&flagPriority != 0 {
					if len(payload) < 5 {
						return true, nil
					}
					payload = payload[5:]
				}
			}
			s.block = append(s.block, payload...)
			if flags&flagEndHeaders != 0 {
				var ok bool
				s.head, ok = parseFirstHead(s.block)
				return !ok || s.head.isGRPC(), nil
			}
		default:
			// PING, GOAWAY, DATA before HEADERS...: not a request we can
			// read; gRPC's server handles every frame type correctly.
			return true, nil
		}
	}
	return true, errSniffGaveUp
}

// parseFirstHead decodes a request's first header block. A fresh decoder
// is right: it is the first header block on the connection. A block that
// does not decode is not ok: gRPC's server reports the compression error.
func parseFirstHead(block []byte) (h h2Head, ok bool) {
	dec := hpack.NewDecoder(4096, h.field)
	dec.SetMaxStringLength(h2MaxHeaderList)
	if _, err := dec.Write(block); err != nil {
		return h2Head{other: true}, false
	}
	if err := dec.Close(); err != nil {
		return h2Head{other: true}, false
	}
	return h, true
}

// ackFilterConn replays the sniffed frames, then reads on, removing the
// client's ACK of emptySettingsFrame if it had not arrived yet: the real
// server never sent that SETTINGS, and net/http's HTTP/2 server closes a
// connection that acknowledges settings it did not send. After the ACK it
// is a plain pass-through.
type ackFilterConn struct {
	net.Conn
	pending []byte // read from the connection, not yet returned
	scanned int    // pending[:scanned] has been checked and may be returned
	skip    int    // payload bytes of the current frame still to pass
	acked   bool
	rbuf    []byte // read buffer until the ACK is seen
}

func (c *ackFilterConn) Read(p []byte) (int, error) {
	for {
		if c.scanned > 0 {
			n := copy(p, c.pending[:c.scanned])
			c.pending = c.pending[n:]
			c.scanned -= n
			return n, nil
		}
		if c.acked {
			if len(c.pending) > 0 {
				n := copy(p, c.pending)
				c.pending = c.pending[n:]
				return n, nil
			}
			c.rbuf, c.pending = nil, nil
			return c.Conn.Read(p)
		}
		if c.rbuf == nil {
			c.rbuf = make([]byte, 16<<10)
		}
		n, err := c.Conn.Read(c.rbuf)
		c.pending = append(c.pending, c.rbuf[:n]...)
		c.scan()
		if c.scanned == 0 && err != nil {
			if len(c.pending) > 0 && err == io.EOF {
				c.scanned = len(c.pending)
				continue
			}
			return 0, err
		}
	}
}

// scan walks frame headers in pending past scanned, cutting out the first
// empty SETTINGS ACK.
func (c *ackFilterConn) scan() {
	pos := c.scanned
	for !c.acked {
		if c.skip > 0 {
			k := min(c.skip, len(c.pending)-pos)
			pos += k
			c.skip -= k
			if c.skip > 0 {
				break
			}
			continue
		}
		if len(c.pending)-pos < 9 {
			break
		}
		h := c.pending[pos : pos+9]
		length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		if h[3] == frameSettings && h[4]&flagAck != 0 && length == 0 {
			c.pending = append(c.pending[:pos], c.pending[pos+9:]...)
			c.acked = true
			break
		}
		pos += 9
		c.skip = length
	}
	if c.acked {
		pos = len(c.pending)
	}
	c.scanned = pos
}
