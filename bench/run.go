package bench

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// payload is one request ready to go: for HTTP the whole request (line,
// headers and body), for gRPC the message.
type payload struct {
	wire     []byte
	spans    int64
	bodySize int64
}

// sender sends one payload on one connection. status is "" when the server
// took the request; rejected is the spans it refused all the same (OTLP
// partial success).
type sender interface {
	send(ctx context.Context, p *payload) (status string, rejected int64, err error)
	close()
}

// Run sends spans as cfg says and reports what happened. It returns an
// error only when it cannot start (bad config, no connection); failed
// requests are counted in Result.Errors.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	sc, err := newSchedule(cfg)
	if err != nil {
		return Result{}, err
	}
	senders, err := dial(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	defer func() {
		for _, s := range senders {
			s.close()
		}
	}()
	stats := make([]workerStats, len(senders))
	sc.start = time.Now()
	if cfg.Duration > 0 {
		sc.deadline = sc.start.Add(cfg.Duration)
	}
	var wg sync.WaitGroup
	for w, s := range senders {
		wg.Go(func() { sc.work(ctx, s, &stats[w]) })
	}
	wg.Wait()
	return merged(stats, time.Since(sc.start)), nil
}

// schedule is what every worker shares: the payloads, how many requests
// and when each is due.
type schedule struct {
	payloads []payload
	last     *payload // the short request that makes Count exact
	nreq     int64
	interval float64 // seconds between requests, all workers together; 0: flat out
	next     atomic.Int64
	start    time.Time
	deadline time.Time
}

func newSchedule(cfg Config) (*schedule, error) {
	sc := &schedule{payloads: make([]payload, cfg.Variety), nreq: math.MaxInt64}
	for i := range sc.payloads {
		p, err := build(cfg, cfg.SpansPerRequest, uint64(i+1))
		if err != nil {
			return nil, err
		}
		sc.payloads[i] = p
	}
	if cfg.Count > 0 {
		sc.nreq = (cfg.Count + int64(cfg.SpansPerRequest) - 1) / int64(cfg.SpansPerRequest)
		if rem := cfg.Count % int64(cfg.SpansPerRequest); rem != 0 {
			p, err := build(cfg, int(rem), uint64(cfg.Variety+1))
			if err != nil {
				return nil, err
			}
			sc.last = &p
		}
	}
	if cfg.Rate > 0 {
		sc.interval = float64(cfg.SpansPerRequest) / cfg.Rate
	}
	return sc, nil
}

// work is one worker: it takes the next request number until the count,
// the deadline or ctx ends the run, waits until the request is due, sends
// it and records the outcome.
func (sc *schedule) work(ctx context.Context, s sender, st *workerStats) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for ctx.Err() == nil {
		i := sc.next.Add(1) - 1
		if i >= sc.nreq {
			return
		}
		var due time.Time
		slept := false
		if sc.interval > 0 {
			due = sc.start.Add(time.Duration(float64(i) * sc.interval * 1e9))
			if !sc.deadline.IsZero() && !due.Before(sc.deadline) {
				return
			}
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
				slept = true
			}
		} else if !sc.deadline.IsZero() && !time.Now().Before(sc.deadline) {
			return
		}
		p := &sc.payloads[i%int64(len(sc.payloads))]
		if sc.last != nil && i == sc.nreq-1 {
			p = sc.last
		}
		from := time.Now()
		if sc.interval > 0 && !slept {
			from = due // late because busy: the wait is the server's (coordinated omission)
		}
		status, rejected, err := s.send(ctx, p)
		lat := time.Since(from)
		if ctx.Err() != nil && (err != nil || status != "") {
			return // cut short by the caller: neither accepted nor failed
		}
		st.record(p, lat, status, rejected, err)
	}
}

