package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	zipkinproto "github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/traceport/traceport/diagnosis"
)

// probePath is one way spans reach traceport.
type probePath struct {
	name, protocol, encoding string // protocol/encoding: /api/sources' labels
	how                      string // for the output line
	send                     func(d *doctor, ctx context.Context, p *probe) error
}

var probePaths = []probePath{
	{"zipkin json", "zipkin", "json", "POST /api/v2/spans application/json", (*doctor).sendZipkinJSON},
	{"zipkin proto", "zipkin", "proto", "POST /api/v2/spans application/x-protobuf", (*doctor).sendZipkinProto},
	{"otlp grpc", "otlp_grpc", "proto", "gRPC TraceService/Export", (*doctor).sendOTLPGRPC},
	{"otlp http", "otlp_http", "proto", "POST /v1/traces application/x-protobuf", (*doctor).sendOTLPHTTP},
}

// probe is one probe span and what became of it.
type probe struct {
	path            probePath
	traceID, spanID []byte
	latency         time.Duration
	err             error  // sending failed
	cause           string // why it failed, in words
	arrived         bool   // /api/sources counted it
	exported        bool
	inJaeger        bool
}

type doctor struct {
	endpoint string
	jaeger   string
	timeout  time.Duration
	http     *http.Client
	polls    int // rounds of asking whether the probes arrived, for tests

	peer       *peerKind // what the endpoint speaks, once sniffed
	serverName string    // the first Server header a failed HTTP probe saw
}

// runDoctor is `traceport doctor`: one probe span over each path, then
// traceport's own /api/sources and /metrics (and optionally Jaeger's query
// API) say how far each got. Exit 0 when every path works, 1 when one does
// not, 2 on bad usage.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	d, code := newDoctor(args, stderr)
	if d == nil {
		return code
	}
	return d.run(stdout)
}

// newDoctor parses the doctor's flags; nil and the exit code when there is
// nothing to run (help, bad usage).
func newDoctor(args []string, stderr io.Writer) (*doctor, int) {
	fs := flag.NewFlagSet("traceport doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "traceport's HOST:PORT, as the pods send to it (required)")
	jaegerQuery := fs.String("jaeger-query", "", "Jaeger query base URL (e.g. http://jaeger-query:16686) to check the probes landed")
	timeout := fs.Duration("timeout", 10*time.Second, "time for each probe to be sent, and for all of them to be counted and exported")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "traceport doctor: send one probe span over each path (Zipkin JSON, Zipkin proto, OTLP gRPC, OTLP HTTP) and say how far it got.\n\nUsage: traceport doctor --endpoint HOST:PORT [--jaeger-query URL] [--timeout D]\n\nProbe spans have service.name %q and the tag traceport.probe=true.\n\n", diagnosis.ProbeService)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	if _, _, err := net.SplitHostPort(*endpoint); err != nil {
		fmt.Fprintf(stderr, "traceport doctor: --endpoint %q: want HOST:PORT\n", *endpoint)
		return nil, 2
	}
	return &doctor{endpoint: *endpoint, jaeger: strings.TrimSuffix(*jaegerQuery, "/"), timeout: *timeout,
		http: &http.Client{Timeout: *timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}}, 0
}

