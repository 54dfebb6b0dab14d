package receiver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/internal/grpcraw"
)

// discardSink takes everything: the benchmarks measure the receiver alone.
type discardSink struct{}

func (discardSink) Admit(bool) (bool, time.Duration) { return true, 0 }
func (discardSink) Push(data []byte, spans int, _ bool, accounted func()) error {
	accounted()
	return nil
}

func benchHandler(b *testing.B, path, contentType string, body []byte, spans int) {
	reg := prometheus.NewRegistry()
	rc := New(Config{MaxRequestBytes: 20 << 20, MaxServices: 1000}, discardSink{}, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		rc.ServeHTTP(rec, req)
		if rec.Code >= 300 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*spans), "ns/span")
}

// BenchmarkHandler measures one request through the HTTP handler: body
// read, decode, count, serialization to OTLP (no network, no export).
func BenchmarkHandler(b *testing.B) {
	b.Run("zipkin-json-100", func(b *testing.B) {
		benchHandler(b, "/api/v2/spans", "application/json", bench.EnvoyZipkinJSON(100, 1), 100)
	})
	b.Run("zipkin-json-10", func(b *testing.B) {
		benchHandler(b, "/api/v2/spans", "application/json", bench.EnvoyZipkinJSON(10, 1), 10)
	})
	b.Run("zipkin-proto-100", func(b *testing.B) {
		benchHandler(b, "/api/v2/spans", "application/x-protobuf", bench.EnvoyZipkinProto(100, 1), 100)
	})
	b.Run("otlp-http-100", func(b *testing.B) {
		benchHandler(b, "/v1/traces", "application/x-protobuf", bench.SDKOTLP(100, 1), 100)
	})
}

// BenchmarkOTLPGRPCExport sends 10-span OTLP Exports from a grpc-go client
// (8 calls in flight on one connection, as an SDK under load) to the
// receiver over loopback, through the fast path and through grpc.Server:
// the peer measured in the same run. Client and server share the process,
// so ns/op is the CPU of both; the client's part is the same in each.
func BenchmarkOTLPGRPCExport(b *testing.B) {
	for _, c := range []struct {
		name string
		off  bool
	}{{"fast-path", false}, {"grpc.Server", true}} {
		b.Run(c.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			rc := New(Config{MaxRequestBytes: 20 << 20, MaxServices: 1000}, discardSink{}, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			rc.transport.SetFastPaths(true, !c.off)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go rc.Serve(ln)
			defer rc.Shutdown(context.Background())
			conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.ForceCodecV2(grpcraw.Codec{})))
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			req := &grpcraw.Message{Data: bench.SDKOTLP(10, 1)}
			const inFlight = 8
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for range inFlight {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if err := conn.Invoke(context.Background(), grpcraw.OTLPExport, req, &grpcraw.Message{}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if served := h2Served(rc); (served > 0) == c.off {
				b.Fatalf("fast path served %d requests", served)
			}
		})
	}
}
