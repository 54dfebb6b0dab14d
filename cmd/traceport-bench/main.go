// Command traceport-bench sends Envoy/Istio-shaped Zipkin, SDK-shaped OTLP
// or Jaeger spans to a trace collector at a fixed rate or flat out, and
// reports accepted spans per second, errors by status and request latency
// percentiles. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/traceport/traceport/bench"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("traceport-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg bench.Config
	fs.StringVar(&cfg.Target, "target", "127.0.0.1:4317", "collector `HOST:PORT`")
	fs.StringVar(&cfg.Protocol, "protocol", bench.ZipkinJSON, "one of "+strings.Join(bench.Protocols, ", "))
	fs.Float64Var(&cfg.Rate, "rate", 0, "spans per second; 0 sends flat out")
	fs.Int64Var(&cfg.Count, "count", 0, "spans to send; 0 is no bound")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send; 0 is no bound (default 0 when --count is given)")
	fs.IntVar(&cfg.Connections, "connections", 1, "TCP connections")
	fs.IntVar(&cfg.Streams, "streams", 1, "requests in flight per connection (gRPC protocols)")
	fs.IntVar(&cfg.SpansPerRequest, "spans-per-request", 100, "spans in each request")
	fs.IntVar(&cfg.Variety, "variety", 10, "distinct payloads sent in turn, each with its own ids")
	fs.BoolVar(&cfg.Gzip, "gzip", false, "gzip HTTP bodies (ahead of time); gRPC compresses per request")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per request")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	failOnError := fs.Bool("fail-on-error", false, "exit 1 when any request failed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if cfg.Count > 0 && !durationSet {
		cfg.Duration = 0
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "traceport-bench:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "traceport-bench:", err)
		return 1
	}
	if *asJSON {
		out := struct {
			Target          string  `json:"target"`
			Protocol        string  `json:"protocol"`
			SpansPerRequest int     `json:"spans_per_request"`
			Connections     int     `json:"connections"`
			Rate            float64 `json:"rate"`
			SpansPerSecond  float64 `json:"accepted_spans_per_sec"`
			bench.Result
		}{cfg.Target, cfg.Protocol, cfg.SpansPerRequest, cfg.Connections, cfg.Rate, res.SpansPerSecond(), res}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(out)
	} else {
		printTable(stdout, cfg, res)
	}
	if cfg.Rate > 0 && res.ErrorCount() == 0 && ctx.Err() == nil && res.SpansPerSecond() < 0.95*cfg.Rate {
		fmt.Fprintf(stderr, "traceport-bench: sent %.0f spans/s of the %.0f asked: more --connections or --streams?\n", res.SpansPerSecond(), cfg.Rate)
	}
	if *failOnError && res.ErrorCount() > 0 {
		return 1
	}
	return 0
}

func printTable(w io.Writer, cfg bench.Config, r bench.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	secs := r.Elapsed.Seconds()
	fmt.Fprintf(tw, "target\t%s  %s, %d spans/request, %d connections\n", cfg.Target, cfg.Protocol, cfg.SpansPerRequest, cfg.Connections)
	fmt.Fprintf(tw, "elapsed\t%v\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(tw, "accepted spans\t%d\t%.0f/s\n", r.AcceptedSpans, r.SpansPerSecond())
	if secs > 0 {
		fmt.Fprintf(tw, "requests\t%d\t%.0f/s\t%.1f MB/s\n", r.Requests, float64(r.Requests)/secs, float64(r.Bytes)/secs/1e6)
	}
	if r.RejectedSpans > 0 {
		fmt.Fprintf(tw, "rejected spans\t%d\t(OTLP partial success)\n", r.RejectedSpans)
	}
	if len(r.Errors) == 0 {
		fmt.Fprintf(tw, "errors\t0\n")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(tw, "errors\t%d\t%s\n", r.Errors[k], k)
	}
	if r.FirstError != "" {
		fmt.Fprintf(tw, "first error\t%s\n", r.FirstError)
	}
	fmt.Fprintf(tw, "latency\tp50 %v\tp99 %v\tp99.9 %v\tmax %v\n", round(r.P50), round(r.P99), round(r.P999), round(r.Max))
	tw.Flush()
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
