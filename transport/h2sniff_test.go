package transport

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"golang.org/x/net/http2/hpack"

	"github.com/traceport/traceport/internal/h2test"
)

// exportHeaders is the header list of an OTLP Export request, as grpc-go
// sends it.
func exportHeaders() []hpack.HeaderField {
	kv := []string{":method", "POST", ":scheme", "http", ":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export", ":authority", "traceport:4317",
		"content-type", "application/grpc", "user-agent", "grpc-go/1.85.0", "te", "trailers", "grpc-timeout", "9999985u"}
	var fields []hpack.HeaderField
	for i := 0; i < len(kv); i += 2 {
		fields = append(fields, hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	return fields
}

// withoutSettings is b, a run of frames, without its SETTINGS frames (the
// sniffer takes them out and replays them merged); a last partial frame
// is kept as it is.
func withoutSettings(b []byte) []byte {
	var out []byte
	for len(b) >= 9 {
		n := 9 + (int(b[0])<<16 | int(b[1])<<8 | int(b[2]))
		if n > len(b) {
			break
		}
		if b[3] != frameSettings {
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return append(out, b...)
}

// FuzzH2Sniff: whatever frames follow the preface, read in any sizes, the
// sniffer never panics, holds no more than its limit, writes nothing but
// SETTINGS ACKs, and what it replays is what the client sent (its
// SETTINGS merged in one frame, the ACK of the sniffer's own removed).
func FuzzH2Sniff(f *testing.F) {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, hf := range exportHeaders() {
		enc.WriteField(hf)
	}
	export := bytes.Clone(hb.Bytes())
	settings := frame(frameSettings, 0, 0, []byte{0, 4, 0, 1, 0, 0, 0, 3, 0, 0, 0, 100})
	f.Add(append(bytes.Clone(settings), frame(frameHeaders, flagEndHeaders, 1, export)...), uint64(1))
	f.Add(append(append(bytes.Clone(settings), frame(frameSettings, flagAck, 0, nil)...), frame(frameHeaders, 0, 1, export[:3])...), uint64(2))
	f.Add(append(bytes.Clone(settings), frame(frameWindowUpdate, 0, 0, []byte{0, 1, 0, 0})...), uint64(3))
	f.Add(append(bytes.Clone(settings), frame(frameHeaders, flagEndHeaders|flagPadded, 1, append([]byte{2}, append(export, 0, 0)...))...), uint64(4))
	f.Add(append(bytes.Clone(settings), 0xff, 0xff, 0xff, frameHeaders, 0, 0, 0, 0, 1), uint64(5))
	f.Add(h2test.HPACKBomb(1, exportHeaders(), "x-bomb-bin", 40000), uint64(6))
	f.Fuzz(func(t *testing.T, frames []byte, seed uint64) {
		c := &chunkConn{in: frames, rng: rand.New(rand.NewPCG(seed, 3))}
		s := &h2Sniffer{conn: c}
		_, err := s.firstRequestIsGRPC()
		if len(s.frames) > maxSniffBytes+1 {
			t.Fatalf("the sniffer holds %d bytes, over its limit %d", len(s.frames), maxSniffBytes)
		}
		for w := c.wrote.Bytes(); len(w) > 0; w = w[9:] {
			if len(w) < 9 || !bytes.Equal(w[:9], settingsAckFrame) {
				t.Fatalf("the sniffer wrote % x: only SETTINGS ACKs are its to send", c.wrote.Bytes())
			}
		}
		var se sniffError
		if errors.As(err, &se) {
			return // GOAWAY and close: nothing is replayed
		}
		replay, merged := s.replay()
		if merged != s.sawSettings || merged && c.wrote.Len() == 0 {
			t.Fatalf("replay with merged SETTINGS %v, %d settings kept, %d bytes of ACKs sent", merged, len(s.settings), c.wrote.Len())
		}
		sent := withoutSettings(frames)
		if got := withoutSettings(replay); !bytes.HasPrefix(sent, got) {
			t.Fatalf("replayed frames % x are not what the client sent: % x", got, sent)
		}
	})
}
