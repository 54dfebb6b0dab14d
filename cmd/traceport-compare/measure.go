package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/traceport/traceport/bench"
)

// workload is one row's traffic; bar is the spans-per-CPU-second
// ratio to reach with the downstream compression off (0: report only).
type workload struct {
	protocol string
	spans    int
	bar      float64
}

func (w workload) key() string { return fmt.Sprintf("%s/%d", w.protocol, w.spans) }

// workloads are the rows of the side-by-side comparison, with their bars.
var workloads = []workload{
	{bench.ZipkinJSON, 100, 10},
	{bench.ZipkinJSON, 10, 10},
	{bench.OTLPGRPC, 100, 4},
	{bench.OTLPGRPC, 10, 4},
	{bench.OTLPHTTP, 100, 4},
	{bench.ZipkinProto, 100, 0},
}

// settings are the knobs of one comparison.
type settings struct {
	Warmup          time.Duration `json:"warmup_ns"`
	Duration        time.Duration `json:"duration_ns"`         // flat-out window
	LatencyDuration time.Duration `json:"latency_duration_ns"` // window at half the peer's maximum
	Drain           time.Duration `json:"drain_limit_ns"`      // longest wait for the sink to catch up
	HTTPConns       int           `json:"http_connections"`
	GRPCConns       int           `json:"grpc_connections"`
	GRPCStreams     int           `json:"grpc_streams"`
	Repeat          int           `json:"repeat"` // rounds per row; the row shows each system's median
}

// phase is one load run against a system.
type phase struct {
	OfferedRate    float64          `json:"offered_rate"` // spans/s; 0 is flat out
	Accepted       int64            `json:"accepted_spans"`
	Delivered      int64            `json:"delivered_spans"` // what the sink counted for this run
	Requests       int64            `json:"requests"`
	Errors         map[string]int64 `json:"errors,omitempty"`
	FirstError     string           `json:"first_error,omitempty"`
	SpansPerSecond float64          `json:"accepted_spans_per_sec"`
	P50            time.Duration    `json:"p50_ns"`
	P99            time.Duration    `json:"p99_ns"`
	P999           time.Duration    `json:"p999_ns"`

	genTicks int64 // the generator's (this process's) CPU ticks while it sent
}

// measurement is one system on one workload and compression.
type measurement struct {
	SpansPerCPUSecond float64 `json:"spans_per_cpu_second"` // flat-out accepted spans / the system's CPU time
	CPUSeconds        float64 `json:"cpu_seconds"`          // from the flat-out run's start to the sink's last span
	SUTCoreBusy       float64 `json:"sut_core_busy"`        // CPU seconds / wall seconds of the flat-out run
	GenCoreBusy       float64 `json:"generator_core_busy"`  // the harness (generator + sink) while the generator sends
	PeakRSS           int64   `json:"peak_rss_bytes"`       // VmHWM after warm-up and flat out
	LoadRSS           int64   `json:"same_load_rss_bytes"`  // VmHWM of a fresh process run at the half load only
	FlatOut           phase   `json:"flat_out"`
	HalfLoad          phase   `json:"half_load"`
	Invalid           string  `json:"invalid,omitempty"` // why this is not a result
}

// harness runs load against systems and checks the sink saw every span.
type harness struct {
	env   *env
	set   settings
	ticks float64 // clock ticks per second
	log   func(format string, args ...any)
}

