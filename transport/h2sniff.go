package transport

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// HTTP/2 frame types and flags the frame walkers use (RFC 9113 §6).
const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9
	frameWindowUpdate = 0x8

	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8

	// maxSniffBytes bounds what the sniffer keeps for replay: the frames
	// before the first request and its header block (at most
	// h2MaxHeaderList as decoded, twice that encoded before x/net gives
	// up). Past it, the connection goes to grpc.Server unsniffed.
	maxSniffBytes = 3 * h2MaxHeaderList
	// maxSettings per SETTINGS frame, as net/http's server allows.
	maxSettings = 100
	// h2WriteTimeout bounds every write of the hand-written HTTP/2 paths:
	// a client that stops reading does not keep its connection forever.
	h2WriteTimeout = 10 * time.Second
)

// emptySettingsFrame changes no setting, so the defaults hold (frames of up
// to 16 KiB): it is the server preface the sniffer sends at once.
var emptySettingsFrame = []byte{0, 0, 0, frameSettings, 0, 0, 0, 0, 0}

var settingsAckFrame = []byte{0, 0, 0, frameSettings, flagAck, 0, 0, 0, 0}

// h2Sniffer reads an HTTP/2 connection's first frames with x/net's framer
// (the one frame decoder, padding rule and HPACK policy of every HTTP/2 path
// here), keeping every byte for replay, until the first request's headers
// show its content type. It answers the client's SETTINGS at once (RFC 9113
// §6.5.3), before the connection is routed, and replays them to the server
// the connection goes to as one SETTINGS frame (replay): that server's one
// ACK of it is not sent again. (Merged, since net/http's server answers
// SETTINGS frames read back to back with one ACK; with no stream open yet,
// only each setting's last value matters.)
type h2Sniffer struct {
	conn        net.Conn
	frames      []byte          // raw frames read, the ACK of our SETTINGS and the client's SETTINGS removed
	acked       bool            // the client's ACK of emptySettingsFrame was seen and removed
	settings    []http2.Setting // the client's SETTINGS, acknowledged, each ID once with its last value
	sawSettings bool
	head        h2Head // what the first request's headers say

	afterFirstFrame func() // called once the client's first frame is in
}

var errSniffGaveUp = errors.New("no request headers within the sniffing limit")

// sniffError is a connection error found while sniffing: the client gets
// GOAWAY with its code and the connection is closed.
type sniffError struct{ code http2.ErrCode }

func (e sniffError) Error() string {
	return "HTTP/2 connection error while sniffing: " + e.code.String()
}

// recorder keeps what the framer reads. The framer reads exactly one frame
// at a time (header, then payload), so the record ends on frame boundaries.
type recorder struct{ s *h2Sniffer }

func (r recorder) Read(p []byte) (int, error) {
	p = p[:min(len(p), maxSniffBytes+1-len(r.s.frames))]
	if len(p) == 0 {
		return 0, errSniffGaveUp
	}
	n, err := r.s.conn.Read(p)
	r.s.frames = append(r.s.frames, p[:n]...)
	return n, err
}

// newH2Framer is the reader every HTTP/2 path uses: frames no larger than
// the 16 KiB traceport advertises, header blocks decoded by x/net, which
// stops emitting fields past h2MaxHeaderList and ends the connection when a
// block goes on far past it.
func newH2Framer(w io.Writer, r io.Reader, dec *hpack.Decoder) *http2.Framer {
	fr := http2.NewFramer(w, r)
	fr.SetMaxReadFrameSize(h2MaxFrameSize)
	fr.ReadMetaHeaders = dec
	fr.MaxHeaderListSize = h2MaxHeaderList
	return fr
}

// firstRequestIsGRPC reads up to the first request's headers. Frames a
// gRPC client does not send before its first request (PING, DATA,
// RST_STREAM, PRIORITY, a stream's WINDOW_UPDATE...) send the connection to
// net/http, whose HTTP/2 server answers each as RFC 9113 says.
func (s *h2Sniffer) firstRequestIsGRPC() (bool, error) {
	fr := newH2Framer(nil, recorder{s}, hpack.NewDecoder(4096, nil))
	window := int64(h2InitialWindow) // the connection's send window, for overflow
	for first := true; ; first = false {
		start := len(s.frames)
		f, err := fr.ReadFrame()
		if first && len(s.frames) > 0 && s.afterFirstFrame != nil {
			s.afterFirstFrame()
		}
		switch {
		case errors.Is(err, http2.ErrFrameTooLarge):
			return false, sniffError{http2.ErrCodeFrameSize}
		case errors.As(err, new(http2.ConnectionError)):
			return false, sniffError{http2.ErrCode(err.(http2.ConnectionError))}
		case errors.As(err, new(http2.StreamError)):
			return false, nil // malformed: net/http says so
		case err != nil:
			return len(s.frames) > maxSniffBytes, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				if !s.acked && f.Length == 0 {
					s.frames = s.frames[:start]
					s.acked = true
				}
				continue
			}
			if f.NumSettings() > maxSettings || f.HasDuplicates() {
				return false, sniffError{http2.ErrCodeProtocol} // as net/http
			}
			var ce http2.ConnectionError
			if errors.As(f.ForeachSetting(func(st http2.Setting) error { return st.Valid() }), &ce) {
				return false, sniffError{http2.ErrCode(ce)}
			}
			if err := s.write(settingsAckFrame); err != nil {
				return false, err
			}
			s.frames = s.frames[:start]
			s.sawSettings = true
			f.ForeachSetting(s.keep)
		case *http2.WindowUpdateFrame:
			if f.StreamID != 0 {
				return false, nil // on an idle stream
			}
			if window += int64(f.Increment); window > h2MaxWindow {
				return false, sniffError{http2.ErrCodeFlowControl}
			}
		case *http2.UnknownFrame:
		case *http2.MetaHeadersFrame:
			for _, hf := range f.Fields {
				s.head.field(hf)
			}
			s.head.other = s.head.other || f.Truncated
			return s.head.isGRPC(), nil
		default:
			return false, nil
		}
	}
}

