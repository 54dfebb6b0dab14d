package exporter

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/traceport/traceport/internal/grpcraw"
)

// rawSink is an OTLP/gRPC TraceService that only counts bytes: the
// benchmark measures the exporter, not a decoder.
func rawSink(tb testing.TB) (addr string, bytes *atomic.Int64) {
	bytes = new(atomic.Int64)
	ln := listen(tb)
	srv := grpc.NewServer(grpc.ForceServerCodecV2(grpcraw.Codec{}))
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var req grpcraw.Message
				if err := dec(&req); err != nil {
					return nil, err
				}
				bytes.Add(int64(len(req.Data)))
				return &grpcraw.Message{}, nil
			},
		}},
	}, nil)
	go srv.Serve(ln)
	tb.Cleanup(srv.Stop)
	return ln.Addr().String(), bytes
}

// BenchmarkPushExport pushes 100-span SDK-shaped requests (~43 KB) through
// the queue, batching and OTLP/gRPC to a local sink, until all are
// delivered. ns/span includes the sink's share of the CPU.
func BenchmarkPushExport(b *testing.B) {
	data := request(b, 100)
	for _, comp := range []string{"none", "gzip", "zstd"} {
		b.Run(comp, func(b *testing.B) {
			addr, sunk := rawSink(b)
			cfg := Defaults()
			cfg.Endpoint = addr
			cfg.Compression = comp
			e, _ := start(b, cfg)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for ok, _ := e.Admit(true); !ok; ok, _ = e.Admit(true) {
					time.Sleep(50 * time.Microsecond)
				}
				if err := e.Push(data, 100, true, nil); err != nil {
					b.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := e.Shutdown(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if s := e.Stats(); s.Exported != int64(b.N)*100 || sunk.Load() != int64(b.N)*int64(len(data)) {
				b.Fatalf("exported %d spans, sink got %d bytes; want %d spans, %d bytes",
					s.Exported, sunk.Load(), b.N*100, b.N*len(data))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
		})
	}
}

// BenchmarkWALPush appends 100-span SDK-shaped requests (~43 KB) to the
// persistent queue's log and acks each, under each fsync policy, from one
// pusher and from 16 concurrent ones (group commit). ns/op is the
// latency a client's answer waits for.
func BenchmarkWALPush(b *testing.B) {
	data := request(b, 100)
	for _, policy := range []string{FsyncAlways, FsyncInterval, FsyncNever} {
		for _, pushers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/pushers=%d", policy, pushers), func(b *testing.B) {
				w, _, err := openWAL(b.TempDir(), 1<<30, policy, 100*time.Millisecond, testLog())
				if err != nil {
					b.Fatal(err)
				}
				defer w.close()
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				b.SetParallelism(max(1, pushers/runtime.GOMAXPROCS(0)))
				push := func() {
					ref, err := w.append(data, 100)
					if err != nil {
						b.Error(err)
						return
					}
					w.ack([]item{{spans: 100, ref: ref}})
				}
				if pushers == 1 {
					for range b.N {
						push()
					}
				} else {
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							push()
						}
					})
				}
				b.StopTimer()
				w.mu.Lock()
				syncs := w.syncs
				w.mu.Unlock()
				b.ReportMetric(float64(syncs)/float64(b.N), "fsyncs/op")
			})
		}
	}
}