func (d *doctor) run(out io.Writer) int {
	ctx := context.Background()
	fmt.Fprintf(out, "traceport doctor → %s\n", d.endpoint)
	before, sourcesErr := d.sources(ctx)
	mBefore, metricsErr := d.metrics(ctx)

	probes := make([]*probe, len(probePaths))
	for i, pp := range probePaths {
		p := &probe{path: pp, traceID: randomID(16), spanID: randomID(8)}
		sctx, cancel := context.WithTimeout(ctx, d.timeout)
		start := time.Now()
		p.err = pp.send(d, sctx, p)
		p.latency = time.Since(start)
		cancel()
		if p.err != nil {
			p.cause = d.explain(ctx, pp, p.err)
		}
		probes[i] = p
	}
	mAfter := d.await(ctx, probes, before, mBefore, sourcesErr == nil, metricsErr == nil)

	failed := 0
	for _, p := range probes {
		ok := p.err == nil && (p.arrived || sourcesErr != nil) && (p.exported || metricsErr != nil) && (p.inJaeger || d.jaeger == "")
		mark := "✓"
		var detail string
		switch {
		case p.err != nil:
			detail = p.cause
		case !p.arrived && sourcesErr == nil:
			detail = fmt.Sprintf("accepted, but traceport at %s did not count it: the reply came from something else on the way (a proxy or another collector)", d.endpoint)
		case !p.exported && metricsErr == nil:
			detail = d.notExported(mBefore, mAfter)
		case d.jaeger != "" && !p.inJaeger:
			detail = fmt.Sprintf("exported, but Jaeger's query at %s does not have trace %x: traceport's --jaeger points at another Jaeger, or its storage drops spans", d.jaeger, p.traceID)
		default:
			var got []string
			got = append(got, "sent")
			if sourcesErr == nil {
				got = append(got, "counted")
			}
			if metricsErr == nil {
				got = append(got, "exported")
			}
			if d.jaeger != "" {
				got = append(got, "in Jaeger")
			}
			detail = strings.Join(got, ", ") + fmt.Sprintf(" (trace %x)", p.traceID)
		}
		if !ok {
			mark = "✗"
			failed++
		}
		fmt.Fprintf(out, "%s %-12s %-42s %6s  %s\n", mark, p.path.name, p.path.how, p.latency.Round(time.Millisecond), detail)
	}
	if sourcesErr != nil {
		fmt.Fprintf(out, "? cannot read /api/sources (%v): arrival not checked\n", sourcesErr)
	}
	if metricsErr != nil {
		fmt.Fprintf(out, "? cannot read /metrics (%v): export not checked\n", metricsErr)
	} else if mAfter.discarding {
		fmt.Fprintf(out, "  note: traceport runs without --jaeger: spans are counted and discarded\n")
	}
	if failed > 0 {
		fmt.Fprintf(out, "%d of %d paths failed\n", failed, len(probes))
		return 1
	}
	fmt.Fprintf(out, "all %d paths work\n", len(probes))
	return 0
}

