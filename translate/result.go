package translate

// Rejected describes the spans a decoder left out of a request it otherwise
// accepted (OTLP partial success): a bad span never costs its neighbours.
type Rejected struct {
	Spans  int    // how many spans were left out
	Reason string // why the first of them was left out, naming the field
}

// Add records one more rejected span; the first reason is kept.
func (r *Rejected) Add(reason string) {
	if r.Spans == 0 {
		r.Reason = reason
	}
	r.Spans++
}

// ServiceCount is how many spans of one service a request carried.
type ServiceCount struct {
	Service string
	Spans   int
}

// FallbackServiceName is used when a span names no service at all (Zipkin
// localEndpoint without serviceName and no istio.canonical_service tag, an
// OTLP resource without service.name). It is the name the OpenTelemetry SDKs
// use for the same case.
const FallbackServiceName = "unknown_service"
