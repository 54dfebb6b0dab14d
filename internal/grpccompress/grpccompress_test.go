package grpccompress

import (
	"bytes"
	stdgzip "compress/gzip"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// request stands for an OTLP batch: repetitive text and ids, as spans are.
func request(tb testing.TB, spans int) []byte {
	tb.Helper()
	var b bytes.Buffer
	for i := range spans {
		fmt.Fprintf(&b, "span-%08x http.method=GET http.url=/api/v1/items/%d service.name=cart.shop peer.service=checkout;", i*2654435761, i%17)
	}
	return b.Bytes()
}

// Register replaces grpc-go's compressors under the same names, for the
// client and the server alike, and ours interoperate with standard gzip.
func TestRegister(t *testing.T) {
	if _, ok := encoding.GetCompressor("zstd").(*zstdCompressor); ok {
		t.Fatal("zstd is registered before Register: some package registers at init")
	}
	Register()
	if _, ok := encoding.GetCompressor("gzip").(*gzipCompressor); !ok {
		t.Fatalf("gzip compressor is %T, want *gzipCompressor", encoding.GetCompressor("gzip"))
	}
	if _, ok := encoding.GetCompressor("zstd").(*zstdCompressor); !ok {
		t.Fatalf("zstd compressor is %T, want *zstdCompressor", encoding.GetCompressor("zstd"))
	}
	data := request(t, 100)
	for _, name := range []string{"gzip", "zstd"} {
		c := encoding.GetCompressor(name)
		var buf bytes.Buffer
		for range 2 { // the second round uses pooled state
			buf.Reset()
			w, err := c.Compress(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := c.Decompress(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s round trip: %v, %d bytes, want %d", name, err, len(got), len(data))
			}
			r.(io.Closer).Close()
		}
		if name == "gzip" { // readable by the standard library, i.e. by any gzip peer
			zr, err := stdgzip.NewReader(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("compress/gzip cannot read ours: %v", err)
			}
		}
		t.Logf("%s: %d -> %d bytes", name, len(data), buf.Len())
	}
}

// BenchmarkGzip compares grpc-go's own gzip (compress/gzip) with ours on a
// 3.5 MB batch: why the gzip compressor is replaced.
func BenchmarkGzip(b *testing.B) {
	one := request(b, 100)
	batch := bytes.Repeat(one, 80)
	std := func(w io.Writer) io.WriteCloser { return stdgzip.NewWriter(w) }
	ours := func(w io.Writer) io.WriteCloser { z, _ := newGzipCompressor().Compress(w); return z }
	for _, bc := range []struct {
		name string
		new  func(io.Writer) io.WriteCloser
	}{{"compress-gzip", std}, {"klauspost", ours}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			var out bytes.Buffer
			for b.Loop() {
				out.Reset()
				w := bc.new(&out)
				w.Write(batch)
				w.Close()
			}
			b.ReportMetric(float64(out.Len())/float64(len(batch)), "ratio")
		})
	}
}

// BenchmarkGunzip inflates a 3.5 MB batch read as gRPC hands it over (a
// mem.Reader), with compress/gzip as grpc-go does and with ours.
func BenchmarkGunzip(b *testing.B) {
	batch := bytes.Repeat(request(b, 100), 80)
	var z bytes.Buffer
	w := stdgzip.NewWriter(&z)
	w.Write(batch)
	w.Close()
	chunks := mem.BufferSlice{}
	for rest := z.Bytes(); len(rest) > 0; { // 16 KiB frames, as HTTP/2 delivers them
		n := min(len(rest), 16<<10)
		chunks = append(chunks, mem.SliceBuffer(rest[:n]))
		rest = rest[n:]
	}
	ours := newGzipCompressor()
	for _, bc := range []struct {
		name string
		open func(io.Reader) (io.Reader, error)
	}{
		{"compress-gzip", func(r io.Reader) (io.Reader, error) { return stdgzip.NewReader(r) }},
		{"klauspost-bufio", ours.Decompress},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := bc.open(chunks.Reader())
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, r); err != nil || n != int64(len(batch)) {
					b.Fatalf("%d bytes, %v", n, err)
				}
				if c, ok := r.(io.Closer); ok {
					c.Close()
				}
			}
		})
	}
}
