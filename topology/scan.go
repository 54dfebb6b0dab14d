package topology

import (
	"bytes"
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"
)

// obsSpan is what Observe keeps of one span while it handles a request.
type obsSpan struct {
	trace      uint64 // trace id, mixed: the shard and map keys derive from it
	id, parent uint64 // raw span ids; parent 0: a root
	svc        uint32 // name id of the resource's service.name
	peer       uint32 // name id of the CLIENT span's peer hint, 0: none
	kind       uint8  // kindClient, kindServer, or 0 for the other kinds
}

// scanner walks one serialized ExportTraceServiceRequest. The receiver has
// validated it; on anything unexpected the scanner stops rather than guess.
type scanner struct {
	spans  []obsSpan
	order  []int32
	names  *names
	path   uint32
	sample uint32 // see Tracker.sample
}

// OTLP field numbers (opentelemetry/proto/trace/v1/trace.proto).
const (
	fReqResourceSpans    = 1
	fRSResource          = 1
	fRSScopeSpans        = 2
	fResAttributes       = 1
	fSSSpans             = 2
	fSpanTraceID         = 1
	fSpanID              = 2
	fSpanParentID        = 4
	fSpanKind            = 6
	fSpanAttributes      = 9
	fKVKey               = 1
	fKVValue             = 2
	fAnyString           = 1
	kindServer           = 2
	kindClient           = 3
	istioOutboundPrefix  = "outbound|"
	kubernetesSvcMarker  = ".svc."
	kubernetesSvcPostfix = ".svc"
)

// field is one protobuf field: its number, type, and payload (v for
// length-delimited, x for varints).
type field struct {
	num protowire.Number
	typ protowire.Type
	v   []byte
	x   uint64
}

// nextField reads one field off b; n < 0 on malformed input. Hand-rolled
// for one-byte tags and lengths, which are nearly all of OTLP: Observe walks
// every field of every span, and protowire's general path costs twice as much.
func nextField(b []byte) (f field, n int) {
	if len(b) == 0 {
		return f, -1
	}
	tag := uint64(b[0])
	n = 1
	if tag >= 0x80 {
		var m int
		if tag, m = protowire.ConsumeVarint(b); m < 0 {
			return f, -1
		}
		n = m
	}
	f.num, f.typ = protowire.Number(tag>>3), protowire.Type(tag&7)
	switch f.typ {
	case protowire.VarintType, protowire.BytesType:
		var x uint64
		if n < len(b) && b[n] < 0x80 {
			x = uint64(b[n])
			n++
		} else {
			v, m := protowire.ConsumeVarint(b[n:])
			if m < 0 {
				return f, -1
			}
			x, n = v, n+m
		}
		if f.typ == protowire.VarintType {
			f.x = x
			return f, n
		}
		if x > uint64(len(b)-n) {
			return f, -1
		}
		f.v = b[n : n+int(x)]
		return f, n + int(x)
	case protowire.Fixed64Type:
		n += 8
	case protowire.Fixed32Type:
		n += 4
	default:
		return f, -1
	}
	if n > len(b) {
		return f, -1
	}
	return f, n
}

func (sc *scanner) watched(trace uint64) bool { return uint32(trace) <= sc.sample }

