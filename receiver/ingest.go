package receiver

import (
	"time"

	"google.golang.org/grpc/mem"

	"github.com/traceport/traceport/translate"
)

// ingest is where every protocol's handler ends, after decoding: the spans
// are counted per source (traceport_received_spans_total), then handed to the
// sink. A span is counted as received here exactly once; from then on the
// sink accounts for it as exported, dropped, queued or in flight. data is a
// serialized OTLP ExportTraceServiceRequest that the sink now owns.
func (rc *Receiver) ingest(protocol, encoding, client string, data []byte, counts []translate.ServiceCount, retrying bool) error {
	return rc.ingestOwned(protocol, encoding, client, data, nil, counts, retrying)
}

// ingestOwned is ingest for data held in owned (a buffer of bufpool.Shared,
// or nil): owned goes to a BufferSink, or is left to the garbage collector
// with a sink that keeps plain slices.
func (rc *Receiver) ingestOwned(protocol, encoding, client string, data []byte, owned mem.Buffer, counts []translate.ServiceCount, retrying bool) error {
	return rc.ingestSeen(protocol, encoding, client, data, owned, counts, nil, retrying)
}

// ingestSeen is ingestOwned for a request whose validation walk the
// observer already watched through seen (from scanOTLP); nil: it has not,
// and is handed the request whole.
func (rc *Receiver) ingestSeen(protocol, encoding, client string, data []byte, owned mem.Buffer, counts []translate.ServiceCount, seen translate.OTLPVisitor, retrying bool) error {
	spans := 0
	for _, c := range counts {
		spans += c.Spans
	}
	if spans == 0 {
		rc.unseen(seen)
		release(owned)
		return nil
	}
	if obs := rc.cfg.Observer; obs != nil {
		if seen != nil {
			obs.End(seen, true)
		} else {
			obs.Observe(protocol, data)
		}
	}
	// Counted as received and in the sink's accounts in one step as far
	// as a scrape can tell (sources.books), but no wait of the sink's is
	// inside that step: it ends when the sink calls accounted.
	rc.sources.books.RLock()
	rc.sources.add(protocol, encoding, counts)
	var err error
	if bs, ok := rc.sink.(BufferSink); ok && owned != nil {
		err = bs.PushBuffer(owned, spans, retrying, rc.sources.accounted)
	} else {
		err = rc.sink.Push(data, spans, retrying, rc.sources.accounted)
	}
	rc.sources.noteClient(protocol, encoding, counts, client)
	if err != nil {
		// The sink has counted these spans as dropped; tell the client to back off.
		rsn := reasonQueueFull
		if rc.shuttingDown.Load() {
			rsn = reasonShuttingDown
		}
		return &refusal{reason: rsn, msg: "traceport cannot take these spans now: " + err.Error(), retryAfter: rc.retryAfter()}
	}
	return nil
}

// release frees a pooled request buffer that no sink took; nil is none.
func release(owned mem.Buffer) {
	if owned != nil {
		owned.Free()
	}
}

// admit is the door: it runs before a body is read, so a full queue costs a
// refused client nothing but a round trip.
func (rc *Receiver) admit(retrying bool) *refusal {
	if rc.shuttingDown.Load() {
		return refuse(reasonShuttingDown, "traceport is shutting down; send to another instance")
	}
	if rc.budget.Spent() {
		return overBudget()
	}
	if rc.memory.overLimit() { // the backstop: memory the budget does not see
		return &refusal{reason: reasonMemoryLimit, msg: "traceport is near its memory limit (--memory-limit); retry later", retryAfter: time.Second}
	}
	if ok, after := rc.sink.Admit(retrying); !ok {
		return &refusal{reason: reasonQueueFull, msg: "traceport's export queue is full; retry later", retryAfter: after}
	}
	return nil
}

func (rc *Receiver) retryAfter() (d time.Duration) {
	_, d = rc.sink.Admit(true)
	if d <= 0 {
		d = defaultRetryAfter
	}
	return d
}

// scanOTLP validates and counts an OTLP request, and shows the walk to the
// observer: seen goes to ingestSeen, which tells the observer the verdict
// (no error here: the observer has already been told). Spans that alone
// make the request invalid are left out and reported (OTLP partial
// success) instead of refusing the whole request. The returned data
// aliases the input when nothing was left out.
func (rc *Receiver) scanOTLP(protocol string, data []byte) (_ []byte, counts []translate.ServiceCount, seen translate.OTLPVisitor, _ translate.Rejected, err error) {
	if counts, seen, err = rc.scanSeen(protocol, data); err == nil {
		return data, counts, seen, translate.Rejected{}, nil
	}
	filtered, rejected, ferr := translate.FilterOTLP(data)
	if ferr != nil || rejected.Spans == 0 {
		return nil, nil, nil, translate.Rejected{}, err
	}
	if counts, seen, err = rc.scanSeen(protocol, filtered); err != nil {
		return nil, nil, nil, translate.Rejected{}, err
	}
	return filtered, counts, seen, rejected, nil
}

// scanSeen is one validation walk, watched by the observer if there is one.
func (rc *Receiver) scanSeen(protocol string, data []byte) ([]translate.ServiceCount, translate.OTLPVisitor, error) {
	var seen translate.OTLPVisitor
	if rc.cfg.Observer != nil {
		seen = rc.cfg.Observer.Begin(protocol)
	}
	counts, err := translate.ScanOTLPVisit(data, nil, seen)
	if err != nil {
		rc.unseen(seen)
		return nil, nil, err
	}
	return counts, seen, nil
}

// unseen tells the observer that the request seen watched is not taken.
func (rc *Receiver) unseen(seen translate.OTLPVisitor) {
	if seen != nil {
		rc.cfg.Observer.End(seen, false)
	}
}