// await asks /api/sources, /metrics and Jaeger about the accepted probes
// until every one has its verdict or --timeout ends. It asks nothing when
// no probe was accepted, and never asks again what failed to answer before
// the probes were sent: that answer will not change.
func (d *doctor) await(ctx context.Context, probes []*probe, before diagnosis.SourcesReport, mBefore doctorMetrics, canSources, canMetrics bool) doctorMetrics {
	mAfter := mBefore
	accepted := 0
	for _, p := range probes {
		if p.err == nil {
			accepted++
		}
	}
	if accepted == 0 || !canSources && !canMetrics && d.jaeger == "" {
		return mAfter
	}
	deadline := time.Now().Add(d.timeout)
	for {
		d.polls++
		settled := true
		if canSources {
			after, err := d.sources(ctx)
			for _, p := range probes {
				if err == nil && p.err == nil && !p.arrived {
					p.arrived = probeCount(after, p.path) > probeCount(before, p.path)
				}
				settled = settled && (p.err != nil || p.arrived)
			}
		}
		if canMetrics {
			if m, err := d.metrics(ctx); err == nil {
				mAfter = m
			}
			exported := mAfter.exported-mBefore.exported >= float64(accepted)
			for _, p := range probes {
				p.exported = p.err == nil && exported
			}
			settled = settled && exported
		}
		if d.jaeger != "" && settled {
			for _, p := range probes {
				if p.err == nil && !p.inJaeger {
					p.inJaeger = d.inJaeger(ctx, p)
				}
				settled = settled && (p.err != nil || p.inJaeger)
			}
		}
		if settled || time.Now().After(deadline) {
			return mAfter
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// explain turns a send error into its most likely cause. A reply
// traceport never gives, or a connection that ends without an HTTP or gRPC
// answer, is checked against what the endpoint speaks (sniff), so that a
// server that is not traceport, or a TLS port, is named as such.
func (d *doctor) explain(ctx context.Context, pp probePath, err error) string {
	var he *httpStatusError
	if errors.As(err, &he) {
		if d.serverName == "" {
			d.serverName = he.serverName
		}
		switch he.code {
		case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
			// traceport serves POST on every probe path.
			return fmt.Sprintf("not traceport: %s answered %d (%s) for %s: another server listens on %s, or a proxy rewrites the path",
				he.server(), he.code, http.StatusText(he.code), pp.how, d.endpoint)
		case http.StatusUnsupportedMediaType:
			return fmt.Sprintf("HTTP 415: wrong content type: %s does not accept %s (%s)", d.endpoint, pp.how, he.body)
		case http.StatusRequestEntityTooLarge:
			return fmt.Sprintf("HTTP 413: the probe is over --max-request-bytes at %s", d.endpoint)
		case http.StatusTooManyRequests:
			return "HTTP 429: traceport's export queue is full: traceport → Jaeger is too slow or failing (see traceport_dropped_spans_total)"
		case http.StatusServiceUnavailable:
			return "HTTP 503: traceport is shutting down, or a proxy has no healthy upstream"
		}
		if why := d.sniff(ctx).mismatch(d, pp); why != "" {
			return why
		}
		return fmt.Sprintf("HTTP %d from %s: %s", he.code, he.server(), he.body)
	}
	timedOut := false
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		switch st.Code() {
		case codes.Unimplemented:
			return fmt.Sprintf("gRPC Unimplemented: %s does not serve OTLP gRPC: not traceport, or a proxy that only speaks HTTP/1.1", d.endpoint)
		case codes.ResourceExhausted:
			return "gRPC RESOURCE_EXHAUSTED: traceport's export queue is full: traceport → Jaeger is too slow or failing"
		case codes.Unavailable, codes.DeadlineExceeded, codes.Internal:
			err, timedOut = errors.New(st.Message()), st.Code() == codes.DeadlineExceeded
		default:
			return fmt.Sprintf("gRPC %s: %s", st.Code(), st.Message())
		}
	}
	why, kind := d.explainNet(pp, err, timedOut)
	if kind == netClosed || kind == netOther {
		// No answer in the path's protocol: the sender's raw error
		// ("frame too large", "malformed HTTP response") says less than
		// what the endpoint turns out to speak.
		if m := d.sniff(ctx).mismatch(d, pp); m != "" {
			return m
		}
	}
	return why
}

// Kinds of network failure explainNet tells apart.
const (
	netDNS = iota
	netRefused
	netTimeout
	netClosed
	netOther
)

func (d *doctor) explainNet(pp probePath, err error, timedOut bool) (string, int) {
	var dnsErr *net.DNSError
	msg := err.Error()
	host, port, _ := net.SplitHostPort(d.endpoint)
	var ne net.Error
	switch {
	case errors.As(err, &dnsErr) || strings.Contains(msg, "no such host"):
		return fmt.Sprintf("cannot resolve %s: wrong Service name or namespace (%v)", host, err), netDNS
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connection refused"):
		return fmt.Sprintf("connection refused: nothing listens on %s, or a NetworkPolicy or Service port blocks port %s", d.endpoint, port), netRefused
	case timedOut || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() || strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline"):
		return fmt.Sprintf("connection timed out: a NetworkPolicy or Service port blocks %s (packets dropped)", d.endpoint), netTimeout
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "closed"):
		return fmt.Sprintf("connection closed before a reply: something on the way to %s (a proxy, the pod's sidecar, a NetworkPolicy) drops %s requests", d.endpoint, pp.name), netClosed
	}
	return fmt.Sprintf("send failed: %v", err), netOther
}

// peerKind is what an endpoint turned out to speak.
type peerKind struct {
	tls     string // the TLS certificate's subject when a TLS handshake completed
	isTLS   bool
	reply   []byte // the first bytes it answered a plaintext HTTP/2 client preface with
	status  string // the status line, when reply is HTTP/1
	server  string // the Server header, when reply is HTTP/1
	unknown bool   // no answer to tell by: refused, closed, silent
}

// sniffBytes bounds what sniff reads of an answer.
const sniffBytes = 512

// sniff finds out, once per run, what the endpoint speaks: whether it
// completes a TLS handshake (crypto/tls), and how it answers the HTTP/2
// client preface in plaintext: traceport answers with a SETTINGS frame, an
// HTTP/1 server with an HTTP/1 status line, an echo with the preface. Each
// connection waits at most --timeout (and 5 s), and reads at most
// sniffBytes.
func (d *doctor) sniff(ctx context.Context) *peerKind {
	if d.peer != nil {
		return d.peer
	}
	k := &peerKind{unknown: true}
	d.peer = k
	ctx, cancel := context.WithTimeout(ctx, min(d.timeout, 5*time.Second))
	defer cancel()
	deadline, _ := ctx.Deadline()
	td := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}}
	if c, err := td.DialContext(ctx, "tcp", d.endpoint); err == nil {
		k.isTLS, k.unknown = true, false
		if certs := c.(*tls.Conn).ConnectionState().PeerCertificates; len(certs) > 0 {
			k.tls = certs[0].Subject.String()
		}
		c.Close()
		return k
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "tcp", d.endpoint)
	if err != nil {
		return k
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return k
	}
	buf := make([]byte, sniffBytes)
	n, _ := io.ReadAtLeast(c, buf, http2FrameHeaderLen)
	if n == 0 {
		return k
	}
	k.reply, k.unknown = buf[:n], false
	if bytes.HasPrefix(k.reply, []byte("HTTP/1.")) {
		r := bufio.NewReader(io.MultiReader(bytes.NewReader(k.reply), io.LimitReader(c, int64(sniffBytes-n))))
		if resp, err := http.ReadResponse(r, nil); err == nil {
			k.status, k.server = resp.Status, resp.Header.Get("Server")
			resp.Body.Close()
		} else if line, _, ok := bytes.Cut(k.reply, []byte("\r\n")); ok {
			k.status = string(line)
		}
	}
	return k
}

