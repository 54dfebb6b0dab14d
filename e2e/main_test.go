package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binaries shared by every test, set once in TestMain.
var (
	repoRoot     string
	jaegerBin    string
	traceportBin string
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
	fmt.Fprintln(os.Stderr, "e2e: locating Jaeger v2 via scripts/build-jaeger.sh (cached under .cache/bin; from nothing it builds from the Go module proxy, ~8 min on 2 cores)")
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
	build := exec.Command("go", "build", "-o", traceportBin, "./cmd/traceport")
	build.Dir = root
	var stderr bytes.Buffer
	build.Stderr = &stderr
	if err := build.Run(); err != nil {
		traceportErr = fmt.Errorf("go build ./cmd/traceport: %v\n%s", err, stderr.Bytes())
		fmt.Fprintln(os.Stderr, "e2e:", traceportErr)
	}
	return m.Run()
}

// freePort returns a loopback port that was free a moment ago. The kernel
// does not hand out a just-closed ephemeral port again at once, so the race
// with the process that binds it next is acceptable for tests.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
