package topology

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/traceport/traceport/translate"
)

// Config bounds the tracker. Zero values take the defaults in brackets.
type Config struct {
	Grace      time.Duration // how long a child waits for its parent, and a trace for its root [30s]
	Window     time.Duration // span of the ratios and edges, in ten buckets [5m]
	MaxSpans   int           // span ids remembered for parent lookups [200000]
	MaxPending int           // children waiting for their parent [100000]
	MaxTraces  int           // traces waiting for their root verdict [100000]
	MaxEdges   int           // distinct service pairs [10000]
	MaxNames   int           // distinct service and peer names; beyond, "_other" [1000]
	// MaxTraceServices bounds the services one waiting trace remembers for
	// its rootless verdict (4 bytes each); a trace with more counts only the
	// first ones and the rest in traceport_topology_evicted_total{table="trace_services"} [64].
	MaxTraceServices int
	// SampleRatio is the share of traces watched, chosen by trace id so a
	// watched trace is watched whole and its ratios stay unbiased [1]. The
	// receiver's hot path pays about 0.5 µs per watched span and 0.01 µs
	// per skipped one.
	SampleRatio float64
	Now         func() time.Time
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	def(&c.Grace, 30*time.Second)
	def(&c.Window, 5*time.Minute)
	defInt(&c.MaxSpans, 200000)
	defInt(&c.MaxPending, 100000)
	defInt(&c.MaxTraces, 100000)
	defInt(&c.MaxEdges, 10000)
	defInt(&c.MaxNames, 1000)
	defInt(&c.MaxTraceServices, 64)
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.SampleRatio <= 0 || c.SampleRatio > 1 {
		c.SampleRatio = 1
	}
}

const (
	numShards  = 8 // a power of two
	numBuckets = 10
)

// Tables whose overflow is counted in traceport_topology_evicted_total.
const (
	tableSpans = iota
	tablePending
	tableTraces
	tableEdges
	tableTraceServices
	tableCalls
	numTables
)

var tableNames = [numTables]string{"spans", "pending", "traces", "edges", "trace_services", "calls"}

// Tracker watches parent links of every span it is shown. It implements
// receiver.Observer. Create it with New.
type Tracker struct {
	cfg      Config
	names    *names
	shards   [numShards]shard
	bucketNs int64
	graceNs  int64
	retainNs int64
	evicted  [numTables]atomic.Uint64
	scanners sync.Pool
	sample   uint32 // a trace is watched when its key's low 32 bits are <= sample

	orphanDesc, rootlessDesc, evictedDesc, watchedDesc *prometheus.Desc
}

// New returns a tracker registered on reg (traceport_orphan_spans_total,
// traceport_rootless_traces_total, traceport_topology_evicted_total).
func New(cfg Config, reg prometheus.Registerer) *Tracker {
	cfg.setDefaults()
	t := &Tracker{
		cfg:      cfg,
		names:    newNames(cfg.MaxNames),
		bucketNs: int64(cfg.Window) / numBuckets,
		graceNs:  int64(cfg.Grace),
		// A parent may arrive up to Grace before its child and is looked up
		// again when the child's wait ends: keep span ids twice as long.
		retainNs: 2 * int64(cfg.Grace),
		orphanDesc: prometheus.NewDesc("traceport_orphan_spans_total",
			"Spans whose parent span did not arrive within the grace period (orphans), by service. Jaeger draws no dependency edge for them; a high share means a path lost the parents (blocked sidecar, B3/W3C propagation mismatch, sampling disagreement).",
			[]string{"service"}, nil),
		rootlessDesc: prometheus.NewDesc("traceport_rootless_traces_total",
			"Traces that had no root span (a span without parent) within the grace period after their first span, counted once for each service of the trace.",
			[]string{"service"}, nil),
		watchedDesc: prometheus.NewDesc("traceport_health_watched_spans_total",
			"Spans of the traces trace health watches (--health-sample-ratio of all traces, by trace id), by service: the denominator of the orphan ratio.",
			[]string{"service"}, nil),
		evictedDesc: prometheus.NewDesc("traceport_topology_evicted_total",
			"Entries dropped from the trace-health tables before their time because the table was full; when this rises, orphan and rootless counts are pessimistic.",
			[]string{"table"}, nil),
	}
	if t.bucketNs <= 0 {
		t.bucketNs = 1
	}
	t.sample = uint32(min(cfg.SampleRatio*(1<<32), 1<<32-1))
	if cfg.SampleRatio >= 1 {
		t.sample = 1<<32 - 1
	}
	for i := range t.shards {
		sh := &t.shards[i]
		sh.spans = make(map[uint64]spanVal)
		sh.traces = make(map[uint64]int32)
		sh.edges = make(map[uint64]*edgeWindow)
		sh.maxSpans = max(1, cfg.MaxSpans/numShards)
		sh.maxPending = max(1, cfg.MaxPending/numShards)
		sh.maxTraces = max(1, cfg.MaxTraces/numShards)
		sh.maxEdges = max(1, cfg.MaxEdges/numShards)
	}
	t.scanners.New = func() any { return &scanner{names: t.names} }
	if reg != nil {
		reg.MustRegister(t)
	}
	return t
}