// keep records a setting the client sent; unknown ones are ignored (RFC
// 9113 §6.5.2), so the merged frame has a handful of entries at most.
func (s *h2Sniffer) keep(st http2.Setting) error {
	if st.ID < http2.SettingHeaderTableSize || st.ID > http2.SettingMaxHeaderListSize && st.ID != 8 && st.ID != 9 {
		return nil
	}
	for i := range s.settings {
		if s.settings[i].ID == st.ID {
			s.settings[i].Val = st.Val
			return nil
		}
	}
	s.settings = append(s.settings, st)
	return nil
}

// replay is what the server the connection goes to reads first, after the
// preface: the client's SETTINGS merged in one frame, then the other
// frames sniffed; acked says whether that server's ACK of the SETTINGS
// frame must be dropped (the sniffer sent it already).
func (s *h2Sniffer) replay() (frames []byte, acked bool) {
	if !s.sawSettings {
		return s.frames, false
	}
	out := make([]byte, 9, 9+6*len(s.settings)+len(s.frames))
	out[2], out[3] = byte(6*len(s.settings)), frameSettings
	for _, st := range s.settings {
		out = binary.BigEndian.AppendUint16(out, uint16(st.ID))
		out = binary.BigEndian.AppendUint32(out, st.Val)
	}
	return append(out, s.frames...), true
}

// writeDeadline keeps a connection's write deadline h2WriteTimeout ahead
// of every write, moving it only when it has aged a sixteenth of that (a
// timer update per write would cost more than the writes of small replies).
type writeDeadline struct{ at time.Time }

func (w *writeDeadline) extend(c net.Conn) {
	if d := time.Now().Add(h2WriteTimeout); d.Sub(w.at) > h2WriteTimeout/16 {
		c.SetWriteDeadline(d)
		w.at = d
	}
}

func (s *h2Sniffer) write(frame []byte) error {
	s.conn.SetWriteDeadline(time.Now().Add(h2WriteTimeout))
	_, err := s.conn.Write(frame)
	s.conn.SetWriteDeadline(time.Time{})
	return err
}

// ackFilterConn replays the sniffed frames, then reads on, removing the
// client's ACK of emptySettingsFrame if it had not arrived yet: the real
// server never sent that SETTINGS, and net/http's HTTP/2 server closes a
// connection that acknowledges settings it did not send. After the ACK it
// is a plain pass-through. On the write side it removes the server's first
// SETTINGS ACK when dropAck is set: the sniffer already sent it.
type ackFilterConn struct {
	net.Conn
	pending []byte // read from the connection, not yet returned
	scanned int    // pending[:scanned] has been checked and may be returned
	skip    int    // payload bytes of the current frame still to pass
	acked   bool
	rbuf    []byte // read buffer until the ACK is seen

	dropAck bool
	wout    frameFilter
	wd      writeDeadline
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

// Write passes the server's frames on, without the SETTINGS ACKs the
// sniffer already sent.
func (c *ackFilterConn) Write(p []byte) (int, error) {
	c.wd.extend(c.Conn) // the servers behind set no write deadline on HTTP/2
	if !c.dropAck && c.wout.empty() {
		return c.Conn.Write(p)
	}
	return c.wout.write(c.Conn, p, func(h []byte) bool {
		if c.dropAck && h[3] == frameSettings && h[4]&flagAck != 0 {
			c.dropAck = false
			return true
		}
		return false
	})
}

// frameFilter walks a stream of frames written in pieces and drops the
// (payload-less) frames whose header drop says so.
type frameFilter struct {
	hdr  [9]byte
	nhdr int // bytes of a frame header held back
	left int // payload bytes of the current frame still to pass
}

func (f *frameFilter) empty() bool { return f.nhdr == 0 && f.left == 0 }

func (f *frameFilter) write(w io.Writer, p []byte, drop func(h []byte) bool) (int, error) {
	written := 0
	for len(p) > 0 {
		if f.left > 0 {
			k := min(f.left, len(p))
			n, err := w.Write(p[:k])
			f.left -= n
			written += n
			if err != nil {
				return written, err
			}
			p = p[k:]
			continue
		}
		k := copy(f.hdr[f.nhdr:], p)
		f.nhdr += k
		p = p[k:]
		written += k
		if f.nhdr < 9 {
			break
		}
		f.nhdr = 0
		length := int(f.hdr[0])<<16 | int(f.hdr[1])<<8 | int(f.hdr[2])
		if length == 0 && drop(f.hdr[:]) {
			continue
		}
		if _, err := w.Write(f.hdr[:]); err != nil {
			return written - k, err
		}
		f.left = length
	}
	return written, nil
}
