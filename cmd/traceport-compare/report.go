package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
)

// report is everything one comparison found, written as JSON and markdown.
type report struct {
	Date     time.Time `json:"date"`
	Command  string    `json:"command"`
	Machine  machine   `json:"machine"`
	Settings settings  `json:"settings"`
	Rows     []row     `json:"rows"`
}

type machine struct {
	CPUs         int    `json:"cpus"`
	CPUModel     string `json:"cpu_model"`
	Kernel       string `json:"kernel"`
	GoVersion    string `json:"go_version"`
	Pinned       string `json:"pinned"` // which core ran what
	LoadBefore   string `json:"loadavg_before"`
	LoadAfter    string `json:"loadavg_after"`
	JaegerBinary string `json:"jaeger_binary"`
	Tree         string `json:"tree"` // the commit traceport was built from
}

func readMachine() machine {
	var m machine
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				m.CPUs++
			case "model name":
				m.CPUModel = strings.TrimSpace(v)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.LoadBefore = loadavg()
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeMarkdown writes the summary table (one line per workload and
// compression, the bars judged on the rows with compression off),
// then the details behind each number.
func (r *report) writeMarkdown(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "Run %s on %d CPUs (%s), Linux %s, %s; %s. Load average before / after: %s / %s.\n",
		r.Date.UTC().Format("2006-01-02 15:04 MST"), m.CPUs, m.CPUModel, m.Kernel, m.GoVersion, m.Pinned, m.LoadBefore, m.LoadAfter)
	fmt.Fprintf(w, "traceport built from %s; Jaeger %s. ", m.Tree, m.JaegerBinary)
	fmt.Fprintf(w, "Flat-out windows %v after %v of warm-up, latency windows %v", r.Settings.Duration, r.Settings.Warmup, r.Settings.LatencyDuration)
	if r.Settings.Repeat > 1 {
		fmt.Fprintf(w, "; %d rounds per row, the systems taking turns, each system's median round shown (the ratio of every round in the last column)", r.Settings.Repeat)
	}
	fmt.Fprintf(w, "; command: `%s`.\n\n", r.Command)

	fmt.Fprintln(w, "| workload | downstream compression | traceport spans/CPU-s | Jaeger spans/CPU-s | ratio | bar | peak RSS at half Jaeger's max, traceport / Jaeger | p99 at half Jaeger's max, traceport / Jaeger | peak RSS flat out, traceport / Jaeger | verdict |")
	fmt.Fprintln(w, "|---|---|---:|---:|---:|---:|---|---|---|---|")
	for _, x := range r.Rows {
		bar := "–"
		if x.Bar > 0 {
			bar = fmt.Sprintf("≥ %.0f×", x.Bar)
		}
		verdict := x.Verdict
		if len(x.RoundRatios) > 1 {
			var rs []string
			for _, v := range x.RoundRatios {
				rs = append(rs, fmt.Sprintf("%.2f", v))
			}
			verdict += " (rounds: " + strings.Join(rs, ", ") + ")"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %s | %s / %s (%.2f×) | %s / %s | %s / %s (%.2f×) | %s |\n",
			x.Workload, x.Compression, kilo(x.Traceport.SpansPerCPUSecond), kilo(x.Jaeger.SpansPerCPUSecond), x.Ratio, bar,
			mb(x.Traceport.LoadRSS), mb(x.Jaeger.LoadRSS), x.RSSRatio,
			ms(x.Traceport.HalfLoad.P99), ms(x.Jaeger.HalfLoad.P99),
			mb(x.Traceport.PeakRSS), mb(x.Jaeger.PeakRSS), x.FlatOutRSSRatio, verdict)
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, "Details: flat out (accepted spans/s, the system's core busy, the generator+sink core busy, its CPU-seconds), then at the fixed half load (offered spans/s, latency p50 / p99 / p99.9). Every acknowledged span was counted at the sink unless the row says INVALID.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| workload | compr. | system | flat out spans/s | system core | generator core | CPU-s | errors | half load spans/s | p50 / p99 / p99.9 |")
	fmt.Fprintln(w, "|---|---|---|---:|---:|---:|---:|---|---:|---|")
	for _, x := range r.Rows {
		for _, s := range []struct {
			name string
			m    measurement
		}{{"traceport", x.Traceport}, {"Jaeger", x.Jaeger}} {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f%% | %.0f%% | %.2f | %s | %s | %s / %s / %s |\n",
				x.Workload, x.Compression, s.name, kilo(s.m.FlatOut.SpansPerSecond), 100*s.m.SUTCoreBusy, 100*s.m.GenCoreBusy,
				s.m.CPUSeconds, errorsText(s.m), kilo(s.m.HalfLoad.OfferedRate),
				ms(s.m.HalfLoad.P50), ms(s.m.HalfLoad.P99), ms(s.m.HalfLoad.P999))
		}
	}
}

func errorsText(m measurement) string {
	all := map[string]int64{}
	for _, e := range []map[string]int64{m.FlatOut.Errors, m.HalfLoad.Errors} {
		for k, v := range e {
			all[k] += v
		}
	}
	if len(all) == 0 {
		return "0"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(all)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, all[k]))
	}
	return strings.Join(parts, ", ")
}

func kilo(v float64) string {
	switch {
	case v >= 10e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

func ms(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f ms", float64(d)/1e6)
}