// Observe records the spans of one accepted request that the receiver
// wrote itself (Zipkin, Jaeger): data is a serialized OTLP
// ExportTraceServiceRequest, read and not kept. protocol is the receiver's
// label ("zipkin" means sidecars and gateways; the rest, SDKs). Requests
// the receiver validates (OTLP) are shown during that walk instead: Begin.
func (t *Tracker) Observe(protocol string, data []byte) {
	v := t.Begin(protocol)
	t.End(v, translate.VisitOTLP(data, v) == nil)
}

// Begin returns the visitor for the receiver's validation walk of one
// request (translate.ScanOTLPVisit), so that the request is walked once.
// Every Begin is paired with one End.
func (t *Tracker) Begin(protocol string) translate.OTLPVisitor {
	sc := t.scanners.Get().(*scanner)
	sc.resources, sc.hints, sc.spans = sc.resources[:0], sc.hints[:0], sc.spans[:0]
	sc.sample = t.sample
	sc.path = pathApp
	if protocol == "zipkin" {
		sc.path = pathSidecar
	}
	return sc
}

// End records what v (from Begin) was shown if the request was accepted,
// and forgets it otherwise. The request's bytes must still be valid.
func (t *Tracker) End(v translate.OTLPVisitor, accepted bool) {
	sc := v.(*scanner)
	if accepted && len(sc.resources) > 0 {
		sc.resolve()
		if len(sc.spans) > 0 {
			t.add(sc, t.cfg.Now().UnixNano())
		}
	}
	clear(sc.resources) // slices of the request: not kept alive by the pool
	clear(sc.hints)
	t.scanners.Put(sc)
}

// add takes each shard's lock once per request: spans are ordered by shard
// (counting sort, stable, so a trace's spans stay together).
func (t *Tracker) add(sc *scanner, now int64) {
	for i := 0; i < len(sc.spans); {
		j := i + 1
		for j < len(sc.spans) && sc.spans[j].svc == sc.spans[i].svc {
			j++
		}
		t.names.info(sc.spans[i].svc).watched.Add(uint64(j - i))
		i = j
	}
	var count [numShards + 1]int32
	for i := range sc.spans {
		count[shardOf(sc.spans[i].trace)+1]++
	}
	for s := 1; s <= numShards; s++ {
		count[s] += count[s-1]
	}
	if cap(sc.order) < len(sc.spans) {
		sc.order = make([]int32, len(sc.spans))
	}
	order := sc.order[:len(sc.spans)]
	start := count
	for i := range sc.spans {
		s := shardOf(sc.spans[i].trace)
		order[count[s]] = int32(i)
		count[s]++
	}
	for s := 0; s < numShards; s++ {
		lo, hi := start[s], start[s+1]
		if lo == hi {
			continue
		}
		sh := &t.shards[s]
		sh.mu.Lock()
		sh.expire(t, now)
		for _, i := range order[lo:hi] {
			sh.add(t, &sc.spans[i], now)
		}
		sh.mu.Unlock()
	}
}

func shardOf(trace uint64) int { return int(trace >> 61 & (numShards - 1)) }

// advance settles every wait that ended by now, so that readers see
// verdicts even when no traffic comes in.
func (t *Tracker) advance(now int64) {
	for s := range t.shards {
		sh := &t.shards[s]
		sh.mu.Lock()
		sh.expire(t, now)
		sh.mu.Unlock()
	}
}

