package e2e

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"

	"github.com/traceport/traceport/internal/h2test"
)

// exportClients are two OTLP/gRPC clients exporting a one-span request
// every 50 ms until stop; the result is how many of their requests were
// answered OK within a second, of how many sent.
func exportClients(t *testing.T, addr string, stop <-chan struct{}) func() (ok, sent int) {
	td := ptrace.NewTraces()
	span := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	span.SetTraceID([16]byte{1})
	span.SetSpanID([8]byte{1})
	span.SetName("legitimate")
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return h2test.LegitExporters(t, addr, body, stop, func(c codes.Code) bool { return c == codes.OK })
}

// h2Attack opens a connection and writes the preface, an empty SETTINGS
// and then what write gives its framer.
func h2Attack(t *testing.T, addr string, write func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer)) net.Conn {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(http2.ClientPreface))
	fr := http2.NewFramer(conn, nil)
	fr.WriteSettings()
	var hb bytes.Buffer
	write(fr, hpack.NewEncoder(&hb), &hb)
	return conn
}

// TestHostileH2DeclaredSizes: the two declared-size rows against the
// real binary with --memory-limit 256Mi. 60 connections each send an
// HTTP/2 frame header declaring 16 MiB and nothing after; 200 gRPC streams
// each declare a 20 MiB message in its 5-byte prefix and send nothing
// more. Neither may cost memory (peak RSS under 150 MiB; it was 1.0 GB
// for the first), and two legitimate clients get at least 90% of their
// requests answered within a second throughout (it was 14 of 85 and 20
// of 140).
func TestHostileH2DeclaredSizes(t *testing.T) {
	tp := startTraceportBin(t, plainBin, "--log-level", "warn", "--summary-interval", "0",
		"--memory-limit", strconv.Itoa(256<<20), "--idle-timeout", "1m")
	stop := make(chan struct{})
	results := exportClients(t, tp.addr, stop)
	time.Sleep(300 * time.Millisecond)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 60 {
		// After the preface and SETTINGS, a frame header alone, declaring 16 MiB.
		conns = append(conns, h2Attack(t, tp.addr, func(*http2.Framer, *hpack.Encoder, *bytes.Buffer) {}))
		conns[len(conns)-1].Write([]byte{0xff, 0xff, 0xff, 0x1, 0x4, 0, 0, 0, 1})
	}
	prefix := make([]byte, 5)
	binary.BigEndian.PutUint32(prefix[1:], 20<<20)
	for range 2 {
		conns = append(conns, h2Attack(t, tp.addr, func(fr *http2.Framer, enc *hpack.Encoder, hb *bytes.Buffer) {
			for i := range 100 {
				hb.Reset()
				for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"},
					{":authority", "traceport"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
					enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
				}
				id := uint32(1 + 2*i)
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true})
				fr.WriteData(id, false, prefix)
			}
		}))
	}
	time.Sleep(5 * time.Second) // attacks held open while the clients go on
	close(stop)
	ok, sent := results()
	rss := rssBytes(t, tp.proc.cmd.Process.Pid)
	t.Logf("peak RSS %d MiB; legitimate clients: %d of %d answered within 1 s", rss>>20, ok, sent)
	if rss > 150<<20 {
		t.Errorf("peak RSS %d MiB under declared-size attacks that send 60×43 bytes and 200 prefixes", rss>>20)
	}
	if sent < 20 || ok*10 < sent*9 {
		t.Errorf("legitimate clients got %d of %d requests answered within 1 s, want at least 90%%", ok, sent)
	}
}

// procCPU is the CPU time a process has used (utime+stime, clock ticks of
// 10 ms).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// TestHostileH2RapidReset: 100k HEADERS+RST_STREAM pairs (100 connections
// of 1000) on the gRPC fast path stay cheap for the real binary: a
// connection resetting 1000 streams with none completing is closed.
func TestHostileH2RapidReset(t *testing.T) {
	tp := startTraceportBin(t, plainBin, "--log-level", "warn", "--summary-interval", "0")
	pid := tp.proc.cmd.Process.Pid
	before := procCPU(t, pid)
	hb := func(enc *hpack.Encoder, buf *bytes.Buffer) []byte {
		buf.Reset()
		for _, kv := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/opentelemetry.proto.collector.trace.v1.TraceService/Export"},
			{":authority", "traceport"}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
			enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
		}
		return buf.Bytes()
	}
	for range 100 {
		conn := h2Attack(t, tp.addr, func(fr *http2.Framer, enc *hpack.Encoder, buf *bytes.Buffer) {
			for i := range 1001 {
				id := uint32(1 + 2*i)
				fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb(enc, buf), EndHeaders: true})
				fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
		})
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, conn) // until traceport closes it
		conn.Close()
	}
	cpu := procCPU(t, pid) - before
	t.Logf("100k HEADERS+RST_STREAM: %v of traceport's CPU", cpu)
	if cpu > 5*time.Second {
		t.Errorf("100k HEADERS+RST_STREAM cost traceport %v of CPU", cpu)
	}
}
