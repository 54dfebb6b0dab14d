package receiver

import (
	"net"
	"sync"

	dto "github.com/prometheus/client_model/go"

	"github.com/traceport/traceport/translate"
)

// What others read of the source table besides the counts: which client
// hosts each source came from, and what was refused for which reason.
// Package diagnosis turns them into findings.

// maxClients bounds the client addresses kept per source.
const maxClients = 8

// clientSet is the first maxClients distinct client hosts of a source, and
// how many requests came from others.
type clientSet struct {
	mu    sync.Mutex
	hosts []string
	more  int64
}

func (c *clientSet) note(host string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, h := range c.hosts {
		if h == host {
			return
		}
	}
	if len(c.hosts) < maxClients {
		c.hosts = append(c.hosts, host)
		return
	}
	c.more++
}

func (c *clientSet) list() ([]string, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.hosts...), c.more
}

// noteClient records the client address (host:port or host) of one
// accepted request for each of its services. ingest calls it.
func (s *sources) noteClient(protocol, encoding string, counts []translate.ServiceCount, addr string) {
	if addr == "" {
		return
	}
	host := addr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		host = h
	}
	for _, c := range counts {
		s.get(sourceKey{protocol, encoding, c.Service}, 0).clients.note(host)
	}
}

// RejectedStat is what was refused from one protocol for one reason.
// Requests refused before decoding have no service, so refusals are
// counted per protocol, not per service.
type RejectedStat struct {
	Protocol, Reason string
	Requests, Spans  int64
}

// Rejections returns every (protocol, reason) that refused anything.
func (rc *Receiver) Rejections() []RejectedStat { return rc.sources.rejections() }

// rejections reads the refusal counters.
func (s *sources) rejections() []RejectedStat {
	out := []RejectedStat{}
	var m dto.Metric
	value := func(c interface{ Write(*dto.Metric) error }) int64 {
		m.Reset()
		if c.Write(&m) != nil {
			return 0
		}
		return int64(m.GetCounter().GetValue())
	}
	for _, p := range allProtocols {
		for _, r := range allReasons {
			req := value(s.rejectedRequests.WithLabelValues(p, string(r)))
			spans := value(s.rejectedSpans.WithLabelValues(p, string(r)))
			if req > 0 || spans > 0 {
				out = append(out, RejectedStat{Protocol: p, Reason: string(r), Requests: req, Spans: spans})
			}
		}
	}
	return out
}