func (t *Tracker) epoch(now int64) int64 { return now / t.bucketNs }

// shard holds the tables of the traces whose key falls in it.
type shard struct {
	mu sync.Mutex

	spans   map[uint64]spanVal // span key → what its children need to know
	spanQ   queue[spanRec]     // insertion order, for expiry
	pending queue[pendingRec]  // children waiting for their parent, by deadline
	calls   queue[spanRec]     // hinted CLIENT spans waiting for their call's verdict, by deadline (at)
	traces  map[uint64]int32   // trace key → index into slab
	slab    []traceRec
	free    []int32
	traceQ  queue[traceQRec]
	svc     []svcWindow
	edges   map[uint64]*edgeWindow // parent id << 32 | child id

	maxSpans, maxPending, maxTraces, maxEdges int

	stale counts // sink for verdicts older than the window

	lastTrace uint64 // the trace of the previous span added: most requests carry a trace's spans together
	lastIdx   int32
	lastOK    bool
	lastSvc   uint32 // the previous span's service, already in the trace's list; noService: none

	_ [64]byte // keeps shards' locks on separate cache lines
}

type spanRec struct {
	key uint64
	at  int64
}

// spanVal is what a span's children look up: its service, and for a
// CLIENT span whom it calls and whether the call reached a server.
type spanVal struct {
	parent uint64 // the parent's span key; 0: a root
	svc    uint32
	peer   uint32 // the CLIENT span's peer hint, 0: none
	kind   uint8  // kindClient, kindServer, or 0
	answer bool   // a CLIENT span whose call reached a SERVER span
}

type pendingRec struct {
	parentKey uint64
	key       uint64 // the waiting child's own span key
	deadline  int64
	svc       uint32
	kind      uint8
}

// traceRec is one trace waiting for its root verdict. svcs keeps its
// capacity when the slot is reused (no allocation per trace in the steady
// state) and never grows past Config.MaxTraceServices: a waiting trace
// costs at most 4 bytes × MaxTraceServices beyond the record.
type traceRec struct {
	first int64
	svcs  []uint32 // service ids, each once
	root  bool
}

type traceQRec struct {
	key uint64
	idx int32
}

// counts are one bucket's verdicts for one service.
type counts struct {
	spans, orphans, traces, rootless uint64
}

type svcWindow [numBuckets]struct {
	epoch int64
	c     counts
}

// at returns the bucket of epoch, reset if it held an older one; nil if
// it already holds a newer one (a verdict that came too late to count).
func (w *svcWindow) at(epoch int64) *counts {
	b := &w[epoch%numBuckets]
	switch {
	case b.epoch > epoch:
		return nil
	case b.epoch < epoch:
		b.epoch, b.c = epoch, counts{}
	}
	return &b.c
}

type edgeWindow [numBuckets]struct {
	epoch                                int64
	linked, hinted, answered, unanswered uint64
}

// svcAt returns service id's counts for epoch; a verdict too old for the
// bucket ring goes to a scratch bucket nobody reads.
func (sh *shard) svcAt(id uint32, epoch int64) *counts {
	if int(id) >= len(sh.svc) {
		sh.svc = append(sh.svc, make([]svcWindow, int(id)+1-len(sh.svc))...)
	}
	if c := sh.svc[id].at(epoch); c != nil {
		return c
	}
	sh.stale = counts{}
	return &sh.stale
}

// noService is no service id (ids are small: MaxNames bounds them).
const noService = ^uint32(0)

// edgeCounts are the increments one verdict adds to an edge.
type edgeCounts struct{ linked, hinted, answered, unanswered uint64 }

func (sh *shard) edge(t *Tracker, parent, child uint32, epoch int64, n edgeCounts) {
	k := uint64(parent)<<32 | uint64(child)
	w := sh.edges[k]
	if w == nil {
		if len(sh.edges) >= sh.maxEdges {
			t.evicted[tableEdges].Add(1)
			return
		}
		w = new(edgeWindow)
		sh.edges[k] = w
	}
	b := &w[epoch%numBuckets]
	switch {
	case b.epoch > epoch:
		return
	case b.epoch < epoch:
		b.epoch, b.linked, b.hinted, b.answered, b.unanswered = epoch, 0, 0, 0, 0
	}
	b.linked += n.linked
	b.hinted += n.hinted
	b.answered += n.answered
	b.unanswered += n.unanswered
}

