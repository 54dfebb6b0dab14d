// Package grpccompress holds the gRPC compressors traceport's programs
// register: klauspost's gzip and zstd under grpc-go's names. grpc-go's own
// gzip (compress/gzip) costs several times more CPU than klauspost's, a
// drop-in replacement writing standard gzip (BenchmarkGzip, BenchmarkGunzip);
// the OpenTelemetry Collector registers klauspost's zstd for gRPC the same
// way (through github.com/mostynb/go-grpc-compression), and Jaeger v2 accepts
// it. The gzip reader here adds what that package lacks: a bufio.Reader in
// front of inflate, which saves 60% of its time on gRPC's mem.Reader.
package grpccompress

import (
	"bufio"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // initialised first, so Register replaces it
)

// Register installs both compressors process-wide under the names grpc-go
// uses, for gRPC clients and servers alike. Only a program's main calls it,
// once, before any gRPC connection: registration is not safe for concurrent
// use, and a library that registers changes every other package's gRPC.
func Register() {
	encoding.RegisterCompressor(newGzipCompressor())
	encoding.RegisterCompressor(newZstdCompressor())
}

type gzipCompressor struct {
	writers, readers sync.Pool
}

func newGzipCompressor() *gzipCompressor {
	c := &gzipCompressor{}
	c.writers.New = func() any {
		w, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression)
		return &gzipWriter{Writer: w, pool: &c.writers}
	}
	return c
}

func (c *gzipCompressor) Name() string { return "gzip" }

func (c *gzipCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	z := c.writers.Get().(*gzipWriter)
	z.Reset(w)
	return z, nil
}

type gzipWriter struct {
	*gzip.Writer
	pool *sync.Pool
}

func (z *gzipWriter) Close() error {
	defer z.pool.Put(z)
	return z.Writer.Close()
}

// Decompress reads through a bufio.Reader: klauspost's inflate has a fast
// path for it, while gRPC's mem.Reader costs a call per byte (measured: it
// was 60% of the inflate time).
func (c *gzipCompressor) Decompress(r io.Reader) (io.Reader, error) {
	z, ok := c.readers.Get().(*gzipReader)
	if !ok {
		br := bufio.NewReaderSize(r, 32<<10)
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		return &gzipReader{Reader: zr, br: br, pool: &c.readers}, nil
	}
	z.br.Reset(r)
	if err := z.Reset(z.br); err != nil {
		z.br.Reset(nil)
		c.readers.Put(z)
		return nil, err
	}
	return z, nil
}

// gzipReader goes back to the pool when gRPC closes it.
type gzipReader struct {
	*gzip.Reader
	br   *bufio.Reader
	pool *sync.Pool
}

func (z *gzipReader) Close() error {
	defer z.pool.Put(z)
	err := z.Reader.Close()
	z.br.Reset(nil)
	return err
}

// ZstdEncoder serves gRPC and HTTP: EncodeAll is safe for concurrent use.
// A 512 KiB window, as the Collector's: the default 8 MiB wastes memory on
// messages of a few MB at most.
var ZstdEncoder, _ = zstd.NewWriter(nil, zstd.WithWindowSize(512<<10))

type zstdCompressor struct {
	decoders sync.Pool
}

func newZstdCompressor() *zstdCompressor { return &zstdCompressor{} }

func (c *zstdCompressor) Name() string { return "zstd" }

// Compress buffers the message and encodes it at Close: EncodeAll on a
// shared encoder needs no per-stream state.
func (c *zstdCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	return &zstdWriter{w: w}, nil
}

type zstdWriter struct {
	w   io.Writer
	buf []byte
}

func (z *zstdWriter) Write(p []byte) (int, error) {
	z.buf = append(z.buf, p...)
	return len(p), nil
}

func (z *zstdWriter) Close() error {
	_, err := z.w.Write(ZstdEncoder.EncodeAll(z.buf, nil))
	return err
}

// Decompress streams, so gRPC's message size limit stops a decompression
// bomb (DecodeAll would expand it whole first).
func (c *zstdCompressor) Decompress(r io.Reader) (io.Reader, error) {
	d, ok := c.decoders.Get().(*zstd.Decoder)
	if !ok {
		var err error
		// Concurrency 1: no goroutines to leak when a pooled decoder is
		// dropped by the GC.
		d, err = zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			return nil, err
		}
	} else if err := d.Reset(r); err != nil {
		c.decoders.Put(d)
		return nil, err
	}
	return &zstdReader{d: d, pool: &c.decoders}, nil
}

// zstdReader goes back to the pool when gRPC closes it.
type zstdReader struct {
	d    *zstd.Decoder
	pool *sync.Pool
}

func (z *zstdReader) Read(p []byte) (int, error) { return z.d.Read(p) }

func (z *zstdReader) Close() error {
	if z.d != nil && z.d.Reset(nil) == nil {
		z.pool.Put(z.d)
	}
	z.d = nil
	return nil
}
