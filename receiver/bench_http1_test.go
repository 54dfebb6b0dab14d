//go:build unix

package receiver

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/traceport/traceport/bench"
)

// BenchmarkHTTP1 posts Envoy's Zipkin JSON (10 spans a request, the
// default flush is 5) on one keep-alive connection over loopback, through
// the fast path and through net/http: the peer measured in the same run.
// Client and server share the process, so ns/op is the CPU of both.
func BenchmarkHTTP1(b *testing.B) {
	body := bench.EnvoyZipkinJSON(10, 1)
	req := []byte(envoyHead("/api/v2/spans", len(body), "") + string(body))
	for _, c := range []struct {
		name string
		off  bool
	}{{"fast-path", false}, {"net-http", true}} {
		b.Run(c.name, func(b *testing.B) {
			reg := prometheus.NewRegistry()
			rc := New(Config{MaxRequestBytes: 20 << 20, MaxServices: 1000}, discardSink{}, reg, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			rc.transport.SetFastPaths(!c.off, true)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go rc.Serve(ln)
			defer rc.Shutdown(context.Background())
			conn, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			br := bufio.NewReader(conn)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			start := processCPU()
			for range b.N {
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != http.StatusAccepted {
					b.Fatal(err, resp)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			// CPU of the whole process: wall time lies on a busy machine.
			b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