// linked is the verdict "parent found" for a span of service child. A
// SERVER child answers its CLIENT parent's call; a CLIENT child (the
// caller's own sidecar relaying the app's call) passes on its answer.
func (sh *shard) linked(t *Tracker, parent spanVal, pk, key uint64, child uint32, kind uint8, epoch int64) {
	sh.svcAt(child, epoch).spans++
	if parent.svc != child {
		sh.edge(t, parent.svc, child, epoch, edgeCounts{linked: 1})
	}
	if parent.kind != kindClient || parent.answer {
		return
	}
	switch kind {
	case kindServer:
		sh.answer(pk)
	case kindClient:
		if v, ok := sh.spans[key]; ok && v.answer {
			sh.answer(pk)
		}
	}
}

// maxRelay bounds how many CLIENT spans one answer walks up through: an
// app's span, its sidecar's, and a few client-side retries or wrappers.
const maxRelay = 8

// answer marks the CLIENT span key as having reached its server side, and
// the CLIENT spans it relays for (its CLIENT parents). A hinted call's
// verdict is counted when its wait ends (see expire).
func (sh *shard) answer(key uint64) {
	for range maxRelay {
		v, ok := sh.spans[key]
		if !ok || v.kind != kindClient || v.answer {
			return
		}
		v.answer = true
		sh.spans[key] = v
		if v.parent == 0 {
			return
		}
		key = v.parent
	}
}

func (sh *shard) orphan(t *Tracker, svc uint32, epoch int64) {
	c := sh.svcAt(svc, epoch)
	c.spans++
	c.orphans++
	t.names.info(svc).orphans.Add(1)
}

func (sh *shard) add(t *Tracker, s *obsSpan, now int64) {
	epoch := t.epoch(now)
	key := spanKey(s.trace, s.id)
	if sh.spanQ.n >= sh.maxSpans {
		delete(sh.spans, sh.spanQ.pop().key)
		t.evicted[tableSpans].Add(1)
	}
	var pk uint64
	if s.parent != 0 {
		pk = spanKey(s.trace, s.parent)
	}
	sh.spans[key] = spanVal{parent: pk, svc: s.svc, peer: s.peer, kind: s.kind}
	sh.spanQ.push(spanRec{key, now})
	if s.peer != 0 {
		sh.edge(t, s.svc, s.peer, epoch, edgeCounts{hinted: 1})
		if sh.calls.n >= sh.maxSpans {
			sh.calls.pop() // no verdict for that call
			t.evicted[tableCalls].Add(1)
		}
		sh.calls.push(spanRec{key, now + t.graceNs})
	}

	if s.parent == 0 {
		sh.svcAt(s.svc, epoch).spans++
	} else if pv, ok := sh.spans[pk]; ok {
		sh.linked(t, pv, pk, key, s.svc, s.kind, epoch)
	} else {
		if sh.pending.n >= sh.maxPending {
			sh.pending.pop() // no verdict: neither found nor given its full wait
			t.evicted[tablePending].Add(1)
		}
		sh.pending.push(pendingRec{parentKey: pk, key: key, deadline: now + t.graceNs, svc: s.svc, kind: s.kind})
	}
	sh.noteTrace(t, s, now)
}

func (sh *shard) noteTrace(t *Tracker, s *obsSpan, now int64) {
	var idx int32
	if sh.lastOK && sh.lastTrace == s.trace {
		idx = sh.lastIdx
	} else {
		var ok bool
		if idx, ok = sh.traces[s.trace]; !ok {
			if len(sh.traces) >= sh.maxTraces {
				sh.verdict(t, sh.traceQ.pop(), t.epoch(now), false)
				t.evicted[tableTraces].Add(1)
			}
			if n := len(sh.free); n > 0 {
				idx = sh.free[n-1]
				sh.free = sh.free[:n-1]
			} else {
				sh.slab = append(sh.slab, traceRec{})
				idx = int32(len(sh.slab) - 1)
			}
			tr := &sh.slab[idx]
			tr.first, tr.root, tr.svcs = now, false, tr.svcs[:0]
			sh.traces[s.trace] = idx
			sh.traceQ.push(traceQRec{key: s.trace, idx: idx})
		}
		sh.lastTrace, sh.lastIdx, sh.lastOK, sh.lastSvc = s.trace, idx, true, noService
	}
	tr := &sh.slab[idx]
	if s.parent == 0 {
		tr.root = true
	}
	if s.svc != sh.lastSvc {
		sh.lastSvc = s.svc
		tr.addService(t, s.svc)
	}
}

