package topology

import (
	"strings"
	"sync"
	"sync/atomic"
)

// overflowName stands for every name beyond Config.MaxNames, as the
// receiver's "_other" does for the service label.
const overflowName = "_other"

// Path bits: which kind of sender reported a service.
const (
	pathSidecar uint32 = 1 << iota // Zipkin: Envoy sidecars and gateways
	pathApp                        // OTLP and Jaeger: application SDKs
)

// nameInfo is one service or peer name. Services and peer names share one
// table so that a hinted edge and a linked edge to the same callee are the
// same edge.
type nameInfo struct {
	name      string
	namespace atomic.Pointer[string] // k8s.namespace.name or service.namespace of the resource
	paths     atomic.Uint32          // pathSidecar | pathApp
	meshPeer  atomic.Bool            // named by a sidecar's upstream_cluster: the mesh routes to it
	orphans   atomic.Uint64          // cumulative, for the metric
	watched   atomic.Uint64          // spans of watched traces, for the metric
	rootless  atomic.Uint64
}

// names interns service and peer names to small ids, bounded.
type names struct {
	max int

	mu   sync.RWMutex
	ids  map[string]uint32
	list []*nameInfo // by id; append-only
}

func newNames(max int) *names {
	n := &names{max: max, ids: make(map[string]uint32)}
	n.intern([]byte(overflowName)) // id 0
	return n
}

// intern returns the id of name, adding it while there is room.
func (n *names) intern(name []byte) uint32 {
	n.mu.RLock()
	id, ok := n.ids[string(name)]
	n.mu.RUnlock()
	if ok {
		return id
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if id, ok := n.ids[string(name)]; ok {
		return id
	}
	if len(n.list)-1 >= n.max {
		return 0
	}
	id = uint32(len(n.list))
	s := string(name)
	n.ids[s] = id
	n.list = append(n.list, &nameInfo{name: s})
	return id
}

// lookup returns the id of name without adding it.
func (n *names) lookup(name string) (uint32, bool) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	id, ok := n.ids[name]
	return id, ok
}

func (n *names) info(id uint32) *nameInfo {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.list[id]
}

func (n *names) all() []*nameInfo {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.list[:len(n.list):len(n.list)]
}

// setNamespace records the namespace a service's resource declares.
func (ni *nameInfo) setNamespace(ns []byte) {
	if p := ni.namespace.Load(); p != nil && *p == string(ns) {
		return
	}
	s := string(ns)
	ni.namespace.Store(&s)
}

func (ni *nameInfo) addPath(p uint32) {
	if ni.paths.Load()&p == 0 {
		ni.paths.Or(p)
	}
}

// workload is the name Istio gives the workload a service belongs to,
// "<app>.<namespace>": a Zipkin service from a sidecar already is one
// (Istio writes istio.canonical_service + "." + namespace); an SDK's service
// "auth-api" whose resource says k8s.namespace.name (or service.namespace)
// "auth" becomes "auth-api.auth"; a name that already ends in ".auth" stays.
func (ni *nameInfo) workload() string {
	p := ni.namespace.Load()
	if p == nil || *p == "" || strings.HasSuffix(ni.name, "."+*p) {
		return ni.name
	}
	return ni.name + "." + *p
}
