package bench

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"time"

	"github.com/jaegertracing/jaeger-idl/model/v1"
	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	zipkinproto "github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// baseMicros is the start time of every generated trace (2025-12-18, as in
// the shared Envoy test data): fixed so that payloads, and golden files made
// from them, depend on the seed only.
const baseMicros = 1766022480000000

// rng is splitmix64: deterministic per seed, cheap, and good enough for ids.
type rng uint64

func (r *rng) next() uint64 {
	*r += 0x9e3779b97f4a7c15
	z := uint64(*r)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *rng) id() uint64 {
	for {
		if v := r.next(); v != 0 {
			return v
		}
	}
}

func (r *rng) pick(list []string) string { return list[r.next()%uint64(len(list))] }

// upstream is one mesh service the ingress gateway calls.
type upstream struct{ name, namespace, revision, ip, pod string }

var upstreams = []upstream{
	{"auth-api", "auth", "v1", "10.244.2.31", "auth-api-6d9f7c8b4-mz8kp"},
	{"orders", "shop", "v3", "10.244.3.17", "orders-5b8c9d7f6-k2x9q"},
	{"payments", "shop", "v2", "10.244.1.44", "payments-7f6d5c4b3-p8r7t"},
	{"catalog", "shop", "v1", "10.244.2.58", "catalog-84c7b6d95-w4n3j"},
	{"profile", "users", "v5", "10.244.3.90", "profile-6c5b4a398-h6g5f"},
}

var apiPaths = []string{
	"/api/v1/auth/login", "/api/v1/orders/84127?expand=items,shipping", "/api/v2/payments/authorize",
	"/api/v1/catalog/products?category=shoes&page=3", "/api/v1/users/me/profile",
}

var userAgents = []string{
	"okhttp/4.12.0", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15",
	"Dalvik/2.1.0 (Linux; U; Android 14; SM-S918N Build/UP1A.231005.007)",
}

// envoySpan is one Zipkin span as an Istio sidecar reports it; rendered to
// JSON or proto3 so both encodings carry the same spans.
type envoySpan struct {
	traceHi, traceLo, id, parent uint64
	server                       bool
	name                         string
	ts, dur                      uint64
	service, ip                  string
	tags                         [][2]string // sorted by key, as Envoy writes them
}

// envoySpans makes n spans as CLIENT (ingress gateway) / SERVER (mesh
// service) pairs sharing a 128-bit trace id; an odd n ends with a CLIENT.
func envoySpans(n int, seed uint64) []envoySpan {
	r := rng(seed)
	spans := make([]envoySpan, 0, n)
	for i := 0; len(spans) < n; i++ {
		up := upstreams[r.next()%uint64(len(upstreams))]
		hi, lo := r.id(), r.id()
		clientID, serverID := r.id(), r.id()
		ts := baseMicros + seed%1000000*1000 + uint64(i)*1000
		dur := 1000 + r.next()%9000
		reqID := uuid(&r)
		path := r.pick(apiPaths)
		ua := r.pick(userAgents)
		status, flags := "200", "-"
		if r.next()%50 == 0 {
			status, flags = "503", "UF"
		}
		host := up.name + "." + up.namespace + ".svc.cluster.local"
		cluster := "outbound|8000||" + host
		name := host + ":8000/*"
		reqSize := strconv.FormatUint(64+r.next()%2000, 10)
		respSize := strconv.FormatUint(128+r.next()%8000, 10)
		gw := "10.244.1.12"
		tags := func(server bool) [][2]string {
			t := [][2]string{
				{"component", "proxy"},
				{"downstream_cluster", "-"},
				{"guid:x-request-id", reqID},
				{"http.method", "POST"},
				{"http.protocol", "HTTP/1.1"},
				{"http.status_code", status},
				{"http.url", "https://api.example.com" + path},
				{"istio.canonical_revision", "latest"},
				{"istio.canonical_service", "istio-ingressgateway"},
				{"istio.mesh_id", "cluster.local"},
				{"istio.namespace", "istio-system"},
				{"node_id", "router~" + gw + "~istio-ingressgateway-7c9d8f6b5-qx2lm.istio-system~istio-system.svc.cluster.local"},
				{"peer.address", "10.244.0.1"},
				{"request_size", reqSize},
				{"response_flags", flags},
				{"response_size", respSize},
				{"upstream_cluster", cluster},
				{"upstream_cluster.name", cluster},
				{"user_agent", ua},
				{"zone", "ap-northeast-2a"},
			}
			if server {
				t[6][1] = "http://" + host + ":8000" + path
				t[7][1] = up.revision
				t[8][1] = up.name
				t[10][1] = up.namespace
				t[11][1] = "sidecar~" + up.ip + "~" + up.pod + "." + up.namespace + "~" + up.namespace + ".svc.cluster.local"
				t[12][1] = gw
				t[16][1] = "inbound|8000||"
				t[17][1] = "inbound|8000||"
				t[19][1] = "ap-northeast-2b"
			}
			if status == "503" {
				// Envoy marks 5xx with error=true; keys stay sorted.
				t = append(t[:2:2], append([][2]string{{"error", "true"}}, t[2:]...)...)
			}
			return t
		}
		spans = append(spans, envoySpan{
			traceHi: hi, traceLo: lo, id: clientID, name: name, ts: ts, dur: dur,
			service: "istio-ingressgateway.istio-system", ip: gw, tags: tags(false),
		})
		if len(spans) < n {
			spans = append(spans, envoySpan{
				traceHi: hi, traceLo: lo, id: serverID, parent: clientID, server: true, name: name,
				ts: ts + 700, dur: dur - 700, service: up.name + "." + up.namespace, ip: up.ip, tags: tags(true),
			})
		}
	}
	return spans
}

