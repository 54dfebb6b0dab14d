package topology

import (
	"bytes"
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/traceport/traceport/translate"
)

// obsSpan is what Observe keeps of one span while it handles a request.
type obsSpan struct {
	trace      uint64 // trace id, mixed: the shard and map keys derive from it
	id, parent uint64 // raw span ids; parent 0: a root
	svc        uint32 // name id of the resource's service.name
	peer       uint32 // name id of the CLIENT span's peer hint, 0: none
	kind       uint8  // kindClient, kindServer, or 0 for the other kinds
}

// scanner is shown one request's resources and spans by the receiver's
// validation walk (translate.ScanOTLPVisit) and keeps what it needs aside
// until the request is accepted (Tracker.End): a refused request leaves no
// trace in the tables, not even a name.
type scanner struct {
	resources []obsResource
	hints     []hint // CLIENT spans' peer hints; obsSpan.peer is index+1 until End
	spans     []obsSpan
	order     []int32
	names     *names
	path      uint32
	sample    uint32 // see Tracker.sample
}

// obsResource is one ResourceSpans' service and namespace, slices of the
// request; obsSpan.svc is its index until End.
type obsResource struct{ service, namespace []byte }

// Field numbers and values read here (opentelemetry/proto/trace/v1/trace.proto).
const (
	fSpanAttributes      = 9
	fKVKey               = 1
	fKVValue             = 2
	kindServer           = translate.SpanKindServer
	kindClient           = translate.SpanKindClient
	istioOutboundPrefix  = "outbound|"
	kubernetesSvcMarker  = ".svc."
	kubernetesSvcPostfix = ".svc"
)

func (sc *scanner) watched(trace uint64) bool { return uint32(trace) <= sc.sample }

// OTLPResource implements translate.OTLPVisitor.
func (sc *scanner) OTLPResource(service, namespace []byte) {
	sc.resources = append(sc.resources, obsResource{service, namespace})
}

// OTLPSpan implements translate.OTLPVisitor. An unwatched trace's span is
// dropped on its trace id alone.
func (sc *scanner) OTLPSpan(sp translate.OTLPSpan) {
	if len(sp.TraceID) != 16 || len(sp.SpanID) != 8 || len(sc.resources) == 0 {
		return
	}
	s := obsSpan{
		trace: traceKey(sp.TraceID),
		id:    binary.LittleEndian.Uint64(sp.SpanID),
		svc:   uint32(len(sc.resources) - 1),
	}
	if !sc.watched(s.trace) {
		return
	}
	if len(sp.ParentSpanID) == 8 {
		s.parent = binary.LittleEndian.Uint64(sp.ParentSpanID)
	}
	switch sp.Kind {
	case kindServer:
		s.kind = kindServer
	case kindClient: // only CLIENT spans name a peer
		s.kind = kindClient
		var h hint
		for rest := sp.Attributes; len(rest) > 0; {
			// One-byte length, as nearly every attribute has: read here,
			// not by a call (5% of an SDK request's validate-and-observe).
			if len(rest) >= 2 && rest[0] == fSpanAttributes<<3|2 && rest[1] < 0x80 && int(rest[1]) <= len(rest)-2 {
				h.attr(rest[2 : 2+int(rest[1])])
				rest = rest[2+int(rest[1]):]
				continue
			}
			f, n := translate.NextField(rest)
			if n < 0 {
				break
			}
			rest = rest[n:]
			if f.Num == fSpanAttributes && f.Type == protowire.BytesType {
				h.attr(f.Value)
			}
		}
		if h.prio != 0 {
			sc.hints = append(sc.hints, h)
			s.peer = uint32(len(sc.hints))
		}
	}
	sc.spans = append(sc.spans, s)
}

// resolve turns what the walk kept into name ids, resource by resource in
// request order, as names are first seen.
func (sc *scanner) resolve() {
	ids := sc.order[:0] // borrowed: add reuses it after
	for _, r := range sc.resources {
		service := r.service
		if len(service) == 0 {
			service = []byte("unknown_service")
		}
		svc := sc.names.intern(service)
		info := sc.names.info(svc)
		info.addPath(sc.path)
		if len(r.namespace) > 0 {
			info.setNamespace(r.namespace)
		}
		ids = append(ids, int32(svc))
	}
	for i := range sc.spans {
		s := &sc.spans[i]
		s.svc = uint32(ids[s.svc])
		if s.peer != 0 {
			s.peer = sc.peerID(&sc.hints[s.peer-1], s.svc)
		}
	}
	sc.order = ids[:0]
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
	_, val := translate.KeyValueString(kv)
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
		f, n := translate.NextField(kv)
		if n < 0 {
			return nil
		}
		kv = kv[n:]
		if f.Num == fKVKey && f.Type == protowire.BytesType {
			key = f.Value
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