// measure starts a fresh sys, warms it up, sends flat out for the set
// duration and reads its peak RSS. Then a second fresh sys is warmed up and
// timed at halfRate (0: half of what the first took): its latency and its
// peak RSS are those under the same load for both systems, since flat out
// the two take very different loads. An error is returned only when the
// system could not run at all; lost spans make the measurement invalid.
func (h *harness) measure(ctx context.Context, sys system, w workload, compression string, halfRate float64) (measurement, error) {
	var m measurement
	s, err := sys.start(ctx, h.env, compression)
	if err != nil {
		return m, err
	}
	defer s.stop()
	cfg := bench.Config{Target: s.targets[w.protocol], Protocol: w.protocol, SpansPerRequest: w.spans, Connections: h.set.HTTPConns}
	if w.protocol == bench.OTLPGRPC || w.protocol == bench.JaegerGRPC {
		cfg.Connections, cfg.Streams = h.set.GRPCConns, h.set.GRPCStreams
	}
	pid := strconv.Itoa(s.pid())

	cfg.Duration = h.set.Warmup
	if _, err := h.load(ctx, s, cfg); err != nil {
		m.Invalid = "warm-up: " + err.Error()
		return m, nil
	}

	cpu0, err := cpuTicks(pid)
	if err != nil {
		return m, err
	}
	cfg.Duration = h.set.Duration
	m.FlatOut, err = h.load(ctx, s, cfg)
	cpu1, cerr := cpuTicks(pid)
	if cerr != nil {
		return m, cerr
	}
	m.CPUSeconds = float64(cpu1-cpu0) / h.ticks
	if m.CPUSeconds > 0 {
		m.SpansPerCPUSecond = float64(m.FlatOut.Accepted) / m.CPUSeconds
	}
	if wall := h.set.Duration.Seconds(); wall > 0 {
		m.SUTCoreBusy = m.CPUSeconds / wall
		m.GenCoreBusy = float64(m.FlatOut.genTicks) / h.ticks / wall
	}
	if err != nil {
		m.Invalid = "flat out: " + err.Error()
		return m, nil
	}
	if m.FlatOut.Accepted == 0 {
		m.Invalid = "flat out: no span accepted"
		return m, nil
	}
	if m.PeakRSS, err = peakRSS(s.pid()); err != nil {
		return m, err
	}
	s.stop()

	if halfRate <= 0 {
		halfRate = m.FlatOut.SpansPerSecond / 2
	}
	s, err = sys.start(ctx, h.env, compression)
	if err != nil {
		return m, err
	}
	defer s.stop()
	cfg.Target, cfg.Rate = s.targets[w.protocol], halfRate
	cfg.Duration = h.set.Warmup
	if _, err := h.load(ctx, s, cfg); err != nil {
		m.Invalid = "half-load warm-up: " + err.Error()
		return m, nil
	}
	cfg.Duration = h.set.LatencyDuration
	m.HalfLoad, err = h.load(ctx, s, cfg)
	if err != nil {
		m.Invalid = "half load: " + err.Error()
	}
	if m.LoadRSS, err = peakRSS(s.pid()); err != nil {
		return m, err
	}
	return m, nil
}

// load runs the generator once and waits until the sink has taken every
// span the system acknowledged; a shortfall (or a surplus) is an error.
func (h *harness) load(ctx context.Context, s *sut, cfg bench.Config) (phase, error) {
	base := s.counts().Spans
	if s.readBack != nil {
		s.readBack(false)
	}
	gen0, _ := cpuTicks("self")
	res, err := bench.Run(ctx, cfg)
	gen1, _ := cpuTicks("self")
	if s.readBack != nil {
		s.readBack(true)
	}
	if err != nil {
		return phase{}, err
	}
	p := phase{
		OfferedRate: cfg.Rate, Accepted: res.AcceptedSpans, Requests: res.Requests,
		FirstError: res.FirstError, SpansPerSecond: res.SpansPerSecond(),
		P50: res.P50, P99: res.P99, P999: res.P999, genTicks: gen1 - gen0,
	}
	if len(res.Errors) > 0 {
		p.Errors = res.Errors
	}
	want := base + res.AcceptedSpans
	deadline := time.Now().Add(h.set.Drain)
	for s.counts().Spans < want && time.Now().Before(deadline) && !s.exited() && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // late duplicates would show now
	p.Delivered = s.counts().Spans - base
	switch {
	case s.exited():
		return p, s.failure()
	case p.Delivered != p.Accepted:
		return p, fmt.Errorf("sink took %d spans of %d acknowledged (waited %v)", p.Delivered, p.Accepted, h.set.Drain)
	}
	return p, ctx.Err()
}

// row is one workload and compression, both systems.
type row struct {
	Workload        string      `json:"workload"`
	Protocol        string      `json:"protocol"`
	SpansPerRequest int         `json:"spans_per_request"`
	Compression     string      `json:"compression"`
	Traceport       measurement `json:"traceport"`
	Jaeger          measurement `json:"jaeger"`
	Ratio           float64     `json:"ratio"`                  // spans per CPU-second, traceport ÷ Jaeger (medians)
	RoundRatios     []float64   `json:"round_ratios,omitempty"` // the same, round by round
	RSSRatio        float64     `json:"rss_ratio"`              // peak RSS under the same (half) load, traceport ÷ Jaeger
	FlatOutRSSRatio float64     `json:"flat_out_rss_ratio"`     // peak RSS flat out (unequal loads), traceport ÷ Jaeger
	Bar             float64     `json:"bar,omitempty"`
	Verdict         string      `json:"verdict"` // PASS, FAIL: …, INVALID: …, or "report" (no bar)
}

func (r row) valid() bool { return r.Traceport.Invalid == "" && r.Jaeger.Invalid == "" }

