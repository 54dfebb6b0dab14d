package translate

import (
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// OTLPJSON converts an OTLP/HTTP JSON body to a serialized
// ExportTraceServiceRequest, so that every OTLP request is forwarded in one
// wire format, and appends the spans per service to counts as ScanOTLP does.
// It decodes with pdata's JSON unmarshaler, the one the Collector's OTLP/HTTP
// receiver uses, so it accepts and refuses what the Collector does.
func OTLPJSON(body []byte, counts []ServiceCount) (proto []byte, _ []ServiceCount, spans int, err error) {
	var u ptrace.JSONUnmarshaler
	td, err := u.UnmarshalTraces(body)
	if err != nil {
		return nil, counts, 0, err
	}
	var m ptrace.ProtoMarshaler
	proto, err = m.MarshalTraces(td)
	if err != nil {
		return nil, counts, 0, err
	}
	counts, spans = CountTraces(td, counts)
	return proto, counts, spans, nil
}

// TracesToOTLP appends td serialized as an ExportTraceServiceRequest to buf
// and appends its spans per service to counts. pdata's TracesData and
// ExportTraceServiceRequest share their only field (resource_spans = 1), so
// ptrace's protobuf encoding is the request as it goes on the wire.
func TracesToOTLP(td ptrace.Traces, buf []byte, counts []ServiceCount) ([]byte, []ServiceCount, int) {
	var m ptrace.ProtoMarshaler
	b, _ := m.MarshalTraces(td) // never fails: it only sizes and writes
	buf = append(buf, b...)
	counts, spans := CountTraces(td, counts)
	return buf, counts, spans
}

// CountTraces appends one entry per service of td (resource attribute
// service.name if a non-empty string, else FallbackServiceName) to counts,
// merging resources of the same service, and returns the total of spans.
// Entries already in counts are left alone.
func CountTraces(td ptrace.Traces, counts []ServiceCount) ([]ServiceCount, int) {
	n0, total := len(counts), 0
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		n := 0
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			n += sss.At(j).Spans().Len()
		}
		if n == 0 {
			continue
		}
		total += n
		name := FallbackServiceName
		if v, ok := rs.Resource().Attributes().Get(otlpServiceNameKey); ok && v.Str() != "" {
			name = v.Str()
		}
		counts = otlpAddCountString(counts, n0, name, n)
	}
	return counts, total
}

func otlpAddCountString(counts []ServiceCount, n0 int, name string, n int) []ServiceCount {
	for i := n0; i < len(counts); i++ {
		if counts[i].Service == name {
			counts[i].Spans += n
			return counts
		}
	}
	return append(counts, ServiceCount{Service: name, Spans: n})
}

// OTLPPartialSuccess returns the protobuf body of an ExportTraceServiceResponse
// telling the client how many spans were rejected and why. With nothing
// rejected and no message it is empty, the full-success reply.
func OTLPPartialSuccess(rejected int64, message string) []byte {
	if rejected == 0 && message == "" {
		return nil // pdata would write an empty partial_success (0a00): same meaning
	}
	b, _ := partialSuccess(rejected, message).MarshalProto()
	return b
}

// OTLPPartialSuccessJSON is OTLPPartialSuccess for OTLP/HTTP JSON clients,
// encoded as the Collector encodes it ({"partialSuccess":{}} for full success).
func OTLPPartialSuccessJSON(rejected int64, message string) []byte {
	b, _ := partialSuccess(rejected, message).MarshalJSON()
	return b
}

func partialSuccess(rejected int64, message string) ptraceotlp.ExportResponse {
	resp := ptraceotlp.NewExportResponse()
	if rejected != 0 || message != "" {
		ps := resp.PartialSuccess()
		ps.SetRejectedSpans(rejected)
		ps.SetErrorMessage(message)
	}
	return resp
}
