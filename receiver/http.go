package receiver

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/traceport/traceport/internal/bufpool"
	"github.com/traceport/traceport/translate"
)

const defaultRetryAfter = 5 * time.Second

// ServeHTTP routes one request. gRPC requests that reach net/http (an HTTP/2
// connection whose first request was plain HTTP) go to the gRPC server's
// ServeHTTP: slower than the native path, but correct per request.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		rc.grpc.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/api/v2/spans", "/api/v1/spans":
		rc.handleZipkin(w, r)
	case "/v1/traces":
		rc.handleOTLPHTTP(w, r)
	case "/metrics":
		rc.metrics.ServeHTTP(w, r)
	case "/healthz":
		w.Write([]byte("ok\n"))
	case "/readyz":
		if !rc.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	default:
		if rc.cfg.Pages != nil && (r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/ui/")) {
			rc.cfg.Pages.ServeHTTP(w, r)
			return
		}
		rc.rejectHTTP(w, protoUnknown, "", refuse(reasonNotFound,
			"no such endpoint %q: traceport serves POST /api/v2/spans, /api/v1/spans (Zipkin), POST /v1/traces (OTLP/HTTP) and gRPC", r.URL.Path))
	}
}

// mediaType is the Content-Type without parameters, lower-cased.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(ct))
	}
	return mt
}

