// Command traceport is a single-port front for trace collection: Zipkin,
// OTLP and Jaeger clients all send to one address, every span is counted per
// source, and everything is forwarded to Jaeger with nothing lost silently.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/traceport/traceport/diagnosis"
	"github.com/traceport/traceport/exporter"
	"github.com/traceport/traceport/internal/grpccompress"
	"github.com/traceport/traceport/receiver"
	"github.com/traceport/traceport/topology"
)

func main() {
	grpccompress.Register()
	if err := setFeatureGates(); err != nil {
		fmt.Fprintf(os.Stderr, "traceport: %v\n", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "doctor" { // doctor.go
		return runDoctor(args[1:], stdout, stderr)
	}
	cfg, err := loadConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "traceport: invalid configuration:\n%v\n", err)
		return 2
	}
	if cfg.CheckOnly {
		if err := cfg.print(stdout); err != nil {
			fmt.Fprintf(stderr, "traceport: %v\n", err)
			return 1
		}
		return 0
	}
	log := newLogger(cfg, stderr)
	setGoMemoryLimit(int64(cfg.MemoryLimit))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("traceport stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs traceport until ctx ends, then shuts down in order: readiness
// off, listeners closed and in-flight requests finished, then the queue
// flushed to Jaeger; all within --shutdown-timeout.
func serve(ctx context.Context, cfg Config, log *slog.Logger) error {
	serverTLS, err := cfg.serverTLS()
	if err != nil {
		return err
	}
	jaegerTLS, err := cfg.jaegerTLS()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if _, err := cfg.kafkaConfig(); err != nil {
		return err
	}
	expCfg := cfg.exporterConfig(jaegerTLS)
	exp, err := exporter.New(expCfg, reg, log)
	if err != nil {
		return err
	}
	exp.Start()
	rcfg := cfg.receiverConfig(serverTLS)
	rcfg.Accounts = exp.Accounts()
	// Topology keeps trace health and dependencies; diagnosis serves GET /,
	// /api/sources, /api/health, /api/dependencies and /ui/graph.svg.
	topo := topology.New(topology.Config{Grace: cfg.Diagnose.OrphanGrace, Window: cfg.Diagnose.HealthWindow, MaxNames: cfg.MaxServices, SampleRatio: cfg.Diagnose.HealthSampleRatio}, reg)
	pages := http.NewServeMux()
	rcfg.Observer, rcfg.Pages = topo, pages
	rc := receiver.New(rcfg, exp, reg, reg, log)
	diagnosis.New(cfg.Diagnose, topo, sourceTable{rc}).Register(pages)

	var listeners []net.Listener
	for _, addr := range append([]string{cfg.Listen}, cfg.AlsoListen...) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		listeners = append(listeners, ln)
	}
	serveErr := make(chan error, len(listeners))
	for _, ln := range listeners {
		log.Info("listening", "addr", ln.Addr().String(), "tls", serverTLS != nil)
		go func() { serveErr <- rc.Serve(ln) }()
	}
	if k := expCfg.Kafka; k.Enabled() {
		log.Info("forwarding to Kafka", "brokers", k.Brokers, "topic", k.Topic, "encoding", k.Encoding, "acks", k.Acks, "sasl", k.SASL, "tls", k.TLS != nil)
	} else if cfg.Jaeger == "" {
		log.Info("no --jaeger set: spans are counted and discarded")
	} else {
		log.Info("forwarding", "jaeger", cfg.Jaeger, "protocol", cfg.JaegerProtocol, "compression", cfg.JaegerCompression)
	}
	if cfg.PprofListen != "" {
		go servePprof(cfg.PprofListen, log)
	}
	if cfg.SummaryInterval > 0 {
		go logSummaries(ctx, rc, exp, cfg.SummaryInterval, log)
	}

	var failed error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	case err := <-serveErr:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed = err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	rc.SetReady(false)
	if err := rc.Shutdown(sctx); err != nil {
		log.Warn("receiver shutdown", "err", err)
	}
	if err := exp.Shutdown(sctx); err != nil {
		log.Warn("exporter shutdown", "err", err)
	}
	st := exp.Stats()
	log.Info("stopped", "exported", st.Exported, "dropped", droppedTotal(st))
	return failed
}

// logSummaries writes one line per interval: spans per source since the
// last line, plus what left and what was dropped.
func logSummaries(ctx context.Context, rc *receiver.Receiver, exp *exporter.Exporter, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := map[string]int64{}
	var lastExported, lastDropped int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var parts []string
		var total int64
		for _, s := range rc.Sources() {
			key := s.Protocol + "/" + s.Encoding + " " + s.Service
			if d := s.Spans - last[key]; d > 0 {
				parts = append(parts, fmt.Sprintf("%s=%d", key, d))
				total += d
			}
			last[key] = s.Spans
		}
		st := exp.Stats()
		dropped := droppedTotal(st)
		log.Info("intake", "interval", every, "spans", total, "sources", strings.Join(parts, ", "),
			"exported", st.Exported-lastExported, "dropped", dropped-lastDropped, "queued", st.Queued)
		lastExported, lastDropped = st.Exported, dropped
	}
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%q: want debug, info, warn or error", s)
	}
	return l, nil
}

func droppedTotal(st exporter.Stats) int64 {
	var n int64
	for _, d := range st.Dropped {
		n += d
	}
	return n
}

// servePprof serves profiles on their own address, never on the one port:
// profiles are for operators, not for every pod in the mesh.
func servePprof(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof", "addr", addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		log.Error("pprof listener", "err", err)
	}
}
