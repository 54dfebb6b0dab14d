package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/traceport/traceport/bench"
	"github.com/traceport/traceport/bench/sink"
)

// counter is where the rows of a downstream count delivered spans.
func (e *env) counter(downstream string) func() sink.Counts {
	if downstream == kafkaDownstream {
		return e.kafka.Count
	}
	return e.sink.Count
}

// readBack is how the rows of a downstream stop and restart its counting
// while the generator runs; nil where counting is part of taking spans.
func (e *env) readBack(downstream string) func(on bool) {
	if downstream == kafkaDownstream {
		return e.kafka.readBack
	}
	return nil
}

// system is one system under test: how to start it for a given downstream
// compression ("none" or "gzip", the default of both systems).
type system struct {
	name  string
	start func(ctx context.Context, env *env, compression string) (*sut, error)
}

// env is what every run shares: binaries, the sink's address, where logs go.
type env struct {
	traceportBin, jaegerBin string
	sinkAddr                string
	sink                    *sink.Sink
	kafka                   *kafkaSink // the Kafka rows' broker, nil without them
	dir                     string     // configs and logs
	sutCPU                  int        // -1: no pinning
	runs                    int        // numbers log files
}

// sut is one running process of a system under test.
type sut struct {
	name    string
	cmd     *exec.Cmd
	targets map[string]string // bench protocol -> HOST:PORT
	ready   string            // URL that answers 200 once it takes spans
	logPath string
	counts  func() sink.Counts // what its downstream has taken so far
	// readBack pauses (false) and resumes (true) the counting, where the
	// counting would otherwise share the generator's core (nil: none).
	readBack func(on bool)
	done     chan struct{}
	waitErr  error
}

func (s *sut) pid() int { return s.cmd.Process.Pid }

func (s *sut) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// failure describes an unexpected exit with the end of the process's log.
func (s *sut) failure() error {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%s exited: %v; log %s ends:\n%s", s.name, s.waitErr, s.logPath, b)
}

