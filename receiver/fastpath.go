package receiver

import (
	"errors"
	"net/http"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/traceport/traceport/internal/grpcraw"
	"github.com/traceport/traceport/transport"
)

// zipkinFastPath is the receiver as the transport's HTTP/1.1 fast path
// sees it: the same door, decoder, ingest and refusals as handleZipkin.
type zipkinFastPath struct{ rc *Receiver }

func (z zipkinFastPath) AdmitZipkin() bool { return z.rc.admit(false) == nil }

func (z zipkinFastPath) ServeZipkin(w http.ResponseWriter, req *transport.ZipkinRequest) bool {
	rc := z.rc
	data, owned, counts, rejected, err := rc.decodeZipkin(req.Encoding, req.Body)
	if err != nil || rejected.Spans > 0 {
		release(owned)
		return false // handleZipkin decodes it again, counts and answers
	}
	if err := rc.ingestOwned(protoZipkin, req.Encoding, req.Client, data, owned, counts, false); err != nil {
		rc.rejectHTTP(w, protoZipkin, "", asRefusal(err))
	}
	return true
}

func (z zipkinFastPath) RejectZipkin(w http.ResponseWriter, err error) {
	z.rc.rejectHTTP(w, protoZipkin, "", transportRefusal(err))
}

// unaryFastPath is the receiver as the transport's gRPC fast path sees it:
// the handlers grpc.Server calls (exportOTLP, postJaeger), and its refusals.
type unaryFastPath struct{ rc *Receiver }

func (u unaryFastPath) Serves(method string) bool {
	return method == grpcraw.OTLPExport || method == grpcraw.JaegerPostSpans
}

func (u unaryFastPath) Unknown(method string) error { return u.rc.unknownMethod(method) }

func (u unaryFastPath) Admit(method string) error { return u.rc.admitGRPC(grpcProtocol(method)) }

// Decode unmarshals a Jaeger request as grpc.Server would, as soon as it is
// in; OTLP stays bytes.
func (u unaryFastPath) Decode(method string, msg []byte) (any, error) {
	if method != grpcraw.JaegerPostSpans {
		return nil, nil
	}
	req := &api_v2.PostSpansRequest{}
	if err := req.Unmarshal(msg); err != nil { // copies what it keeps
		return nil, status.Errorf(codes.Internal, "grpc: failed to unmarshal the received message: %v", err)
	}
	return req, nil
}

func (u unaryFastPath) Serve(method, client string, decoded any, msg []byte, buf mem.Buffer) ([]byte, error) {
	if req, ok := decoded.(*api_v2.PostSpansRequest); ok {
		return nil, u.rc.postJaeger(client, req)
	}
	return u.rc.exportOTLP(client, msg, buf)
}

func (u unaryFastPath) Refuse(method string, err error) error {
	if errors.Is(err, transport.ErrOverBudget) {
		err = overBudget()
	}
	return u.rc.grpcRefusal(grpcProtocol(method), err)
}

func (u unaryFastPath) Reject(method string, err error) {
	u.rc.sources.rejectRequest(grpcProtocol(method), transportRefusal(err).reason)
}

func grpcProtocol(method string) string {
	if method == grpcraw.JaegerPostSpans {
		return protoJaegerGRPC
	}
	return protoOTLPGRPC
}

// transportRefusal is the refusal for a request the transport could not
// read whole.
func transportRefusal(err error) *refusal {
	switch {
	case errors.Is(err, transport.ErrOverBudget):
		return overBudget()
	case errors.Is(err, transport.ErrMalformed):
		return refuse(reasonMalformed, "%v", err)
	}
	return refuse(reasonReadBody, "%v", err) // ErrCutShort, *ReadError
}

// overBudget is the refusal when a charge does not fit: retryable, since the
// bytes of other requests are freed as soon as they are queued.
func overBudget() *refusal {
	return &refusal{
		reason:     reasonMemoryLimit,
		msg:        "traceport holds its in-flight request budget (a quarter of --memory-limit) in requests being read; retry later",
		retryAfter: time.Second,
	}
}