// addService adds svc to the trace's services unless it is there or the
// list is full (counted as an eviction). The list grows by doubling up to
// MaxTraceServices, so its capacity never exceeds the bound.
func (tr *traceRec) addService(t *Tracker, svc uint32) {
	for _, id := range tr.svcs {
		if id == svc {
			return
		}
	}
	limit := t.cfg.MaxTraceServices
	if len(tr.svcs) >= limit {
		t.evicted[tableTraceServices].Add(1)
		return
	}
	if len(tr.svcs) == cap(tr.svcs) {
		grown := make([]uint32, len(tr.svcs), min(limit, max(4, 2*cap(tr.svcs))))
		copy(grown, tr.svcs)
		tr.svcs = grown
	}
	tr.svcs = append(tr.svcs, svc)
}

// verdict ends a trace's wait; judge false (an eviction) removes it
// without counting it either way.
func (sh *shard) verdict(t *Tracker, q traceQRec, epoch int64, judge bool) {
	tr := &sh.slab[q.idx]
	delete(sh.traces, q.key)
	sh.free = append(sh.free, q.idx)
	sh.lastOK = false
	if !judge {
		return
	}
	for _, id := range tr.svcs {
		c := sh.svcAt(id, epoch)
		c.traces++
		if !tr.root {
			c.rootless++
			t.names.info(id).rootless.Add(1)
		}
	}
}

// expire settles what is due: children whose wait ended (linked or
// orphan), span ids past retention, traces due for their root verdict.
func (sh *shard) expire(t *Tracker, now int64) {
	// Verdicts count in the bucket of their deadline, not of the moment a
	// reader or a request came by to settle them.
	for sh.pending.n > 0 && sh.pending.front().deadline <= now {
		p := sh.pending.pop()
		if pv, ok := sh.spans[p.parentKey]; ok {
			sh.linked(t, pv, p.parentKey, p.key, p.svc, p.kind, t.epoch(p.deadline))
		} else {
			sh.orphan(t, p.svc, t.epoch(p.deadline))
		}
	}
	// After the children: a call is answered by a child that was waiting.
	for sh.calls.n > 0 && sh.calls.front().at <= now {
		c := sh.calls.pop()
		if v, ok := sh.spans[c.key]; ok && v.peer != 0 {
			n := edgeCounts{unanswered: 1}
			if v.answer {
				n = edgeCounts{answered: 1}
			}
			sh.edge(t, v.svc, v.peer, t.epoch(c.at), n)
		}
	}
	for sh.spanQ.n > 0 && sh.spanQ.front().at+t.retainNs <= now {
		delete(sh.spans, sh.spanQ.pop().key)
	}
	for sh.traceQ.n > 0 {
		due := sh.slab[sh.traceQ.front().idx].first + t.graceNs
		if due > now {
			break
		}
		sh.verdict(t, sh.traceQ.pop(), t.epoch(due), true)
	}
}

// queue is a FIFO ring that grows by doubling; the tables bound it.
type queue[T any] struct {
	buf     []T
	head, n int
}

