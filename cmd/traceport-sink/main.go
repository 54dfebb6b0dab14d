// Command traceport-sink is a counting OTLP trace backend for benchmarks:
// OTLP/gRPC and OTLP/HTTP protobuf in on one port, spans counted without
// decoding, the count at GET /count (GET /stats for JSON, POST /reset).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/traceport/traceport/bench/sink"
	"github.com/traceport/traceport/internal/grpccompress"
)

func main() {
	grpccompress.Register()
	listen := flag.String("listen", "127.0.0.1:14317", "address for OTLP/gRPC, OTLP/HTTP (POST /v1/traces) and GET /count")
	flag.Parse()
	if err := run(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "traceport-sink:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s := sink.New()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(l) }()
	slog.Info("sink listening", "addr", l.Addr().String())
	select {
	case err = <-errc:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = s.Shutdown(sctx)
	}
	c := s.Count()
	slog.Info("sink stopped", "spans", c.Spans, "requests", c.Requests, "bytes", c.Bytes, "rejected", c.Rejected)
	return err
}
