package receiver

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"time"

	"github.com/jaegertracing/jaeger-idl/proto-gen/api_v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP clients may gzip their requests
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/traceport/traceport/internal/bufpool"
	"github.com/traceport/traceport/internal/grpcraw"
	"github.com/traceport/traceport/translate"
)

// newGRPCServer builds the gRPC server shared by the native per-connection
// path and the net/http fallback.
func (rc *Receiver) newGRPCServer() *grpc.Server {
	s := grpc.NewServer(
		grpc.ForceServerCodecV2(grpcraw.Codec{}),
		grpc.MaxRecvMsgSize(int(rc.cfg.MaxRequestBytes)),
		grpc.MaxConcurrentStreams(rc.cfg.MaxStreams),
		// Reused workers keep their grown stacks: a goroutine per stream
		// spent ~13% of the CPU of 10-span requests growing its stack.
		// When every worker is busy, grpc runs the stream on a new
		// goroutine (which grows its stack again), so there are enough
		// for many connections' concurrent streams: idle ones cost a
		// parked goroutine each.
		grpc.NumStreamWorkers(uint32(max(64, 16*runtime.GOMAXPROCS(0)))),
		grpc.ConnectionTimeout(rc.cfg.ReadHeaderTimeout),
		grpc.MaxHeaderListSize(64<<10),
		// Clients pinging more often than this are cut off (HTTP/2 abuse).
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: rc.cfg.IdleTimeout}),
		experimental.BufferPool(bufpool.Shared),
		// Reads of up to 64 KiB (default 32): fewer syscalls for SDK
		// batches (~43 KB per 100 spans), at 64 KiB per connection.
		grpc.ReadBufferSize(64<<10),
		// Fixed flow-control windows, wide enough for any SDK batch:
		// grpc's dynamic ones (which grow to 16 MiB anyway) cost a BDP
		// ping round trip per burst of DATA.
		grpc.StaticStreamWindowSize(1<<20),
		grpc.StaticConnWindowSize(4<<20),
		grpc.UnknownServiceHandler(rc.unknownGRPC),
	)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Export", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			return rc.otlpExport(ctx, dec)
		}}},
	}, rc)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: "jaeger.api_v2.CollectorService",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "PostSpans", Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			return rc.jaegerPostSpans(ctx, dec)
		}}},
	}, rc)
	return s
}

// admitGRPC is the door for gRPC requests, in the handler before the
// message is read: a refused request costs a round trip, not its body.
// (Not an InTapHandle: grpc-go never cancels the context of a stream its tap
// refuses, so each refusal kept a deadline timer alive until the client's
// timeout, and a refusal flood held ~100 MB of them.)
func (rc *Receiver) admitGRPC(protocol string) error {
	ref := rc.admit(true)
	if ref == nil && rc.budgetSpent() {
		ref = overBudget()
	}
	if ref != nil {
		rc.sources.rejectRequest(protocol, ref.reason)
		return ref.grpcStatus().Err()
	}
	return nil
}

// budgetSpent: the in-flight byte budget has no room left for a frame of
// a new request; bytes of requests already admitted are not affected.
func (rc *Receiver) budgetSpent() bool {
	return rc.budget.NoRoomForFrame()
}

func (rc *Receiver) unknownGRPC(_ any, stream grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(stream)
	return rc.unknownMethod(method)
}

// unknownMethod counts and refuses a gRPC method traceport does not serve.
func (rc *Receiver) unknownMethod(method string) error {
	ref := refuse(reasonNotFound, "unknown gRPC method %s: traceport serves %s and %s", method, grpcraw.OTLPExport, grpcraw.JaegerPostSpans)
	rc.sources.rejectRequest(protoUnknown, ref.reason)
	return ref.grpcStatus().Err()
}

// grpcRefusal counts a refused gRPC request and turns it into its status.
func (rc *Receiver) grpcRefusal(protocol string, err error) error {
	if _, ok := status.FromError(err); ok && !isRefusal(err) {
		// An error from grpc itself while reading the message: too large
		// (ResourceExhausted), bad compression, client gone.
		st, _ := status.FromError(err)
		rc.sources.rejectRequest(protocol, readReason(st))
		return err
	}
	ref := asRefusal(err)
	rc.sources.rejectRequest(protocol, ref.reason)
	rc.log.Debug("request refused", "protocol", protocol, "reason", ref.reason, "msg", ref.msg)
	return ref.grpcStatus().Err()
}