// http2FrameHeaderLen is enough bytes to tell an HTTP/2 frame, an HTTP/1
// status line ("HTTP/1.1 "), a TLS record and an echoed preface apart.
const http2FrameHeaderLen = 9

// mismatch names the cause when the endpoint does not speak what path pp
// needs; "" when it does, or when the sniff could not tell.
func (k *peerKind) mismatch(d *doctor, pp probePath) string {
	endpoint, grpcPath := d.endpoint, pp.protocol == "otlp_grpc"
	switch {
	case k.isTLS:
		cert := ""
		if k.tls != "" {
			cert = " (certificate " + k.tls + ")"
		}
		return fmt.Sprintf("TLS vs plaintext mismatch: %s completed a TLS handshake%s, and the doctor sends plaintext as the pods' senders do: traceport serves TLS only when started with --tls-cert (then every sender needs TLS), or a TLS-terminating proxy or another server listens here", endpoint, cert)
	case k.unknown:
		return ""
	case bytes.HasPrefix([]byte(http2.ClientPreface), k.reply):
		return fmt.Sprintf("not traceport: %s sent the request's own bytes back (a TCP echo or a loop), not an HTTP reply", endpoint)
	case len(k.reply) >= 2 && (k.reply[0] == 0x15 || k.reply[0] == 0x16) && k.reply[1] == 0x03:
		return fmt.Sprintf("TLS vs plaintext mismatch: %s answered plaintext with a TLS record: it expects TLS, and the doctor sends plaintext as the pods' senders do", endpoint)
	case bytes.HasPrefix(k.reply, []byte("HTTP/1.")) || k.reply[0] == '<':
		// An HTTP/1 status line, or an error page without one (servers
		// that take "PRI * HTTP/2.0" for HTTP/0.9).
		if !grpcPath {
			return ""
		}
		server, answer := "without a Server header", k.status
		if k.server != "" {
			server = strconv.Quote(k.server)
		} else if d.serverName != "" {
			server = strconv.Quote(d.serverName)
		}
		answer = strconv.Quote(answer)
		if k.status == "" {
			answer = "an error page without a status line (HTTP/0.9)"
		}
		return fmt.Sprintf("not traceport: an HTTP/1 server (%s) answered where gRPC (HTTP/2) was expected, with %s to the HTTP/2 preface: another server, or a proxy that speaks only HTTP/1.1, listens on %s", server, answer, endpoint)
	case len(k.reply) >= http2FrameHeaderLen && k.reply[3] == 0x4: // an HTTP/2 SETTINGS frame: h2 spoken
		return ""
	}
	return fmt.Sprintf("not traceport: %s answered the HTTP/2 preface with %q, which is neither HTTP nor TLS", endpoint, k.reply[:min(len(k.reply), 24)])
}

