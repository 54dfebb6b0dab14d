package e2e

import (
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// h2specKnown are the h2spec tests traceport does not pass, each with the
// reason (the README's "HTTP/2 conformance" lists them too).
var h2specKnown = map[string]string{
	"http2/3.5: Sends invalid connection preface":                                                                 "one port: bytes that are not the HTTP/2 preface are an HTTP/1.1 request, answered 400 as net/http's h2c server does",
	"http2/6.5.3: Sends multiple values of SETTINGS_INITIAL_WINDOW_SIZE":                                          "a SETTINGS frame with a setting twice is PROTOCOL_ERROR, as net/http's server has it",
	"http2/6.9.2: Changes SETTINGS_INITIAL_WINDOW_SIZE after sending HEADERS frame":                               "the server's SETTINGS come in two frames (the sniffer's at once, the routed server's after the first request); h2spec expects its ACK before the second",
	"http2/8.1.2.2: Sends a HEADERS frame that contains the connection-specific header field":                     "net/http's HTTP/2 server (Go 1.26) accepts it",
	`http2/8.1.2.2: Sends a HEADERS frame that contains the TE header field with any value other than "trailers"`: "net/http's HTTP/2 server (Go 1.26) accepts it",
}

type h2specReport struct {
	Suites []struct {
		Cases []struct {
			Package string    `xml:"package,attr"`
			Name    string    `xml:"classname,attr"`
			Error   *struct{} `xml:"error"`
			Failure *struct{} `xml:"failure"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestH2Spec runs the HTTP/2 conformance suite h2spec (built from the Go
// module proxy by scripts/build-h2spec.sh) against traceport's h2c port:
// every test passes but those listed in h2specKnown.
func TestH2Spec(t *testing.T) {
	build := exec.Command(filepath.Join(repoRoot, "scripts", "build-h2spec.sh"))
	build.Dir = repoRoot
	build.Stderr = os.Stderr
	out, err := build.Output()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("build h2spec: %v", err)
		}
		t.Skipf("h2spec cannot be built here (no Go module proxy?): %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	h2spec := lines[len(lines)-1]

	tp := startTraceport(t, "--log-level", "warn")
	host, port, _ := strings.Cut(tp.addr, ":")
	r, text := runH2spec(t, h2spec, host, port)
	total, passed, skipped := 0, 0, 0
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			total++
			name := c.Package + ": " + c.Name
			switch {
			case c.Skipped != nil:
				// 5.1.2: h2spec reads MAX_CONCURRENT_STREAMS from the
				// sniffer's SETTINGS, which sets none.
				skipped++
			case c.Error == nil && c.Failure == nil:
				passed++
			case h2specKnown[name] != "":
				t.Logf("known: %s (%s)", name, h2specKnown[name])
			case passesAgain(t, h2spec, host, port, c.Package, name):
				passed++
			default:
				t.Errorf("h2spec %s failed", name)
			}
		}
	}
	t.Logf("h2spec: %d of %d passed, %d skipped", passed, total, skipped)
	if total < 140 {
		t.Errorf("h2spec ran %d tests, want all 145:\n%s", total, text)
	}
}

// runH2spec runs h2spec (the whole suite, or the sections named) and reads
// its report.
func runH2spec(t *testing.T, h2spec, host, port string, sections ...string) (h2specReport, []byte) {
	t.Helper()
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	// A path that reads request bodies (POST) and answers GET with 405, so
	// every exchange h2spec makes has a reply with a body.
	args := append([]string{"-h", host, "-p", port, "-o", "5", "-P", "/api/v2/spans", "-j", report}, sections...)
	text, _ := exec.Command(h2spec, args...).CombinedOutput() // non-zero on any failure: the report says which
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report: %v\n%s", err, text)
	}
	var r h2specReport
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r, text
}

// passesAgain runs a failed case's section twice more. Some cases race
// with the routed server: h2spec's frames after a request's HEADERS reach
// net/http through the sniffer's replay, and if the handler has answered
// and closed the stream by then, RFC 9113 §5.1 has the server ignore them
// (seen once in 6.9.1's stream-level WINDOW_UPDATE overflow). A case that
// never passes is a failure; one that passes on a rerun is logged.
func passesAgain(t *testing.T, h2spec, host, port, section, name string) bool {
	for try := 1; try <= 2; try++ {
		r, _ := runH2spec(t, h2spec, host, port, section)
		for _, s := range r.Suites {
			for _, c := range s.Cases {
				if c.Package+": "+c.Name == name && c.Skipped == nil && c.Error == nil && c.Failure == nil {
					t.Logf("h2spec %s failed, then passed on rerun %d (a race with the routed server, see passesAgain)", name, try)
					return true
				}
			}
		}
	}
	return false
}