// compare measures Jaeger flat out first (the peer), then traceport; both
// are then timed at half of Jaeger's maximum. With Repeat > 1 the two take
// turns Repeat times and each system's median round (by spans per
// CPU-second) stands for it: one noisy round on a shared machine moves the
// ratio less.
func (h *harness) compare(ctx context.Context, w workload, compression string) (row, error) {
	r := row{Workload: w.key(), Protocol: w.protocol, SpansPerRequest: w.spans, Compression: compression}
	var js, ts []measurement
	for round := range max(h.set.Repeat, 1) {
		h.log("%-18s %-5s round %d jaeger ...", r.Workload, compression, round+1)
		j, err := h.measure(ctx, jaeger, w, compression, 0)
		if err != nil {
			return r, fmt.Errorf("jaeger: %w", err)
		}
		h.log("  jaeger:    %s", j.summary())
		half := j.FlatOut.SpansPerSecond / 2
		if j.Invalid != "" || half <= 0 {
			half = 0 // no peer maximum: traceport is timed at half its own
		}
		t, err := h.measure(ctx, traceport, w, compression, half)
		if err != nil {
			return r, fmt.Errorf("traceport: %w", err)
		}
		h.log("  traceport: %s", t.summary())
		js, ts = append(js, j), append(ts, t)
		if j.SpansPerCPUSecond > 0 {
			r.RoundRatios = append(r.RoundRatios, t.SpansPerCPUSecond/j.SpansPerCPUSecond)
		}
	}
	r.Jaeger, r.Traceport = median(js), median(ts)
	r.judge(w)
	return r, nil
}

// median returns the round with the median spans per CPU-second; an
// invalid round makes the result invalid.
func median(ms []measurement) measurement {
	for _, m := range ms {
		if m.Invalid != "" {
			return m
		}
	}
	s := slices.Clone(ms)
	slices.SortFunc(s, func(a, b measurement) int { return cmp.Compare(a.SpansPerCPUSecond, b.SpansPerCPUSecond) })
	return s[len(s)/2]
}

func (m measurement) summary() string {
	s := fmt.Sprintf("%.0f spans/CPU-s (%.0f spans/s, core %.0f%%, generator core %.0f%%), RSS %.0f MB flat out, p99 %v and RSS %.0f MB at %.0f spans/s",
		m.SpansPerCPUSecond, m.FlatOut.SpansPerSecond, 100*m.SUTCoreBusy, 100*m.GenCoreBusy,
		float64(m.PeakRSS)/(1<<20), m.HalfLoad.P99, float64(m.LoadRSS)/(1<<20), m.HalfLoad.OfferedRate)
	if n := len(m.FlatOut.Errors) + len(m.HalfLoad.Errors); n > 0 {
		s += fmt.Sprintf(", errors %v %v", m.FlatOut.Errors, m.HalfLoad.Errors)
	}
	if m.Invalid != "" {
		s += ", INVALID: " + m.Invalid
	}
	return s
}

// judge sets the ratios and the verdict against the rows' bars, which apply
// with the downstream compression off: spans per CPU-second ≥ bar × Jaeger's,
// peak RSS under the same load (half of Jaeger's maximum) ≤ 0.5 × Jaeger's,
// p99 at that load below Jaeger's.
func (r *row) judge(w workload) {
	if r.Jaeger.SpansPerCPUSecond > 0 {
		r.Ratio = r.Traceport.SpansPerCPUSecond / r.Jaeger.SpansPerCPUSecond
	}
	if r.Jaeger.LoadRSS > 0 {
		r.RSSRatio = float64(r.Traceport.LoadRSS) / float64(r.Jaeger.LoadRSS)
	}
	if r.Jaeger.PeakRSS > 0 {
		r.FlatOutRSSRatio = float64(r.Traceport.PeakRSS) / float64(r.Jaeger.PeakRSS)
	}
	if !r.valid() {
		r.Verdict = "INVALID: " + firstNonEmpty(r.Traceport.Invalid, r.Jaeger.Invalid)
		return
	}
	if w.bar == 0 || r.Compression != "none" && r.Compression != kafkaDownstream {
		r.Verdict = "report"
		return
	}
	r.Bar = w.bar
	var miss []string
	if r.Ratio < w.bar {
		miss = append(miss, fmt.Sprintf("ratio %.2fx < %.0fx", r.Ratio, w.bar))
	}
	// The Kafka rows' bar is the ratio alone; RSS and p99 are reported.
	if r.Compression != kafkaDownstream && r.RSSRatio > 0.5 {
		miss = append(miss, fmt.Sprintf("RSS %.2fx > 0.5x", r.RSSRatio))
	}
	if r.Compression != kafkaDownstream && r.Traceport.HalfLoad.P99 >= r.Jaeger.HalfLoad.P99 {
		miss = append(miss, "p99 not lower")
	}
	r.Verdict = "PASS"
	if len(miss) > 0 {
		r.Verdict = "FAIL: " + strings.Join(miss, "; ")
	}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
