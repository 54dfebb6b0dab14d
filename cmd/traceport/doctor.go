package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/traceport/traceport/receiver"
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
}

// runDoctor is `traceport doctor`: one probe span over each path, then
// traceport's own /api/sources and /metrics (and optionally Jaeger's query
// API) say how far each got. Exit 0 when every path works, 1 when one does
// not, 2 on bad usage.
func runDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("traceport doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "traceport's HOST:PORT, as the pods send to it (required)")
	jaegerQuery := fs.String("jaeger-query", "", "Jaeger query base URL (e.g. http://jaeger-query:16686) to check the probes landed")
	timeout := fs.Duration("timeout", 10*time.Second, "time for each probe to be sent, and for all of them to be counted and exported")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "traceport doctor: send one probe span over each path (Zipkin JSON, Zipkin proto, OTLP gRPC, OTLP HTTP) and say how far it got.\n\nUsage: traceport doctor --endpoint HOST:PORT [--jaeger-query URL] [--timeout D]\n\nProbe spans have service.name %q and the tag traceport.probe=true.\n\n", receiver.ProbeService)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if _, _, err := net.SplitHostPort(*endpoint); err != nil {
		fmt.Fprintf(stderr, "traceport doctor: --endpoint %q: want HOST:PORT\n", *endpoint)
		return 2
	}
	d := &doctor{endpoint: *endpoint, jaeger: strings.TrimSuffix(*jaegerQuery, "/"), timeout: *timeout,
		http: &http.Client{Timeout: *timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}}
	return d.run(stdout)
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
			p.cause = d.explain(pp, p.err)
		}
		probes[i] = p
	}

	// Wait until every accepted probe is counted and exported, or time is up.
	var mAfter doctorMetrics
	deadline := time.Now().Add(d.timeout)
	for {
		after, err := d.sources(ctx)
		if err == nil && sourcesErr == nil {
			for _, p := range probes {
				p.arrived = p.err == nil && probeCount(after, p.path) > probeCount(before, p.path)
			}
		}
		mAfter, err = d.metrics(ctx)
		done := err == nil && metricsErr == nil
		accepted := 0
		for _, p := range probes {
			if p.err == nil {
				accepted++
			}
			if p.err == nil && !p.arrived && sourcesErr == nil {
				done = false
			}
		}
		exported := done && mAfter.exported-mBefore.exported >= float64(accepted)
		for _, p := range probes {
			p.exported = p.err == nil && exported
		}
		if d.jaeger != "" && exported {
			for _, p := range probes {
				if p.err == nil && !p.inJaeger {
					p.inJaeger = d.inJaeger(ctx, p)
				}
				if p.err == nil && !p.inJaeger {
					exported = false
				}
			}
		}
		if exported || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

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

// explain turns a send error into its most likely cause.
func (d *doctor) explain(pp probePath, err error) string {
	var he *httpStatusError
	if errors.As(err, &he) {
		switch he.code {
		case http.StatusUnsupportedMediaType:
			return fmt.Sprintf("HTTP 415: wrong content type: %s does not accept %s (%s)", d.endpoint, pp.how, he.body)
		case http.StatusNotFound:
			return fmt.Sprintf("HTTP 404: %s does not serve %s: not traceport, or a proxy rewrites the path", d.endpoint, pp.how)
		case http.StatusRequestEntityTooLarge:
			return fmt.Sprintf("HTTP 413: the probe is over --max-request-bytes at %s", d.endpoint)
		case http.StatusTooManyRequests:
			return "HTTP 429: traceport's export queue is full: traceport → Jaeger is too slow or failing (see traceport_dropped_spans_total)"
		case http.StatusServiceUnavailable:
			return "HTTP 503: traceport is shutting down, or a proxy has no healthy upstream"
		}
		return fmt.Sprintf("HTTP %d: %s", he.code, he.body)
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		switch st.Code() {
		case codes.Unimplemented:
			return fmt.Sprintf("gRPC Unimplemented: %s does not serve OTLP gRPC: not traceport, or a proxy that only speaks HTTP/1.1", d.endpoint)
		case codes.ResourceExhausted:
			return "gRPC RESOURCE_EXHAUSTED: traceport's export queue is full: traceport → Jaeger is too slow or failing"
		case codes.Unavailable, codes.DeadlineExceeded:
			return d.explainNet(pp, errors.New(st.Message()), st.Code() == codes.DeadlineExceeded)
		}
		return fmt.Sprintf("gRPC %s: %s", st.Code(), st.Message())
	}
	return d.explainNet(pp, err, false)
}

func (d *doctor) explainNet(pp probePath, err error, timedOut bool) string {
	var dnsErr *net.DNSError
	msg := err.Error()
	host, port, _ := net.SplitHostPort(d.endpoint)
	var ne net.Error
	switch {
	case errors.As(err, &dnsErr) || strings.Contains(msg, "no such host"):
		return fmt.Sprintf("cannot resolve %s: wrong Service name or namespace (%v)", host, err)
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connection refused"):
		return fmt.Sprintf("connection refused: nothing listens on %s, or a NetworkPolicy or Service port blocks port %s", d.endpoint, port)
	case timedOut || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() || strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline"):
		return fmt.Sprintf("connection timed out: a NetworkPolicy or Service port blocks %s (packets dropped)", d.endpoint)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset") || strings.Contains(msg, "closed"):
		return fmt.Sprintf("connection closed before a reply: something on the way to %s (a proxy, the pod's sidecar, a NetworkPolicy) drops %s requests", d.endpoint, pp.name)
	}
	return fmt.Sprintf("send failed: %v", err)
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
	code int
	body string
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
		return &httpStatusError{code: resp.StatusCode, body: first}
	}
	return nil
}

func (d *doctor) sendZipkinJSON(ctx context.Context, p *probe) error {
	now := time.Now()
	body, _ := json.Marshal([]map[string]any{{
		"traceId": hex.EncodeToString(p.traceID), "id": hex.EncodeToString(p.spanID), "kind": "SERVER",
		"name": "traceport doctor probe", "timestamp": now.UnixMicro(), "duration": 1,
		"localEndpoint": map[string]string{"serviceName": receiver.ProbeService},
		"tags":          map[string]string{"traceport.probe": "true", "traceport.probe.path": p.path.name},
	}})
	return d.post(ctx, "/api/v2/spans", "application/json", body, http.StatusAccepted)
}

func (d *doctor) sendZipkinProto(ctx context.Context, p *probe) error {
	now := time.Now()
	body, err := proto.Marshal(&zipkinproto.ListOfSpans{Spans: []*zipkinproto.Span{{
		TraceId: p.traceID, Id: p.spanID, Kind: zipkinproto.Span_SERVER, Name: "traceport doctor probe",
		Timestamp: uint64(now.UnixMicro()), Duration: 1,
		LocalEndpoint: &zipkinproto.Endpoint{ServiceName: receiver.ProbeService},
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
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", receiver.ProbeService)}},
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
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return b, nil
}

func (d *doctor) sources(ctx context.Context) (receiver.SourcesReport, error) {
	var rep receiver.SourcesReport
	b, err := d.get(ctx, "http://"+d.endpoint+"/api/sources")
	if err == nil {
		err = json.Unmarshal(b, &rep)
	}
	return rep, err
}

func probeCount(rep receiver.SourcesReport, pp probePath) int64 {
	for _, s := range rep.Sources {
		if s.Service == receiver.ProbeService && s.Protocol == pp.protocol && s.Encoding == pp.encoding {
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
