package sink

import (
	"compress/gzip"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/grpc/encoding"
)

// The OpenTelemetry Collector's exporters (Jaeger v2's among them) may send
// zstd, which grpc-go does not bring; registered here under the name they
// use.
func init() { encoding.RegisterCompressor(zstdCompressor{}) }

var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxRequestBytes))
	if err != nil {
		panic("sink: zstd decoder: " + err.Error()) // only bad options fail
	}
	return d
}}

type zstdCompressor struct{}

func (zstdCompressor) Name() string { return "zstd" }

func (zstdCompressor) Compress(w io.Writer) (io.WriteCloser, error) {
	return zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
}

func (zstdCompressor) Decompress(r io.Reader) (io.Reader, error) {
	d := zstdDecoders.Get().(*zstd.Decoder)
	if err := d.Reset(r); err != nil {
		zstdDecoders.Put(d)
		return nil, err
	}
	return &pooledZstd{d: d}, nil
}

// pooledZstd returns its decoder to the pool when gRPC (or the HTTP
// handler) closes it.
type pooledZstd struct {
	d    *zstd.Decoder
	once sync.Once
}

func (p *pooledZstd) Read(b []byte) (int, error) { return p.d.Read(b) }

func (p *pooledZstd) Close() error {
	p.once.Do(func() {
		p.d.Reset(nil)
		zstdDecoders.Put(p.d)
	})
	return nil
}

func decompressed(r io.Reader, encoding string) (io.Reader, error) {
	switch encoding {
	case "", "identity":
		return r, nil
	case "gzip":
		return gzip.NewReader(r)
	case "zstd":
		return zstdCompressor{}.Decompress(r)
	}
	return nil, fmt.Errorf("content encoding %q: this sink takes gzip, zstd or none", encoding)
}