// merged adds up the workers' tallies.
func merged(stats []workerStats, elapsed time.Duration) Result {
	res := Result{Errors: map[string]int64{}, Elapsed: elapsed}
	var h histogram
	for i := range stats {
		st := &stats[i]
		res.AcceptedSpans += st.accepted
		res.RejectedSpans += st.rejected
		res.SentSpans += st.sent
		res.Requests += st.requests
		res.Bytes += st.bytes
		for k, v := range st.errors {
			res.Errors[k] += v
		}
		if res.FirstError == "" {
			res.FirstError = st.firstError
		}
		res.Max = max(res.Max, st.max)
		h.merge(&st.hist)
	}
	res.P50, res.P99, res.P999 = h.quantile(0.5), h.quantile(0.99), h.quantile(0.999)
	return res
}

// workerStats is one worker's tally, merged after the run so the hot loop
// shares nothing.
type workerStats struct {
	hist                                      histogram
	accepted, rejected, sent, requests, bytes int64
	errors                                    map[string]int64
	firstError                                string
	max                                       time.Duration
}

func (st *workerStats) record(p *payload, lat time.Duration, status string, rejected int64, err error) {
	st.hist.record(lat)
	st.max = max(st.max, lat)
	st.requests++
	st.sent += p.spans
	st.bytes += p.bodySize
	if err != nil && status == "" {
		status = "transport"
	}
	if status != "" {
		if st.errors == nil {
			st.errors = map[string]int64{}
		}
		st.errors[status]++
		if st.firstError == "" {
			st.firstError = status
			if err != nil {
				st.firstError += ": " + err.Error()
			}
		}
		return
	}
	rejected = min(max(rejected, 0), p.spans)
	st.rejected += rejected
	st.accepted += p.spans - rejected
}

// build serializes one payload of n spans for cfg's protocol.
func build(cfg Config, n int, seed uint64) (payload, error) {
	var body []byte
	var path, ctype string
	switch cfg.Protocol {
	case ZipkinJSON:
		body, path, ctype = EnvoyZipkinJSON(n, seed), "/api/v2/spans", "application/json"
	case ZipkinProto:
		body, path, ctype = EnvoyZipkinProto(n, seed), "/api/v2/spans", "application/x-protobuf"
	case OTLPHTTP:
		body, path, ctype = SDKOTLP(n, seed), "/v1/traces", "application/x-protobuf"
	case OTLPHTTPJSON:
		body, path, ctype = SDKOTLPJSON(n, seed), "/v1/traces", "application/json"
	case OTLPGRPC:
		b := SDKOTLP(n, seed)
		return payload{wire: b, spans: int64(n), bodySize: int64(len(b))}, nil
	case JaegerGRPC:
		b := JaegerPostSpans(n, seed)
		return payload{wire: b, spans: int64(n), bodySize: int64(len(b))}, nil
	default:
		return payload{}, fmt.Errorf("protocol %q: want one of %v", cfg.Protocol, Protocols)
	}
	encoding := ""
	if cfg.Gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(body)
		if err := zw.Close(); err != nil {
			return payload{}, fmt.Errorf("gzip: %w", err)
		}
		body, encoding = buf.Bytes(), "Content-Encoding: gzip\r\n"
	}
	wire := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: traceport-bench\r\nContent-Type: %s\r\n%sContent-Length: %d\r\n\r\n",
		path, cfg.Target, ctype, encoding, len(body))
	wire = append(wire, body...)
	return payload{wire: wire, spans: int64(n), bodySize: int64(len(body))}, nil
}

// dial opens every connection before the clock starts, so that connection
// setup is not measured and a wrong target fails at once.
func dial(ctx context.Context, cfg Config) ([]sender, error) {
	if cfg.grpc() {
		return dialGRPC(ctx, cfg)
	}
	senders := make([]sender, cfg.Connections)
	for i := range senders {
		c, err := dialHTTP(ctx, cfg)
		if err != nil {
			for _, s := range senders[:i] {
				s.close()
			}
			return nil, err
		}
		senders[i] = c
	}
	return senders, nil
}