func (q *queue[T]) push(v T) {
	if q.n == len(q.buf) {
		nb := make([]T, max(64, 2*len(q.buf)))
		for i := 0; i < q.n; i++ {
			nb[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.n)&(len(q.buf)-1)] = v
	q.n++
}

func (q *queue[T]) front() *T { return &q.buf[q.head] }

func (q *queue[T]) pop() T {
	v := q.buf[q.head]
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.n--
	return v
}

// ServiceHealth is one service's verdicts over the window.
type ServiceHealth struct {
	Service  string  `json:"service"`
	Workload string  `json:"workload"`
	Spans    uint64  `json:"spans"`   // spans judged: roots, linked and orphans
	Orphans  uint64  `json:"orphans"` // spans whose parent never arrived
	Ratio    float64 `json:"orphanRatio"`
	Traces   uint64  `json:"traces"`   // traces judged that had spans of this service
	Rootless uint64  `json:"rootless"` // of them, traces without a root span
	RootRate float64 `json:"rootlessRatio"`
}

// Health returns every service's orphan and rootless shares over the
// window, sorted by service.
func (t *Tracker) Health() []ServiceHealth {
	now := t.cfg.Now().UnixNano()
	t.advance(now)
	cur := t.epoch(now)
	sum := map[uint32]*counts{}
	for s := range t.shards {
		sh := &t.shards[s]
		sh.mu.Lock()
		for id := range sh.svc {
			for _, b := range sh.svc[id] {
				if b.epoch <= cur-numBuckets || b.epoch > cur {
					continue
				}
				c := sum[uint32(id)]
				if c == nil {
					c = &counts{}
					sum[uint32(id)] = c
				}
				c.spans += b.c.spans
				c.orphans += b.c.orphans
				c.traces += b.c.traces
				c.rootless += b.c.rootless
			}
		}
		sh.mu.Unlock()
	}
	out := make([]ServiceHealth, 0, len(sum))
	for id, c := range sum {
		ni := t.names.info(id)
		h := ServiceHealth{Service: ni.name, Workload: ni.workload(), Spans: c.spans, Orphans: c.orphans, Traces: c.traces, Rootless: c.rootless}
		if c.spans > 0 {
			h.Ratio = float64(c.orphans) / float64(c.spans)
		}
		if c.traces > 0 {
			h.RootRate = float64(c.rootless) / float64(c.traces)
		}
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Service < out[j].Service })
	return out
}

// Edge is one caller → callee pair seen within the window.
type Edge struct {
	Parent string `json:"parent"`
	Child  string `json:"child"`
	// Calls counts child spans whose parent span (of Parent) arrived: the
	// edges Jaeger's dependency graph will show.
	Calls uint64 `json:"calls"`
	// Hinted counts Parent's CLIENT spans naming Child as their peer,
	// whether or not Child's spans arrived.
	Hinted uint64 `json:"hinted"`
	// Answered counts those CLIENT spans whose call reached a SERVER span
	// within the grace period: their child, or the child of the CLIENT
	// spans they are the parent of (an instrumented app's call relayed by
	// its own sidecar). Unanswered counts the others; a call still in its
	// grace period is neither.
	Answered   uint64 `json:"answered"`
	Unanswered uint64 `json:"unanswered"`
	// ChildReports says Child sends spans itself; a reporting child with
	// hints but no calls lost its server-side spans.
	ChildReports bool `json:"childReports"`
}

// Lost says the call's server side is missing: Child reports spans, and
// of Parent's calls to it that waited their grace period, none was linked
// to a span of Child nor reached any SERVER span, directly or through the
// caller's own sidecar.
func (e Edge) Lost() bool {
	return e.ChildReports && e.Calls == 0 && e.Answered == 0 && e.Unanswered > 0
}

