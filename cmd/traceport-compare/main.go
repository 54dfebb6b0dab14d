// Command traceport-compare runs traceport and Jaeger v2 (as a plain
// collector) side by side under the same loads and prints what each costs:
// spans per CPU-second of the system under test flat out, and its peak RSS
// and p99 request latency at half of Jaeger's maximum load (measured on a
// fresh process that sees only that load; peak RSS flat out is reported
// too). Each system runs pinned to one core; the load generator and the
// counting sink run in this process on the other. Every acknowledged span
// must reach the sink, or the row is invalid and the command fails. `make
// bench-compare` runs it; see bench/README.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/traceport/traceport/bench/sink"
	"github.com/traceport/traceport/internal/grpccompress"
)

func main() {
	grpccompress.Register()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command's flags.
type options struct {
	set          settings
	quick        bool
	only         string
	compressions string
	out          string
	traceport    string
	jaeger       string
	pin          bool
	sutCPU       int
	genCPU       int
	failOnBar    bool
	args         []string
}

func parse(args []string, stderr io.Writer) (options, error) {
	o := options{args: args}
	fs := flag.NewFlagSet("traceport-compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.set.Duration, "duration", 10*time.Second, "flat-out window per system and row")
	fs.DurationVar(&o.set.Warmup, "warmup", 2*time.Second, "load before each flat-out window, not measured")
	fs.DurationVar(&o.set.LatencyDuration, "latency-duration", 0, "window at half of Jaeger's maximum (default: --duration)")
	fs.DurationVar(&o.set.Drain, "drain", 30*time.Second, "longest wait for the sink to count every acknowledged span")
	fs.IntVar(&o.set.HTTPConns, "http-connections", 8, "HTTP/1.1 connections of the generator")
	fs.IntVar(&o.set.GRPCConns, "grpc-connections", 2, "gRPC connections of the generator")
	fs.IntVar(&o.set.GRPCStreams, "grpc-streams", 4, "requests in flight per gRPC connection")
	fs.IntVar(&o.set.Repeat, "repeat", 1, "rounds per row, the systems taking turns; each system's median round is reported")
	fs.BoolVar(&o.quick, "quick", false, "smoke run: 1 s windows (about a minute for every row)")
	fs.StringVar(&o.only, "only", "", "comma-separated workloads to run, e.g. zipkin-json/100,otlp-grpc/10 (default: all)")
	fs.StringVar(&o.compressions, "compression", "none,gzip", "downstreams to run: none, gzip (OTLP to the sink, the default of both systems) or kafka (both write otlp_proto into one in-process Kafka; traceport keys by trace id)")
	fs.StringVar(&o.out, "out", "bench/compare-results", "write the table to `PREFIX`.md and PREFIX.json (empty: don't)")
	fs.StringVar(&o.traceport, "traceport", "", "traceport binary (default: built from this tree)")
	fs.StringVar(&o.jaeger, "jaeger", "", "Jaeger v2 binary (default: scripts/build-jaeger.sh)")
	fs.BoolVar(&o.pin, "pin", true, "pin the systems under test and the generator to separate cores")
	fs.IntVar(&o.sutCPU, "sut-cpu", 1, "core of the system under test")
	fs.IntVar(&o.genCPU, "gen-cpu", 0, "core of the generator and the sink (this process)")
	fs.BoolVar(&o.failOnBar, "fail-on-bar", false, "exit 3 when a row misses its bar (spans per CPU-second against Jaeger)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.quick {
		o.set.Warmup, o.set.Duration, o.set.LatencyDuration = 300*time.Millisecond, time.Second, 700*time.Millisecond
	}
	if o.set.LatencyDuration == 0 {
		o.set.LatencyDuration = o.set.Duration
	}
	if o.set.Duration <= 0 || o.set.Warmup < 0 || o.set.LatencyDuration <= 0 {
		return o, errors.New("durations must be positive")
	}
	if o.set.Repeat < 1 {
		return o, errors.New("--repeat must be at least 1")
	}
	for c := range strings.SplitSeq(o.compressions, ",") {
		if c != "none" && c != "gzip" && c != kafkaDownstream {
			return o, fmt.Errorf("compression %q: want none, gzip or kafka", c)
		}
	}
	if _, err := selected(o.only); err != nil {
		return o, err
	}
	return o, nil
}

// selected returns the workloads named in only (all when empty).
func selected(only string) ([]workload, error) {
	if only == "" {
		return workloads, nil
	}
	var out []workload
	for name := range strings.SplitSeq(only, ",") {
		i := slices.IndexFunc(workloads, func(w workload) bool { return w.key() == strings.TrimSpace(name) })
		if i < 0 {
			var keys []string
			for _, w := range workloads {
				keys = append(keys, w.key())
			}
			return nil, fmt.Errorf("workload %q: want one of %s", name, strings.Join(keys, ", "))
		}
		out = append(out, workloads[i])
	}
	return out, nil
}

// run returns the exit code: 0, 1 when a row is invalid or the harness
// failed, 2 on bad flags, 3 when --fail-on-bar and a bar was missed.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "traceport-compare:", err)
		}
		return 2
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	rep, err := compareAll(ctx, o, logf)
	if err != nil {
		fmt.Fprintln(stderr, "traceport-compare:", err)
		if rep == nil {
			return 1
		}
	}
	rep.writeMarkdown(stdout)
	if o.out != "" {
		if werr := writeFiles(rep, o.out); werr != nil {
			fmt.Fprintln(stderr, "traceport-compare:", werr)
			return 1
		}
		logf("wrote %s.md and %s.json", o.out, o.out)
	}
	code := 0
	for _, r := range rep.Rows {
		switch {
		case !r.valid():
			code = 1
		case strings.HasPrefix(r.Verdict, "FAIL") && o.failOnBar && code == 0:
			code = 3
		}
	}
	if err != nil {
		code = 1
	}
	return code
}