func (sc *scanner) request(b []byte) {
	for len(b) > 0 {
		f, n := nextField(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if f.num == fReqResourceSpans && f.typ == protowire.BytesType {
			sc.resourceSpans(f.v)
		}
	}
}

func (sc *scanner) resourceSpans(b []byte) {
	var service, namespace []byte
	for rest := b; len(rest) > 0; {
		f, n := nextField(rest)
		if n < 0 {
			return
		}
		rest = rest[n:]
		if f.num == fRSResource && f.typ == protowire.BytesType {
			service, namespace = resourceAttrs(f.v)
		}
	}
	if len(service) == 0 {
		service = []byte("unknown_service")
	}
	svc := sc.names.intern(service)
	info := sc.names.info(svc)
	info.addPath(sc.path)
	if len(namespace) > 0 {
		info.setNamespace(namespace)
	}
	for rest := b; len(rest) > 0; {
		f, n := nextField(rest)
		if n < 0 {
			return
		}
		rest = rest[n:]
		if f.num == fRSScopeSpans && f.typ == protowire.BytesType {
			sc.scopeSpans(f.v, svc)
		}
	}
}

// resourceAttrs finds service.name and the namespace (k8s.namespace.name,
// else service.namespace) among a Resource's attributes.
func resourceAttrs(b []byte) (service, namespace []byte) {
	var serviceNS []byte
	for len(b) > 0 {
		f, n := nextField(b)
		if n < 0 {
			break
		}
		b = b[n:]
		if f.num != fResAttributes || f.typ != protowire.BytesType {
			continue
		}
		key, val := stringKV(f.v)
		switch string(key) {
		case "service.name":
			if service == nil {
				service = val
			}
		case "k8s.namespace.name":
			namespace = val
		case "service.namespace":
			serviceNS = val
		}
	}
	if len(namespace) == 0 {
		namespace = serviceNS
	}
	return service, namespace
}

// stringKV returns a KeyValue's key and, if the value is a string, the value.
func stringKV(b []byte) (key, val []byte) {
	for len(b) > 0 {
		f, n := nextField(b)
		if n < 0 {
			return nil, nil
		}
		b = b[n:]
		if f.typ != protowire.BytesType {
			continue
		}
		switch f.num {
		case fKVKey:
			key = f.v
		case fKVValue:
			for v := f.v; len(v) > 0; {
				g, m := nextField(v)
				if m < 0 {
					break
				}
				v = v[m:]
				if g.num == fAnyString && g.typ == protowire.BytesType {
					val = g.v
				}
			}
		}
	}
	return key, val
}

func (sc *scanner) scopeSpans(b []byte, svc uint32) {
	for len(b) > 0 {
		f, n := nextField(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if f.num == fSSSpans && f.typ == protowire.BytesType {
			// Encoders write trace_id first: an unwatched trace's span is
			// skipped without reading on.
			if v := f.v; len(v) >= 18 && v[0] == 0x0a && v[1] == 16 && !sc.watched(traceKey(v[2:18])) {
				continue
			}
			sc.span(f.v, svc)
		}
	}
}

func (sc *scanner) span(b []byte, svc uint32) {
	var traceID, spanID, parentID []byte
	var kind uint64
	var h hint
	// Only CLIENT spans name a peer. protobuf-go (SDKs) writes the kind (6)
	// before the attributes (9), which are then read on the way; pdata
	// (Collectors) writes fields in reverse, trace_id last: there the
	// attributes' extent is noted and read once the span turns out to be
	// a watched CLIENT span.
	attrLo, attrHi := -1, -1
	// The loop is nextField inlined by hand for the shapes spans have
	// (one-byte tags): it runs for every field of every span.
	for i := 0; i < len(b); {
		at := i
		tag := b[i]
		if tag >= 0x80 {
			_, n := nextField(b[i:]) // no span field we read has a two-byte tag
			if n < 0 {
				return
			}
			i += n
			continue
		}
		i++
		switch tag & 7 {
		case 2:
			if i >= len(b) {
				return
			}
			l := int(b[i])
			i++
			if l >= 0x80 {
				v, m := protowire.ConsumeVarint(b[i-1:])
				if m < 0 || v > uint64(len(b)) {
					return
				}
				l, i = int(v), i-1+m
			}
			if l > len(b)-i {
				return
			}
			switch tag >> 3 {
			case fSpanTraceID:
				traceID = b[i : i+l]
				if len(traceID) == 16 && !sc.watched(traceKey(traceID)) {
					return
				}
			case fSpanID:
				spanID = b[i : i+l]
			case fSpanParentID:
				parentID = b[i : i+l]
			case fSpanAttributes:
				switch {
				case kind == kindClient:
					h.attr(b[i : i+l])
				case kind == 0:
					if attrLo < 0 {
						attrLo = at
					}
					attrHi = i + l
				}
			}
			i += l
		case 0:
			v, m := protowire.ConsumeVarint(b[i:])
			if m < 0 {
				return
			}
			if tag>>3 == fSpanKind {
				kind = v
			}
			i += m
		case 1:
			i += 8
		case 5:
			i += 4
		default:
			return
		}
	}
	if len(traceID) != 16 || len(spanID) != 8 {
		return
	}
	s := obsSpan{
		trace: traceKey(traceID),
		id:    binary.LittleEndian.Uint64(spanID),
		svc:   svc,
	}
	if len(parentID) == 8 {
		s.parent = binary.LittleEndian.Uint64(parentID)
	}
	if kind == kindServer {
		s.kind = kindServer
	}
	if kind == kindClient {
		s.kind = kindClient
		if attrLo >= 0 {
			for rest := b[attrLo:attrHi]; len(rest) > 0; {
				f, n := nextField(rest)
				if n < 0 {
					return
				}
				rest = rest[n:]
				if f.num == fSpanAttributes && f.typ == protowire.BytesType {
					h.attr(f.v)
				}
			}
		}
		s.peer = sc.peerID(&h, svc)
	}
	sc.spans = append(sc.spans, s)
}

// hint is the best peer name among a CLIENT span's attributes so far:
// peer.service, then Envoy's upstream_cluster, server.address,
// net.peer.name.
type hint struct {
	name []byte
	prio int // 0: none; lower is better
	mesh bool
}

// attr looks at one KeyValue. The key is compared before anything else is
// parsed: most attributes are not hints.
func (h *hint) attr(kv []byte) {
	key := attrKey(kv)
	if len(key) < len("peer.service") || len(key) > len("upstream_cluster") {
		return
	}
	prio := 0
	switch string(key) {
	case "peer.service":
		prio = 1
	case "upstream_cluster":
		prio = 2
	case "server.address":
		prio = 3
	case "net.peer.name":
		prio = 4
	default:
		return
	}
	if h.prio != 0 && prio >= h.prio {
		return
	}
	_, val := stringKV(kv)
	if prio == 2 {
		if !bytes.HasPrefix(val, []byte(istioOutboundPrefix)) {
			return // inbound|…, PassthroughCluster, BlackHoleCluster: no callee name
		}
		val = val[bytes.LastIndexByte(val, '|')+1:]
	}
	if prio > 1 {
		val = hostName(val)
	}
	if len(val) == 0 {
		return
	}
	h.name, h.prio, h.mesh = val, prio, prio == 2
}

// attrKey returns a KeyValue's key. The fast paths are the two layouts
// encoders write, key first (protobuf-go) or value first (pdata), with
// one-byte lengths; anything else takes the general walk.
func attrKey(kv []byte) []byte {
	const keyTag, valueTag = fKVKey<<3 | 2, fKVValue<<3 | 2
	if len(kv) >= 2 && kv[1] < 0x80 {
		switch kv[0] {
		case keyTag:
			if n := int(kv[1]); n <= len(kv)-2 {
				return kv[2 : 2+n]
			}
		case valueTag:
			if k := 2 + int(kv[1]); k+2 <= len(kv) && kv[k] == keyTag && kv[k+1] < 0x80 {
				if n := int(kv[k+1]); n <= len(kv)-k-2 {
					return kv[k+2 : k+2+n]
				}
			}
		}
	}
	var key []byte
	for len(kv) > 0 {
		f, n := nextField(kv)
		if n < 0 {
			return nil
		}
		kv = kv[n:]
		if f.num == fKVKey && f.typ == protowire.BytesType {
			key = f.v
		}
	}
	return key
}

// peerID interns the hint; 0: none usable.
func (sc *scanner) peerID(h *hint, svc uint32) uint32 {
	if h.prio == 0 {
		return 0
	}
	id := sc.names.intern(h.name)
	if id == svc {
		return 0
	}
	if h.mesh {
		if ni := sc.names.info(id); !ni.meshPeer.Load() {
			ni.meshPeer.Store(true)
		}
	}
	return id
}

// hostName turns a host into the name a mesh gives its service: port
// dropped, "auth-api.auth.svc.cluster.local" → "auth-api.auth"; IP
// addresses name no service and give nil.
func hostName(h []byte) []byte {
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h, ':') == i {
		h = h[:i]
	}
	if len(h) == 0 || bytes.IndexByte(h, ':') >= 0 || isIPv4(h) {
		return nil
	}
	if i := bytes.Index(h, []byte(kubernetesSvcMarker)); i > 0 {
		return h[:i]
	}
	return bytes.TrimSuffix(h, []byte(kubernetesSvcPostfix))
}

func isIPv4(h []byte) bool {
	for _, c := range h {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// traceKey mixes a 16-byte trace id into 64 bits (splitmix64's finalizer),
// so that shards and map keys stay even for 64-bit Zipkin ids (upper half 0).
func traceKey(id []byte) uint64 {
	return mix(binary.LittleEndian.Uint64(id[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(id[8:]))
}

// spanKey identifies a span across traces: span ids alone repeat across
// traces more often than 64 mixed bits collide.
func spanKey(trace, id uint64) uint64 { return mix(trace ^ id*0xff51afd7ed558ccd) }

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