// stop sends SIGTERM and, after a grace period, SIGKILL.
func (s *sut) stop() {
	if s.exited() {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// launch starts bin pinned to env.sutCPU (taskset execs the binary, so the
// pid is the system's own) and waits until it is ready.
func launch(ctx context.Context, e *env, name, bin string, args []string, targets map[string]string, ready, downstream string) (*sut, error) {
	e.runs++
	logPath := filepath.Join(e.dir, fmt.Sprintf("%02d-%s.log", e.runs, name))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	argv := append([]string{bin}, args...)
	if e.sutCPU >= 0 {
		argv = append([]string{"taskset", "-c", strconv.Itoa(e.sutCPU)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the harness
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &sut{name: name, cmd: cmd, targets: targets, ready: ready, logPath: logPath,
		counts: e.counter(downstream), readBack: e.readBack(downstream), done: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(ctx, 60*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *sut) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for {
		if s.exited() {
			return s.failure()
		}
		err := s.probe(client)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %w", s.name, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *sut) probe(client *http.Client) error {
	resp, err := client.Get(s.ready)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", s.ready, resp.Status)
	}
	for _, addr := range s.targets {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

var traceport = system{name: "traceport", start: func(ctx context.Context, e *env, compression string) (*sut, error) {
	port, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := hostPort(port[0])
	args := []string{
		"--listen", addr,
		"--jaeger", e.sinkAddr,
		"--jaeger-compression", compression,
		"--summary-interval", "0",
		"--log-level", "warn",
	}
	if compression == kafkaDownstream {
		args = []string{"--listen", addr, "--kafka-brokers", e.kafka.addr(), "--summary-interval", "0", "--log-level", "warn"}
	}
	targets := map[string]string{}
	for _, p := range bench.Protocols {
		targets[p] = addr
	}
	return launch(ctx, e, "traceport", e.traceportBin, args, targets, "http://"+addr+"/readyz", compression)
}}

var jaeger = system{name: "jaeger", start: func(ctx context.Context, e *env, compression string) (*sut, error) {
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	otlpGRPC, otlpHTTP, zipkin, health, metrics := ports[0], ports[1], ports[2], ports[3], ports[4]
	cfg := jaegerConfig(e.sinkAddr, compression, otlpGRPC, otlpHTTP, zipkin, health, metrics)
	if compression == kafkaDownstream {
		cfg = jaegerKafkaConfig(e.kafka.addr(), otlpGRPC, otlpHTTP, zipkin, health, metrics)
	}
	path := filepath.Join(e.dir, fmt.Sprintf("jaeger-%d.yaml", e.runs+1))
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	targets := map[string]string{
		bench.ZipkinJSON: hostPort(zipkin), bench.ZipkinProto: hostPort(zipkin),
		bench.OTLPGRPC: hostPort(otlpGRPC), bench.OTLPHTTP: hostPort(otlpHTTP), bench.OTLPHTTPJSON: hostPort(otlpHTTP),
	}
	return launch(ctx, e, "jaeger", e.jaegerBin, []string{"--config", path}, targets,
		fmt.Sprintf("http://%s/status", hostPort(health)), compression)
}}

// jaegerConfig is Jaeger v2 (v1.76.0, OpenTelemetry Collector core v0.140)
// as a plain collector: zipkin and OTLP (gRPC, HTTP) receivers, the batch
// processor and the OTLP exporter at their defaults, to the sink. No storage,
// no query extension. compression "gzip" is the exporter's default, left
// unset.
func jaegerConfig(sink, compression string, otlpGRPC, otlpHTTP, zipkin, health, metrics int) string {
	comp := ""
	if compression != "gzip" {
		comp = "\n    compression: " + compression
	}
	return jaegerCollectorConfig("otlp", fmt.Sprintf(`
    endpoint: %s
    tls:
      insecure: true%s
`, sink, comp), otlpGRPC, otlpHTTP, zipkin, health, metrics)
}

// jaegerCollectorConfig is the config both Jaeger runs share: receivers
// for the rows, the batch processor, and one exporter, the given name with
// the given settings (YAML indented under it, starting on a new line). Its
// own metrics and health check are on loopback ports chosen for this run, so
// nothing collides with other collectors on the machine.
func jaegerCollectorConfig(exporter, settings string, otlpGRPC, otlpHTTP, zipkin, health, metrics int) string {
	return fmt.Sprintf(`service:
  extensions: [healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      processors: [batch]
      exporters: [%[1]s]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %[2]d
    logs:
      level: warn

extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:%[3]d

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:%[4]d
      http:
        endpoint: 127.0.0.1:%[5]d
  zipkin:
    endpoint: 127.0.0.1:%[6]d

processors:
  batch:

exporters:
  %[1]s:%[7]s`, exporter, metrics, health, otlpGRPC, otlpHTTP, zipkin, settings)
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts returns n loopback ports free right now, all different.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// cpuTicks is the user+system CPU time of a process (all its threads) in
// clock ticks, from /proc/PID/stat ("self" for the harness).
func cpuTicks(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatTicks(b)
}

// parseStatTicks reads utime and stime (fields 14 and 15) of a
// /proc/PID/stat line; the command name in parentheses may hold spaces.
func parseStatTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no ')'")
	}
	f := strings.Fields(string(stat[i+1:])) // f[0] is field 3, state
	if len(f) < 13 {
		return 0, errors.New("proc stat: short line")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("proc stat: %w", err)
	}
	return utime + stime, nil
}

// peakRSS is VmHWM of /proc/PID/status in bytes: the most resident memory
// since the process started (each run starts a fresh process).
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmHWM(b)
}

func parseVmHWM(status []byte) (int64, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("VmHWM: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("no VmHWM in status")
}

// clockTicks is the unit of /proc's CPU times (getconf CLK_TCK, 100 on
// Linux everywhere in practice).
func clockTicks() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}