func writeFiles(rep *report, prefix string) error {
	var md, js bytes.Buffer
	rep.writeMarkdown(&md)
	if err := rep.writeJSON(&js); err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".md", md.Bytes(), 0o644); err != nil {
		return err
	}
	return os.WriteFile(prefix+".json", js.Bytes(), 0o644)
}

// compareAll sets up the machine (pinning, binaries, sink) and runs every
// selected row. The report holds the rows done so far even on error.
func compareAll(ctx context.Context, o options, logf func(string, ...any)) (*report, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	rep := &report{Date: time.Now(), Command: commandLine(o.args), Machine: readMachine(), Settings: o.set}
	rep.Machine.GoVersion = runtime.Version()
	e := &env{sutCPU: -1, traceportBin: o.traceport, jaegerBin: o.jaeger}
	if e.dir, err = os.MkdirTemp("", "traceport-compare-"); err != nil {
		return nil, err
	}
	logf("configs and logs of the systems under test: %s", e.dir)
	rep.Machine.Tree = "the binary " + e.traceportBin
	if e.traceportBin == "" {
		rep.Machine.Tree = gitTree(root)
		e.traceportBin = filepath.Join(e.dir, "traceport")
		logf("building traceport ...")
		if err := buildTraceport(root, e.traceportBin); err != nil {
			return nil, err
		}
	}
	if e.jaegerBin == "" {
		logf("finding Jaeger v2 (scripts/build-jaeger.sh; the first build takes minutes) ...")
		if e.jaegerBin, err = buildJaeger(root); err != nil {
			return nil, err
		}
	}
	rep.Machine.JaegerBinary = filepath.Base(e.jaegerBin)
	// Pinned only after the builds: a child inherits the pin, and a go
	// build on one core of a busy machine takes many minutes.
	rep.Machine.Pinned = "not pinned"
	if o.pin {
		if err := pinSelf(o.genCPU); err != nil {
			logf("not pinning: %v", err)
		} else if _, err := exec.LookPath("taskset"); err != nil {
			logf("not pinning: %v", err)
		} else {
			e.sutCPU = o.sutCPU
			runtime.GOMAXPROCS(1)
			rep.Machine.Pinned = fmt.Sprintf("system under test on core %d, generator and sink on core %d", o.sutCPU, o.genCPU)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sk := sink.New()
	go sk.Serve(l)
	defer sk.Shutdown(context.Background())
	e.sinkAddr, e.sink = l.Addr().String(), sk
	if strings.Contains(o.compressions, kafkaDownstream) {
		if e.kafka, err = newKafkaSink(); err != nil {
			return nil, err
		}
		defer e.kafka.close()
	}

	h := &harness{env: e, set: o.set, ticks: clockTicks(), log: logf}
	ws, _ := selected(o.only)
	for _, w := range ws {
		for c := range strings.SplitSeq(o.compressions, ",") {
			r, err := h.compare(ctx, w, c)
			if err != nil {
				// A system that cannot start spoils the row, not the run.
				if ctx.Err() != nil {
					rep.Machine.LoadAfter = loadavg()
					return rep, ctx.Err()
				}
				r.Verdict = "INVALID: " + err.Error()
				if r.Jaeger.Invalid == "" {
					r.Traceport.Invalid = err.Error()
				}
				logf("  %v", err)
			} else {
				logf("  ratio %.2fx, RSS %.2fx: %s", r.Ratio, r.RSSRatio, r.Verdict)
			}
			rep.Rows = append(rep.Rows, r)
		}
	}
	rep.Machine.LoadAfter = loadavg()
	return rep, nil
}

// pinSelf moves every thread of this process to cpu; threads started later
// inherit it. Runtime threads that already exist are why
// runtime.LockOSThread plus one sched_setaffinity would not do.
func pinSelf(cpu int) error {
	if cpu >= runtime.NumCPU() {
		return fmt.Errorf("core %d: only %d cores", cpu, runtime.NumCPU())
	}
	var set unix.CPUSet
	set.Set(cpu)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("sched_setaffinity: %w", err)
		}
	}
	return nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/traceport/traceport\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the traceport repository")
		}
		dir = parent
	}
}

// buildTraceport builds the binary the way `make build` does.
func buildTraceport(root, out string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/traceport")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build traceport: %w\n%s", err, b)
	}
	return nil
}

// buildJaeger runs scripts/build-jaeger.sh, which prints the cached
// binary's path.
func buildJaeger(root string) (string, error) {
	cmd := exec.Command(filepath.Join(root, "scripts", "build-jaeger.sh"))
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build jaeger: %w", err)
	}
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return "", errors.New("build jaeger: no path printed")
	}
	return lines[len(lines)-1], nil
}

// gitTree names the commit of root, "+ local changes" when the tree differs.
func gitTree(root string) string {
	head, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "an unknown commit"
	}
	tree := "commit " + strings.TrimSpace(string(head))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		tree += " + local changes"
	}
	return tree
}

func commandLine(args []string) string {
	if len(args) > 0 {
		return "go run ./cmd/traceport-compare " + strings.Join(args, " ")
	}
	return "make bench-compare"
}