func uuid(r *rng) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], r.next())
	binary.BigEndian.PutUint64(b[8:], r.next())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, 36)
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out = append(out, '-')
		}
		out = append(out, hexd[c>>4], hexd[c&15])
	}
	return string(out)
}

func appendHex(b []byte, v uint64) []byte {
	const hexd = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		b = append(b, hexd[(v>>uint(shift))&15])
	}
	return b
}

// EnvoyZipkinJSON returns a Zipkin v2 JSON body of spans spans shaped as
// Envoy's HTTP_JSON reporter writes them in an Istio mesh: compact, all tag
// values strings, ~1.06 KB per span. Different seeds give different ids.
// Values are plain ASCII, so they are written without escaping.
func EnvoyZipkinJSON(spans int, seed uint64) []byte {
	b := make([]byte, 0, spans*1100+2)
	b = append(b, '[')
	for i, s := range envoySpans(spans, seed) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"traceId":"`...)
		b = appendHex(appendHex(b, s.traceHi), s.traceLo)
		b = append(b, `","id":"`...)
		b = appendHex(b, s.id)
		if s.parent != 0 {
			b = append(b, `","parentId":"`...)
			b = appendHex(b, s.parent)
		}
		if s.server {
			b = append(b, `","kind":"SERVER","name":"`...)
		} else {
			b = append(b, `","kind":"CLIENT","name":"`...)
		}
		b = append(b, s.name...)
		b = append(b, `","timestamp":`...)
		b = strconv.AppendUint(b, s.ts, 10)
		b = append(b, `,"duration":`...)
		b = strconv.AppendUint(b, s.dur, 10)
		b = append(b, `,"localEndpoint":{"serviceName":"`...)
		b = append(b, s.service...)
		b = append(b, `","ipv4":"`...)
		b = append(b, s.ip...)
		b = append(b, `"},"tags":{`...)
		for j, kv := range s.tags {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, kv[0]...)
			b = append(b, `":"`...)
			b = append(b, kv[1]...)
			b = append(b, '"')
		}
		b = append(b, "}}"...)
	}
	return append(b, ']')
}

// EnvoyZipkinProto returns the spans of EnvoyZipkinJSON(spans, seed) as a
// zipkin2 proto3 ListOfSpans, ids big-endian as the Zipkin spec says.
func EnvoyZipkinProto(spans int, seed uint64) []byte {
	list := &zipkinproto.ListOfSpans{}
	for _, s := range envoySpans(spans, seed) {
		p := &zipkinproto.Span{
			TraceId:   binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, s.traceHi), s.traceLo),
			Id:        binary.BigEndian.AppendUint64(nil, s.id),
			Kind:      zipkinproto.Span_CLIENT,
			Name:      s.name,
			Timestamp: s.ts,
			Duration:  s.dur,
			LocalEndpoint: &zipkinproto.Endpoint{
				ServiceName: s.service,
				Ipv4:        netip.MustParseAddr(s.ip).AsSlice(),
			},
			Tags: make(map[string]string, len(s.tags)),
		}
		if s.server {
			p.Kind = zipkinproto.Span_SERVER
			p.ParentId = binary.BigEndian.AppendUint64(nil, s.parent)
		}
		for _, kv := range s.tags {
			p.Tags[kv[0]] = kv[1]
		}
		list.Spans = append(list.Spans, p)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(list)
	if err != nil {
		panic("bench: marshal zipkin proto: " + err.Error()) // cannot happen for these messages
	}
	return b
}