func (d *doctor) notExported(before, after doctorMetrics) string {
	for reason, n := range after.dropped {
		if n > before.dropped[reason] {
			return fmt.Sprintf("accepted but not exported: traceport → Jaeger fails, see traceport_dropped_spans_total{reason=%q} (+%g)", reason, n-before.dropped[reason])
		}
	}
	if r := after.retries - before.retries; r > 0 {
		return fmt.Sprintf("accepted but not exported within %s: traceport → Jaeger fails and is being retried (traceport_export_retries_total +%g); see traceport's log", d.timeout, r)
	}
	return fmt.Sprintf("accepted but not exported within %s: traceport → Jaeger is slow or failing (queue %g spans)", d.timeout, after.queued)
}

// httpStatusError is a reply other than the path's success status.
type httpStatusError struct {
	code       int
	body       string
	serverName string // the reply's Server header
}

// server names the replying server for the output: its Server header.
func (e *httpStatusError) server() string {
	if e.serverName == "" {
		return "a server without a Server header"
	}
	return strconv.Quote(e.serverName)
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

func (d *doctor) post(ctx context.Context, path, contentType string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.endpoint+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != want {
		first, _, _ := strings.Cut(strings.TrimSpace(string(msg)), "\n")
		return &httpStatusError{code: resp.StatusCode, body: first, serverName: resp.Header.Get("Server")}
	}
	return nil
}

func (d *doctor) sendZipkinJSON(ctx context.Context, p *probe) error {
	now := time.Now()
	body, _ := json.Marshal([]map[string]any{{
		"traceId": hex.EncodeToString(p.traceID), "id": hex.EncodeToString(p.spanID), "kind": "SERVER",
		"name": "traceport doctor probe", "timestamp": now.UnixMicro(), "duration": 1,
		"localEndpoint": map[string]string{"serviceName": diagnosis.ProbeService},
		"tags":          map[string]string{"traceport.probe": "true", "traceport.probe.path": p.path.name},
	}})
	return d.post(ctx, "/api/v2/spans", "application/json", body, http.StatusAccepted)
}

func (d *doctor) sendZipkinProto(ctx context.Context, p *probe) error {
	now := time.Now()
	body, err := proto.Marshal(&zipkinproto.ListOfSpans{Spans: []*zipkinproto.Span{{
		TraceId: p.traceID, Id: p.spanID, Kind: zipkinproto.Span_SERVER, Name: "traceport doctor probe",
		Timestamp: uint64(now.UnixMicro()), Duration: 1,
		LocalEndpoint: &zipkinproto.Endpoint{ServiceName: diagnosis.ProbeService},
		Tags:          map[string]string{"traceport.probe": "true", "traceport.probe.path": p.path.name},
	}}})
	if err != nil {
		return err
	}
	return d.post(ctx, "/api/v2/spans", "application/x-protobuf", body, http.StatusAccepted)
}

func (d *doctor) otlpRequest(p *probe) *collectortrace.ExportTraceServiceRequest {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	now := uint64(time.Now().UnixNano())
	return &collectortrace.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", diagnosis.ProbeService)}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
			TraceId: p.traceID, SpanId: p.spanID, Name: "traceport doctor probe", Kind: tracepb.Span_SPAN_KIND_SERVER,
			StartTimeUnixNano: now, EndTimeUnixNano: now + 1000,
			Attributes: []*commonpb.KeyValue{
				{Key: "traceport.probe", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}},
				str("traceport.probe.path", p.path.name),
			},
		}}}},
	}}}
}

