package receiver

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/traceport/traceport/transport"
)

// bodyPool holds request body buffers. Decoders copy what they keep out of
// the body, so a buffer goes back to the pool as soon as the request is
// decoded; only the OTLP pass-through copies the bytes it forwards.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBody() *bytes.Buffer { return bodyPool.Get().(*bytes.Buffer) }

func putBody(b *bytes.Buffer) {
	if b.Cap() > 4<<20 { // don't let one huge request pin memory forever
		return
	}
	b.Reset()
	bodyPool.Put(b)
}

var zstdPool = sync.Pool{New: func() any {
	// Low memory: one window at most, no concurrency inside the decoder.
	d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(8<<20))
	return d
}}

var gzipPool sync.Pool // *gzip.Reader

// readBody reads r's body into buf, decompressing it per Content-Encoding.
// The limit applies twice, to the bytes on the wire and to the bytes after
// decompression, so a 3 MiB gzip bomb stops at the limit instead of inflating
// to gigabytes. buf grows as bytes arrive, never to the declared
// Content-Length up front. hold is charged with the bytes that land in buf
// (decompressed): they are what stays in memory until the request is
// queued, while wire bytes of a compressed body only pass through the
// decompressor's fixed window.
func readBody(r *http.Request, buf *bytes.Buffer, limit int64, hold *transport.Hold) error {
	if r.ContentLength > limit {
		return refuse(reasonTooLarge, "request body of %d bytes is over --max-request-bytes=%d", r.ContentLength, limit)
	}
	wire := &limitedReader{r: r.Body, left: limit}
	var (
		src io.Reader
		enc = strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	)
	switch enc {
	case "", "identity":
		src = wire
	case "gzip", "x-gzip":
		zr, _ := gzipPool.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(wire)
		} else {
			err = zr.Reset(wire)
		}
		if err != nil {
			return wireOr(wire, refuse(reasonDecompress, "gzip body: %v", err))
		}
		defer gzipPool.Put(zr)
		src = zr
	case "deflate":
		// RFC 9110 says zlib-wrapped; some clients send raw deflate. Try zlib
		// on a peek of the first two bytes and fall back to raw.
		br := &peekReader{r: wire}
		if hdr, _ := br.peek(2); len(hdr) == 2 && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 && hdr[0]&0x0f == 8 {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return wireOr(wire, refuse(reasonDecompress, "deflate body: %v", err))
			}
			defer zr.Close()
			src = zr
		} else {
			fr := flate.NewReader(br)
			defer fr.Close()
			src = fr
		}
	case "zstd":
		zd := zstdPool.Get().(*zstd.Decoder)
		if err := zd.Reset(wire); err != nil {
			return refuse(reasonDecompress, "zstd body: %v", err)
		}
		defer func() { zd.Reset(nil); zstdPool.Put(zd) }()
		src = zd
	default:
		return refuse(reasonUnsupportedEncoding, "Content-Encoding %q is not supported: use gzip, deflate, zstd or none", enc)
	}
	plain := &limitedReader{r: src, left: limit, hold: hold}
	if _, err := buf.ReadFrom(plain); err != nil {
		if plain.overBudget {
			return overBudget()
		}
		if wire.over {
			return refuse(reasonTooLarge, "request body is over --max-request-bytes=%d bytes on the wire", limit)
		}
		if plain.over {
			return refuse(reasonTooLarge, "request body is over --max-request-bytes=%d bytes after %s decompression", limit, enc)
		}
		if wire.err != nil {
			return refuse(reasonReadBody, "reading request body: %v", wire.err)
		}
		return refuse(reasonDecompress, "%s body: %v", enc, err)
	}
	return nil
}

// wireOr prefers the wire's own failure (too large, client gone) over a
// decompressor's complaint about the stream it cut short.
func wireOr(wire *limitedReader, r *refusal) *refusal {
	if wire.over {
		return refuse(reasonTooLarge, "request body is over --max-request-bytes=%d bytes on the wire", wire.limitValue())
	}
	if wire.err != nil {
		return refuse(reasonReadBody, "reading request body: %v", wire.err)
	}
	return r
}

var errOverLimit = errors.New("over the size limit")

// limitedReader fails (rather than ending quietly like io.LimitReader) once
// more than left bytes are read, or when hold (if any) cannot be charged
// with what was read, and remembers why it stopped.
type limitedReader struct {
	r          io.Reader
	left       int64
	read       int64
	over       bool
	hold       *transport.Hold
	overBudget bool
	err        error // the underlying reader's error, not EOF
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.over {
		return 0, errOverLimit
	}
	if l.overBudget {
		return 0, transport.ErrOverBudget
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if int64(n) > l.left {
		l.over = true
		return 0, errOverLimit
	}
	l.left -= int64(n)
	if l.hold != nil && !l.hold.Grow(int64(n)) {
		l.overBudget = true
		return 0, transport.ErrOverBudget
	}
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
	return n, err
}

func (l *limitedReader) limitValue() int64 { return l.read + l.left }

// peekReader lets the deflate sniffing look at two bytes without losing them.
type peekReader struct {
	r    io.Reader
	head []byte
}

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.head) < n {
		b := make([]byte, n-len(p.head))
		m, err := p.r.Read(b)
		p.head = append(p.head, b[:m]...)
		if err != nil {
			return p.head, err
		}
	}
	return p.head, nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.head) > 0 {
		n := copy(b, p.head)
		p.head = p.head[n:]
		return n, nil
	}
	return p.r.Read(b)
}

func (p *peekReader) ReadByte() (byte, error) {
	var b [1]byte
	_, err := io.ReadFull(p, b[:])
	return b[0], err
}