// sdkService is one instrumented process of the SDK-shaped workloads.
type sdkService struct{ name, version, instance, host string }

var sdkServices = []sdkService{
	{"checkout", "1.14.2", "3f6c2a9e-5b1d-4c8e-9f0a-7d2e1b4c6a80", "checkout-7d9f8c6b5-x2k4m"},
	{"cart", "2.3.0", "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d", "cart-5c4b3a297-q9w8e"},
	{"shipping", "0.9.7", "9e8d7c6b-5a49-4382-a1b0-c9d8e7f6a5b4", "shipping-6b5a49387-r7t6y"},
}

var sdkRoutes = [][2]string{
	{"/api/orders/{id}", "/api/orders/84127"},
	{"/api/cart/items", "/api/cart/items"},
	{"/api/shipping/quote", "/api/shipping/quote"},
	{"/api/users/{id}/addresses", "/api/users/5521/addresses"},
}

// sdkSpan is one span as an OpenTelemetry SDK's HTTP instrumentation
// records it, rendered to OTLP or Jaeger so both carry the same spans.
type sdkSpan struct {
	traceHi, traceLo, id, parent uint64
	server                       bool
	name                         string
	start, end                   uint64 // ns
	attrs                        []sdkAttr
}

type sdkAttr struct {
	key string
	str string
	num int64
	isN bool
}

// sdkBatch makes n spans of one service as SERVER/CLIENT pairs (the handler
// and its outgoing call), 10 attributes each.
func sdkBatch(n int, seed uint64) (sdkService, []sdkSpan) {
	r := rng(seed)
	svc := sdkServices[seed%uint64(len(sdkServices))]
	spans := make([]sdkSpan, 0, n)
	for i := 0; len(spans) < n; i++ {
		hi, lo := r.id(), r.id()
		route := sdkRoutes[r.next()%uint64(len(sdkRoutes))]
		start := (baseMicros+seed%1000000*1000+uint64(i)*1000)*1000 + r.next()%1000
		dur := 1000000 + r.next()%9000000
		status := int64(200)
		if r.next()%50 == 0 {
			status = 503
		}
		srv := sdkSpan{
			traceHi: hi, traceLo: lo, id: r.id(), server: true, name: "GET " + route[0],
			start: start, end: start + dur,
			attrs: []sdkAttr{
				{key: "http.request.method", str: "GET"},
				{key: "url.path", str: route[1]},
				{key: "url.scheme", str: "http"},
				{key: "http.route", str: route[0]},
				{key: "http.response.status_code", num: status, isN: true},
				{key: "server.address", str: svc.name},
				{key: "server.port", num: 8080, isN: true},
				{key: "network.protocol.version", str: "1.1"},
				{key: "client.address", str: "10.244.1.12"},
				{key: "user_agent.original", str: "okhttp/4.12.0 shop-android/5.31.0"},
			},
		}
		spans = append(spans, srv)
		if len(spans) < n {
			spans = append(spans, sdkSpan{
				traceHi: hi, traceLo: lo, id: r.id(), parent: srv.id, name: "GET",
				start: start + 100000, end: start + dur - 100000,
				attrs: []sdkAttr{
					{key: "http.request.method", str: "GET"},
					{key: "url.full", str: "http://inventory.shop.svc.cluster.local:8080/api/stock"},
					{key: "server.address", str: "inventory"},
					{key: "server.port", num: 8080, isN: true},
					{key: "http.response.status_code", num: status, isN: true},
					{key: "network.protocol.version", str: "1.1"},
					{key: "network.peer.address", str: "10.96.12.7"},
					{key: "network.peer.port", num: 8080, isN: true},
					{key: "http.request.resend_count", num: 0, isN: true},
					{key: "user_agent.original", str: "Go-http-client/1.1"},
				},
			})
		}
	}
	return svc, spans
}

func sdkResource(svc sdkService) []sdkAttr {
	return []sdkAttr{
		{key: "service.name", str: svc.name},
		{key: "service.version", str: svc.version},
		{key: "service.instance.id", str: svc.instance},
		{key: "deployment.environment.name", str: "production"},
		{key: "host.name", str: svc.host},
		{key: "telemetry.sdk.language", str: "go"},
		{key: "telemetry.sdk.name", str: "opentelemetry"},
		{key: "telemetry.sdk.version", str: "1.47.0"},
	}
}

func putAttrs(m pcommon.Map, attrs []sdkAttr) {
	m.EnsureCapacity(len(attrs))
	for _, a := range attrs {
		if a.isN {
			m.PutInt(a.key, a.num)
		} else {
			m.PutStr(a.key, a.str)
		}
	}
}

