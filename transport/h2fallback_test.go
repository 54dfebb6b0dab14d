package transport

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// chunkConn hands out its input in random-sized reads and records writes.
type chunkConn struct {
	net.Conn
	in    []byte
	rng   *rand.Rand
	wrote bytes.Buffer
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.in) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+c.rng.IntN(40000))], c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *chunkConn) Write(p []byte) (int, error) { return c.wrote.Write(p) }

func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }

func frame(typ, flags byte, stream uint32, payload []byte) []byte {
	f := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(f[5:], stream)
	return append(f, payload...)
}

// TestGRPCOnlyConnFrames: whatever sizes the reads come in, grpc gets every
// byte of the gRPC streams unchanged, and nothing of a plain request or the
// streams after it; the client gets a GOAWAY naming the last gRPC stream and
// its flow-control window back for the dropped DATA.
func TestGRPCOnlyConnFrames(t *testing.T) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(ctype string) []byte {
		hb.Reset()
		// Indexed fields: the decoder must see every block to stay in step.
		for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":path", Value: "/opentelemetry.proto.collector.trace.v1.TraceService/Export"}, {Name: "content-type", Value: ctype}, {Name: "x-request", Value: "same-every-time"}} {
			enc.WriteField(f)
		}
		return bytes.Clone(hb.Bytes())
	}
	data := func(stream uint32, n int) []byte {
		var out []byte
		for n > 0 {
			k := min(n, 16384)
			out = append(out, frame(frameData, 0, stream, bytes.Repeat([]byte{byte(stream)}, k))...)
			n -= k
		}
		return out
	}
	var want []byte
	want = append(want, http2Preface...)
	want = append(want, frame(frameSettings, 0, 0, nil)...)
	want = append(want, frame(frameHeaders, flagEndHeaders, 1, block("application/grpc"))...)
	want = append(want, data(1, 43000)...)
	// A header block in two pieces, and padded.
	b3 := block("application/grpc+proto")
	padded := append(append([]byte{3}, b3[:5]...), 0, 0, 0)
	want = append(want, frame(frameHeaders, flagPadded, 3, padded)...)
	want = append(want, frame(frameContinuation, flagEndHeaders, 3, b3[5:])...)
	want = append(want, data(3, 20000)...)
	want = append(want, frame(frameWindowUpdate, 0, 0, []byte{0, 0, 1, 0})...)
	stream := append([]byte(nil), want...)
	stream = append(stream, frame(frameHeaders, flagEndHeaders, 5, block("application/json"))...)
	stream = append(stream, data(5, 1000)...)
	stream = append(stream, frame(frameHeaders, flagEndHeaders, 7, block("application/grpc"))...)
	stream = append(stream, data(7, 2000)...)
	wantWritten := append(append(goAwayFrame(3, http2.ErrCodeNo), windowUpdateFrame(1000)...), windowUpdateFrame(2000)...)

	for seed := range uint64(300) {
		rng := rand.New(rand.NewPCG(seed, 1))
		c := &chunkConn{in: stream, rng: rng}
		g := newGRPCOnlyConn(c, NewBudget(0, 0))
		var got []byte
		for {
			p := make([]byte, 1+rng.IntN(70000))
			n, err := g.Read(p)
			got = append(got, p[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %d: grpc read %d bytes, want %d (first difference at %d)", seed, len(got), len(want), firstDiff(got, want))
		}
		if !bytes.Equal(c.wrote.Bytes(), wantWritten) {
			t.Fatalf("seed %d: wrote to the client % x, want % x", seed, c.wrote.Bytes(), wantWritten)
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// FuzzGRPCOnlyConn: any bytes after the preface, read in any sizes, never
// panic, end at EOF, and grpc never gets more bytes than the client sent.
func FuzzGRPCOnlyConn(f *testing.F) {
	f.Add(frame(frameHeaders, flagEndHeaders, 1, []byte{0x83, 0x86}), uint64(1))
	f.Add(append(frame(frameHeaders, 0, 1, []byte{0x83}), frame(frameContinuation, flagEndHeaders, 1, []byte{0x86})...), uint64(2))
	f.Add(append(frame(frameHeaders, flagEndHeaders|flagPadded, 3, []byte{200, 1}), frame(frameData, 0, 3, []byte("x"))...), uint64(3))
	f.Fuzz(func(t *testing.T, frames []byte, seed uint64) {
		in := append([]byte(http2Preface), frames...)
		rng := rand.New(rand.NewPCG(seed, 2))
		g := newGRPCOnlyConn(&chunkConn{in: in, rng: rng}, NewBudget(0, 0))
		total := 0
		for range len(in) + 10 {
			p := make([]byte, 1+rng.IntN(100))
			n, err := g.Read(p)
			total += n
			if err != nil {
				if total > len(in) {
					t.Fatalf("grpc read %d bytes of %d sent", total, len(in))
				}
				return
			}
		}
		t.Fatalf("no EOF after %d reads of %d bytes", len(in)+10, len(in))
	})
}
