package sink

import (
	"compress/gzip"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

var zstdDecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxRequestBytes))
	if err != nil {
		panic("sink: zstd decoder: " + err.Error()) // only bad options fail
	}
	return d
}}

// unzstd decodes an HTTP body with a pooled decoder. gRPC's zstd is
// grpccompress's, registered by the program that runs the sink.
func unzstd(r io.Reader) (io.Reader, error) {
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
		return unzstd(r)
	}
	return nil, fmt.Errorf("content encoding %q: this sink takes gzip, zstd or none", encoding)
}