func traceID(hi, lo uint64) (id [16]byte) {
	binary.BigEndian.PutUint64(id[:8], hi)
	binary.BigEndian.PutUint64(id[8:], lo)
	return id
}

func spanID(v uint64) (id [8]byte) {
	binary.BigEndian.PutUint64(id[:], v)
	return id
}

// sdkTraces is SDKOTLP's content as pdata.
func sdkTraces(spans int, seed uint64) ptrace.Traces {
	svc, batch := sdkBatch(spans, seed)
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	putAttrs(rs.Resource().Attributes(), sdkResource(svc))
	rs.SetSchemaUrl("https://opentelemetry.io/schemas/1.26.0")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	ss.Scope().SetVersion("0.63.0")
	ss.Spans().EnsureCapacity(len(batch))
	for _, s := range batch {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(traceID(s.traceHi, s.traceLo))
		sp.SetSpanID(spanID(s.id))
		if s.parent != 0 {
			sp.SetParentSpanID(spanID(s.parent))
		}
		sp.SetName(s.name)
		sp.SetKind(ptrace.SpanKindClient)
		if s.server {
			sp.SetKind(ptrace.SpanKindServer)
		}
		sp.SetStartTimestamp(pcommon.Timestamp(s.start))
		sp.SetEndTimestamp(pcommon.Timestamp(s.end))
		putAttrs(sp.Attributes(), s.attrs)
		if s.attrs[4].num >= 500 {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
	return td
}

// SDKOTLP returns a serialized OTLP ExportTraceServiceRequest of spans spans
// from one service, shaped as an OpenTelemetry SDK's HTTP instrumentation
// exports them: 8 resource attributes, 10 attributes per span, ~430 B per
// span at 100 spans per request. It is serialized by protobuf-go, as the Go
// SDK's exporters do (and the other SDKs alike): fields in ascending order,
// trace_id first. pdata writes them in reverse, as only a Collector sends.
func SDKOTLP(spans int, seed uint64) []byte {
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(sdkTraces(spans, seed))
	if err != nil {
		panic("bench: marshal otlp: " + err.Error()) // cannot happen for these messages
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		panic("bench: otlp from pdata: " + err.Error())
	}
	if b, err = (proto.MarshalOptions{Deterministic: true}).Marshal(&req); err != nil {
		panic("bench: marshal otlp: " + err.Error())
	}
	return b
}

// SDKOTLPJSON returns SDKOTLP's spans in OTLP/JSON, as sent to /v1/traces
// with Content-Type application/json.
func SDKOTLPJSON(spans int, seed uint64) []byte {
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(sdkTraces(spans, seed))
	if err != nil {
		panic("bench: marshal otlp json: " + err.Error())
	}
	return b
}

// JaegerPostSpans returns a serialized jaeger api_v2 PostSpansRequest
// carrying SDKOTLP's spans: the resource as the batch's process, attributes
// as tags.
func JaegerPostSpans(spans int, seed uint64) []byte {
	svc, batch := sdkBatch(spans, seed)
	tags := func(attrs []sdkAttr) []model.KeyValue {
		kv := make([]model.KeyValue, 0, len(attrs))
		for _, a := range attrs {
			if a.isN {
				kv = append(kv, model.Int64(a.key, a.num))
			} else {
				kv = append(kv, model.String(a.key, a.str))
			}
		}
		return kv
	}
	req := api_v2.PostSpansRequest{Batch: model.Batch{
		Process: &model.Process{ServiceName: svc.name, Tags: tags(sdkResource(svc)[1:])},
	}}
	for _, s := range batch {
		sp := &model.Span{
			TraceID:       model.NewTraceID(s.traceHi, s.traceLo),
			SpanID:        model.NewSpanID(s.id),
			OperationName: s.name,
			Flags:         model.SampledFlag,
			StartTime:     time.Unix(0, int64(s.start)).UTC(),
			Duration:      time.Duration(s.end - s.start),
			Tags:          tags(s.attrs),
		}
		kind := "client"
		if s.server {
			kind = "server"
		}
		sp.Tags = append(sp.Tags, model.String("span.kind", kind))
		if s.parent != 0 {
			sp.References = []model.SpanRef{model.NewChildOfRef(sp.TraceID, model.NewSpanID(s.parent))}
		}
		req.Batch.Spans = append(req.Batch.Spans, sp)
	}
	b, err := req.Marshal()
	if err != nil {
		panic("bench: marshal jaeger: " + err.Error())
	}
	return b
}