func (d *doctor) sendOTLPGRPC(ctx context.Context, p *probe) error {
	conn, err := grpc.NewClient("passthrough:///"+d.endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = collectortrace.NewTraceServiceClient(conn).Export(ctx, d.otlpRequest(p), grpc.WaitForReady(false))
	return err
}

func (d *doctor) sendOTLPHTTP(ctx context.Context, p *probe) error {
	body, err := proto.Marshal(d.otlpRequest(p))
	if err != nil {
		return err
	}
	return d.post(ctx, "/v1/traces", "application/x-protobuf", body, http.StatusOK)
}

func (d *doctor) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		if s := resp.Header.Get("Server"); s != "" {
			return nil, fmt.Errorf("%s: %s answered %s", url, strconv.Quote(s), resp.Status)
		}
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}

func (d *doctor) sources(ctx context.Context) (diagnosis.SourcesReport, error) {
	var rep diagnosis.SourcesReport
	b, err := d.get(ctx, "http://"+d.endpoint+"/api/sources")
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	return rep, err
}

func probeCount(rep diagnosis.SourcesReport, pp probePath) int64 {
	for _, s := range rep.Sources {
		if s.Service == diagnosis.ProbeService && s.Protocol == pp.protocol && s.Encoding == pp.encoding {
			return s.Spans
		}
	}
	return 0
}

// doctorMetrics are the export counters of one /metrics scrape.
type doctorMetrics struct {
	exported, retries, queued float64
	dropped                   map[string]float64
	discarding                bool // exporter="none": no --jaeger
}

func (d *doctor) metrics(ctx context.Context) (doctorMetrics, error) {
	m := doctorMetrics{dropped: map[string]float64{}}
	b, err := d.get(ctx, "http://"+d.endpoint+"/metrics")
	if err != nil {
		return m, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(b))
	if err != nil {
		return m, err
	}
	for _, s := range fams["traceport_exported_spans_total"].GetMetric() {
		m.exported += s.GetCounter().GetValue()
		for _, l := range s.GetLabel() {
			if l.GetName() == "exporter" && l.GetValue() == "none" && s.GetCounter().GetValue() > 0 {
				m.discarding = true
			}
		}
	}
	for _, s := range fams["traceport_dropped_spans_total"].GetMetric() {
		for _, l := range s.GetLabel() {
			if l.GetName() == "reason" {
				m.dropped[l.GetValue()] += s.GetCounter().GetValue()
			}
		}
	}
	for _, s := range fams["traceport_export_retries_total"].GetMetric() {
		m.retries += s.GetCounter().GetValue()
	}
	for _, s := range fams["traceport_queue_spans"].GetMetric() {
		m.queued += s.GetGauge().GetValue()
	}
	return m, nil
}

func (d *doctor) inJaeger(ctx context.Context, p *probe) bool {
	b, err := d.get(ctx, d.jaeger+"/api/traces/"+hex.EncodeToString(p.traceID))
	if err != nil {
		return false
	}
	var r struct {
		Data []struct {
			Spans []struct {
				SpanID string `json:"spanID"`
			} `json:"spans"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &r) != nil {
		return false
	}
	for _, t := range r.Data {
		for _, s := range t.Spans {
			if s.SpanID == hex.EncodeToString(p.spanID) {
				return true
			}
		}
	}
	return false
}

func randomID(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		fmt.Fprintln(os.Stderr, "traceport doctor:", err)
		os.Exit(1)
	}
	return b
}
