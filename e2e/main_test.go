package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Binaries shared by every test, set once in TestMain.
var (
	repoRoot     string
	jaegerBin    string
	traceportBin string
	// plainBin is traceport built without the race detector.
	plainBin string
	// traceportErr is why traceport did not build; tests that need it fail
	// with it, the Jaeger-only tests still run.
	traceportErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root

	start := time.Now()
	fmt.Fprintln(os.Stderr, "e2e: locating Jaeger v2 via scripts/build-jaeger.sh (cached under .cache/bin and machine-wide under ${XDG_CACHE_HOME:-~/.cache}/traceport; the first build on a machine comes from the Go module proxy, 8-25 min on 2 cores)")
	cmd := exec.Command(filepath.Join(root, "scripts", "build-jaeger.sh"))
	cmd.Dir = root
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build Jaeger:", err)
		return 1
	}
	jaegerBin = strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(jaegerBin, '\n'); i >= 0 {
		jaegerBin = jaegerBin[i+1:]
	}
	fmt.Fprintf(os.Stderr, "e2e: Jaeger at %s (%s)\n", jaegerBin, time.Since(start).Round(time.Second))

	dir, err := os.MkdirTemp("", "traceport-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	traceportBin = filepath.Join(dir, "traceport")
	args := []string{"build", "-o", traceportBin}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/traceport")...)
	build.Dir = root
	var stderr bytes.Buffer
	build.Stderr = &stderr
	if err := build.Run(); err != nil {
		traceportErr = fmt.Errorf("go build ./cmd/traceport: %v\n%s", err, stderr.Bytes())
		fmt.Fprintln(os.Stderr, "e2e:", traceportErr)
	}
	// Measurements of memory and speed need the binary users run: the race
	// detector multiplies both.
	plainBin = traceportBin
	if raceBuild && traceportErr == nil {
		plainBin = filepath.Join(dir, "traceport-plain")
		build := exec.Command("go", "build", "-o", plainBin, "./cmd/traceport")
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			traceportErr = fmt.Errorf("go build ./cmd/traceport: %v\n%s", err, out)
		}
	}
	return m.Run()
}

// freePort returns a loopback port that is free now and that this test
// binary has not handed out before. Ports come from below the kernel's
// ephemeral range, so outgoing connections (whose source ports come from
// that range) and listeners on port 0 cannot take one between the choice
// and the moment a restarted Jaeger binds it again.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	lo, hi := 20000, ephemeralLow()-1
	for range 1000 {
		p := lo + rand.IntN(hi-lo+1)
		if portsUsed[p] {
			continue
		}
		l, err := net.Listen("tcp", hostPort(p))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[p] = true
		return p
	}
	t.Fatalf("no free port in %d-%d", lo, hi)
	return 0
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// ephemeralLow is the start of Linux's ephemeral port range (32768 unless
// configured otherwise).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 21000 {
		return 32768
	}
	return n
}

func hostPort(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// eventually polls cond every 50ms until it returns nil or timeout passes,
// then fails with cond's last error.
func eventually(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