// readReason names what went wrong reading a gRPC request's message, from
// grpc-go's status (the fast path gives the same ones).
func readReason(st *status.Status) reason {
	switch msg := st.Message(); {
	case st.Code() == codes.ResourceExhausted:
		return reasonTooLarge
	case strings.Contains(msg, "received no request message"):
		return reasonMalformed // a unary request with no message at all
	case msg == "unexpected EOF":
		return reasonReadBody // the client ended the request mid-message
	case st.Code() == codes.Internal, st.Code() == codes.Unimplemented:
		return reasonDecompress
	}
	return reasonReadBody
}

func (rc *Receiver) otlpExport(ctx context.Context, dec func(any) error) (any, error) {
	if err := rc.admitGRPC(protoOTLPGRPC); err != nil {
		return nil, err
	}
	var req grpcraw.Message
	if err := dec(&req); err != nil {
		return nil, rc.grpcRefusal(protoOTLPGRPC, err)
	}
	resp, err := rc.exportOTLP(peerAddr(ctx), req.Data, req.Buf)
	if err != nil {
		return nil, err
	}
	return &grpcraw.Message{Data: resp}, nil
}

// exportOTLP validates, counts and forwards one OTLP/gRPC request, data,
// held in buf (which it frees or hands on), for both gRPC paths. It returns
// the response message, or a gRPC status error already counted.
func (rc *Receiver) exportOTLP(client string, data []byte, buf mem.Buffer) ([]byte, error) {
	data, counts, rejected, err := scanOTLP(data)
	owned := buf
	if err != nil || rejected.Spans > 0 { // refused, or forwarded as a filtered copy
		buf.Free()
		owned = nil
	}
	if err != nil {
		return nil, rc.grpcRefusal(protoOTLPGRPC, refuse(reasonMalformed, "%v", err))
	}
	rc.sources.rejectSpans(protoOTLPGRPC, reasonInvalidSpan, rejected.Spans)
	if err := rc.ingestOwned(protoOTLPGRPC, encProto, client, data, owned, counts, true); err != nil {
		return nil, rc.grpcRefusal(protoOTLPGRPC, err)
	}
	return translate.OTLPPartialSuccess(int64(rejected.Spans), rejected.Reason), nil
}

func (rc *Receiver) jaegerPostSpans(ctx context.Context, dec func(any) error) (any, error) {
	if err := rc.admitGRPC(protoJaegerGRPC); err != nil {
		return nil, err
	}
	var req api_v2.PostSpansRequest
	if err := dec(&req); err != nil {
		return nil, rc.grpcRefusal(protoJaegerGRPC, err)
	}
	if err := rc.postJaeger(peerAddr(ctx), &req); err != nil {
		return nil, err
	}
	return &api_v2.PostSpansResponse{}, nil
}

// postJaeger translates, counts and forwards one PostSpans request, for
// both gRPC paths. Errors are gRPC statuses, already counted.
func (rc *Receiver) postJaeger(client string, req *api_v2.PostSpansRequest) error {
	td, rejected := translate.JaegerBatch(&req.Batch)
	rc.sources.rejectSpans(protoJaegerGRPC, reasonInvalidSpan, rejected.Spans)
	if td.SpanCount() == 0 && rejected.Spans > 0 {
		return rc.grpcRefusal(protoJaegerGRPC, refuse(reasonInvalidSpan, "every span was invalid; first: %s", rejected.Reason))
	}
	data, counts, _ := translate.TracesToOTLP(td, nil, nil)
	if err := rc.ingest(protoJaegerGRPC, encProto, client, data, counts, true); err != nil {
		return rc.grpcRefusal(protoJaegerGRPC, err)
	}
	return nil
}

func isRefusal(err error) bool {
	var r *refusal
	return errors.As(err, &r)
}

// peerAddr is the gRPC client's address, for the sources report.
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