// Edges returns the edges seen within the window, sorted by parent then
// child. A hinted callee that is not itself a service name but the
// workload of one (server.address "auth-api.auth" for the service
// "auth-api" in namespace "auth") is folded into that service, preferring
// the sidecar's service name, which is what parent links show.
func (t *Tracker) Edges() []Edge {
	now := t.cfg.Now().UnixNano()
	t.advance(now)
	cur := t.epoch(now)
	type pair struct{ linked, hinted, answered, unanswered uint64 }
	sum := map[uint64]*pair{}
	for s := range t.shards {
		sh := &t.shards[s]
		sh.mu.Lock()
		for k, w := range sh.edges {
			var l, h, a, u uint64
			for _, b := range w {
				if b.epoch > cur-numBuckets && b.epoch <= cur {
					l += b.linked
					h += b.hinted
					a += b.answered
					u += b.unanswered
				}
			}
			if l == 0 && h == 0 && a == 0 && u == 0 {
				delete(sh.edges, k) // out of the window: room for new pairs
				continue
			}
			p := sum[k]
			if p == nil {
				p = &pair{}
				sum[k] = p
			}
			p.linked += l
			p.hinted += h
			p.answered += a
			p.unanswered += u
		}
		sh.mu.Unlock()
	}
	all := t.names.all()
	byWorkload := map[string]*nameInfo{}
	for _, ni := range all {
		if ni.paths.Load() == 0 {
			continue
		}
		w := ni.workload()
		if prev := byWorkload[w]; prev == nil || ni.paths.Load()&pathSidecar != 0 && prev.paths.Load()&pathSidecar == 0 {
			byWorkload[w] = ni
		}
	}
	type key struct{ parent, child string }
	merged := map[key]*Edge{}
	for k, p := range sum {
		parent, child := all[k>>32], all[uint32(k)]
		if child.paths.Load() == 0 {
			if svc := byWorkload[child.name]; svc != nil {
				child = svc
			}
		}
		if parent == child {
			continue
		}
		e := merged[key{parent.name, child.name}]
		if e == nil {
			e = &Edge{Parent: parent.name, Child: child.name, ChildReports: child.paths.Load() != 0}
			merged[key{parent.name, child.name}] = e
		}
		e.Calls += p.linked
		e.Hinted += p.hinted
		e.Answered += p.answered
		e.Unanswered += p.unanswered
	}
	out := make([]Edge, 0, len(merged))
	for _, e := range merged {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Parent != out[j].Parent {
			return out[i].Parent < out[j].Parent
		}
		return out[i].Child < out[j].Child
	})
	return out
}

// Workload returns the workload ("<app>.<namespace>") a service belongs to,
// as seen in its spans' resource; the service itself if unknown.
func (t *Tracker) Workload(service string) string {
	if id, ok := t.names.lookup(service); ok {
		return t.names.info(id).workload()
	}
	return service
}

// MeshCallee reports whether a sidecar's CLIENT span named workload as its
// upstream (Envoy's upstream_cluster): the mesh routes calls to it, so it
// has a sidecar that should report.
func (t *Tracker) MeshCallee(workload string) bool {
	if id, ok := t.names.lookup(workload); ok {
		return t.names.info(id).meshPeer.Load()
	}
	return false
}

// Window returns how far back Health and Edges look, and how long a span
// waits for its parent before it is judged.
func (t *Tracker) Window() (window, grace time.Duration) {
	return t.cfg.Window, t.cfg.Grace
}

// Stats are the tables' fill and overflow, for the docs' limits.
type Stats struct {
	Spans, Pending, Traces, Edges int
	Evicted                       map[string]uint64
}

// Stats reports how full the tables are.
func (t *Tracker) Stats() Stats {
	st := Stats{Evicted: map[string]uint64{}}
	for s := range t.shards {
		sh := &t.shards[s]
		sh.mu.Lock()
		st.Spans += len(sh.spans)
		st.Pending += sh.pending.n
		st.Traces += len(sh.traces)
		st.Edges += len(sh.edges)
		sh.mu.Unlock()
	}
	for i, n := range tableNames {
		st.Evicted[n] = t.evicted[i].Load()
	}
	return st
}

func (t *Tracker) Describe(ch chan<- *prometheus.Desc) {
	ch <- t.orphanDesc
	ch <- t.rootlessDesc
	ch <- t.evictedDesc
	ch <- t.watchedDesc
}

// Collect settles due verdicts first, so a scrape after traffic stopped
// still sees the orphans of its last grace period.
func (t *Tracker) Collect(ch chan<- prometheus.Metric) {
	t.advance(t.cfg.Now().UnixNano())
	for _, ni := range t.names.all() {
		if ni.paths.Load() == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(t.orphanDesc, prometheus.CounterValue, float64(ni.orphans.Load()), ni.name)
		ch <- prometheus.MustNewConstMetric(t.rootlessDesc, prometheus.CounterValue, float64(ni.rootless.Load()), ni.name)
		ch <- prometheus.MustNewConstMetric(t.watchedDesc, prometheus.CounterValue, float64(ni.watched.Load()), ni.name)
	}
	for i, n := range tableNames {
		ch <- prometheus.MustNewConstMetric(t.evictedDesc, prometheus.CounterValue, float64(t.evicted[i].Load()), n)
	}
}