// handleZipkin serves POST /api/v1/spans and /api/v2/spans. The decoder is
// picked by Content-Type and body, not by path: some Envoy configurations
// post v2 JSON to the v1 path. Success is 202, the only reply Envoy counts
// as delivered.
func (rc *Receiver) handleZipkin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rc.rejectHTTP(w, protoZipkin, "", refuse(reasonMethod, "method %s not allowed on %s: use POST", r.Method, r.URL.Path))
		return
	}
	var enc string
	switch mt := mediaType(r); mt {
	case "", "application/json", "text/plain":
		enc = encJSON
	case "application/x-protobuf", "application/protobuf":
		enc = encProto
	default:
		rc.rejectHTTP(w, protoZipkin, "", refuse(reasonUnsupportedMedia,
			"Content-Type %q is not supported on %s: use application/json or application/x-protobuf", mt, r.URL.Path))
		return
	}
	if ref := rc.admit(false); ref != nil {
		rc.rejectHTTP(w, protoZipkin, "", ref)
		return
	}
	hold := rc.budget.NewHold()
	defer hold.Free()
	body := getBody()
	defer putBody(body)
	if err := readBody(r, body, rc.cfg.MaxRequestBytes, &hold); err != nil {
		rc.rejectHTTP(w, protoZipkin, "", asRefusal(err))
		return
	}
	data, owned, counts, rejected, err := rc.decodeZipkin(enc, body.Bytes())
	if err != nil {
		rc.rejectHTTP(w, protoZipkin, "", refuse(reasonMalformed, "%v", err))
		return
	}
	rc.sources.rejectSpans(protoZipkin, reasonInvalidSpan, rejected.Spans)
	if len(counts) == 0 && rejected.Spans > 0 {
		release(owned)
		rc.rejectHTTP(w, protoZipkin, "", refuse(reasonInvalidSpan, "every span was invalid; first: %s", rejected.Reason))
		return
	}
	err = rc.ingestOwned(protoZipkin, enc, r.RemoteAddr, data, owned, counts, false)
	hold.Free() // queued or refused: the body is done with
	if err != nil {
		rc.rejectHTTP(w, protoZipkin, "", asRefusal(err))
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// decodeZipkin converts a Zipkin body to an OTLP request, written into a
// buffer of bufpool.Shared that owned holds (nil when the request did not
// fit it), for ingestOwned. The JSON decoder is picked by the body, not the
// path: some Envoy configurations post v2 to /api/v1/spans.
func (rc *Receiver) decodeZipkin(enc string, body []byte) (data []byte, owned mem.Buffer, counts []translate.ServiceCount, rejected translate.Rejected, err error) {
	size := len(body) + 512 // Envoy's JSON is ~92% of its size in OTLP: no regrowing
	if enc == encProto {
		size = 2 * len(body) // OTLP spells out what Zipkin proto packs (ids, endpoints)
	}
	p := bufpool.Shared.Get(size)
	dst := (*p)[:0]
	switch {
	case enc == encProto:
		data, counts, rejected, err = translate.ZipkinProtoToOTLP(body, rc.cfg.Zipkin, dst, nil)
	case translate.SniffZipkinJSON(body):
		data, counts, rejected, err = translate.ZipkinV1JSONToOTLP(body, rc.cfg.Zipkin, dst, nil)
	default:
		data, counts, rejected, err = translate.ZipkinV2JSONToOTLP(body, rc.cfg.Zipkin, dst, nil)
	}
	if err != nil || len(data) == 0 || cap(data) != cap(*p) || &data[:1][0] != &(*p)[:1][0] {
		bufpool.Shared.Put(p) // refused, empty, or grown into a new array
		return data, nil, counts, rejected, err
	}
	*p = data
	return data, mem.NewBuffer(p, bufpool.Shared), counts, rejected, nil
}

// handleOTLPHTTP serves POST /v1/traces. Protobuf bodies are validated and
// counted without being decoded, then forwarded byte for byte; JSON bodies
// are converted once. The reply uses the request's encoding.
func (rc *Receiver) handleOTLPHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rc.rejectHTTP(w, protoOTLPHTTP, "", refuse(reasonMethod, "method %s not allowed on /v1/traces: use POST", r.Method))
		return
	}
	var enc string
	switch mt := mediaType(r); mt {
	case "application/x-protobuf", "application/protobuf":
		enc = encProto
	case "application/json":
		enc = encJSON
	default:
		rc.rejectHTTP(w, protoOTLPHTTP, "", refuse(reasonUnsupportedMedia,
			"Content-Type %q is not supported on /v1/traces: use application/x-protobuf or application/json", mt))
		return
	}
	if ref := rc.admit(true); ref != nil {
		rc.rejectHTTP(w, protoOTLPHTTP, enc, ref)
		return
	}
	hold := rc.budget.NewHold()
	defer hold.Free()
	body := getBody()
	defer putBody(body)
	if err := readBody(r, body, rc.cfg.MaxRequestBytes, &hold); err != nil {
		rc.rejectHTTP(w, protoOTLPHTTP, enc, asRefusal(err))
		return
	}
	var (
		data     []byte
		owned    mem.Buffer
		counts   []translate.ServiceCount
		seen     translate.OTLPVisitor // the observer's view of the walk, if it watched
		rejected translate.Rejected
		err      error
	)
	if enc == encProto {
		data, counts, seen, rejected, err = rc.scanOTLP(protoOTLPHTTP, body.Bytes())
		if err == nil && rejected.Spans == 0 {
			// The body buffer goes back to its pool: the request is copied
			// into a pooled buffer that the exporter frees after export.
			p := bufpool.Shared.Get(len(data))
			copy(*p, data)
			data, owned = *p, mem.NewBuffer(p, bufpool.Shared)
		}
	} else {
		data, counts, _, err = translate.OTLPJSON(body.Bytes(), nil)
	}
	if err != nil {
		rc.rejectHTTP(w, protoOTLPHTTP, enc, refuse(reasonMalformed, "%v", err))
		return
	}
	rc.sources.rejectSpans(protoOTLPHTTP, reasonInvalidSpan, rejected.Spans)
	err = rc.ingestSeen(protoOTLPHTTP, enc, r.RemoteAddr, data, owned, counts, seen, true)
	hold.Free() // queued or refused: the body is done with
	if err != nil {
		rc.rejectHTTP(w, protoOTLPHTTP, enc, asRefusal(err))
		return
	}
	if enc == encJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write(translate.OTLPPartialSuccessJSON(int64(rejected.Spans), rejected.Reason))
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
	w.Write(translate.OTLPPartialSuccess(int64(rejected.Spans), rejected.Reason))
}

// rejectHTTP counts a refused request and answers it. OTLP/HTTP clients get
// a google.rpc.Status in their own encoding, as the OTLP spec asks; everyone
// else a one-line text message.
func (rc *Receiver) rejectHTTP(w http.ResponseWriter, protocol, enc string, ref *refusal) {
	rc.sources.rejectRequest(protocol, ref.reason)
	rc.log.Debug("request refused", "protocol", protocol, "reason", ref.reason, "msg", ref.msg)
	if ref.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((ref.retryAfter+time.Second-1)/time.Second)))
	}
	code := ref.httpStatus()
	if protocol == protoOTLPHTTP && enc != "" {
		st := status.New(replies[ref.reason].grpcCode, ref.msg).Proto()
		if enc == encJSON {
			b, _ := protojson.Marshal(st)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			w.Write(b)
			return
		}
		b, _ := proto.Marshal(st)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(code)
		w.Write(b)
		return
	}
	http.Error(w, ref.msg, code)
}
