package exporter

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// loadRequest is push number push: spans spans over 4 traces, span ids
// unique across pushes.
func loadRequest(tb testing.TB, push, spans int) []byte {
	tb.Helper()
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "load")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range spans {
		s := ss.Spans().AppendEmpty()
		s.SetTraceID(pcommon.TraceID{0xee, byte(push >> 16), byte(push >> 8), byte(push), 15: byte(i % 4)})
		s.SetSpanID(pcommon.SpanID{0xee, byte(push >> 16), byte(push >> 8), byte(push), 0, 0, byte(i >> 8), byte(i)})
		s.SetName("load")
		s.Attributes().PutStr("pad", "0123456789abcdef0123456789abcdef")
	}
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestKafkaOutageWithQueueDir: a 30 s broker outage under steady load,
// with the persistent queue. The broker goes down (its log kept on disk,
// as a real broker's), traceport itself is restarted in the middle of the
// outage, then the broker comes back on the same address. While the queue
// is full, pushes are refused (clients get 429 / RESOURCE_EXHAUSTED and
// retry). Every push that was accepted must be in the topic afterwards;
// duplicates are counted, not forbidden: delivery is at least once.
func TestKafkaOutageWithQueueDir(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	kdir, qdir := t.TempDir(), t.TempDir()
	broker := func() *kfake.Cluster {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, testTopic), kfake.Ports(port), kfake.DataDir(kdir))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := broker()
	brokers := c.ListenAddrs()

	cfg := kafkaTestConfig(brokers, nil)
	cfg.QueueDir, cfg.QueueFsync = qdir, FsyncNever // a process restart, not a machine crash
	cfg.QueueSpans, cfg.BatchMaxSpans = 3000, 500
	cfg.RetryMaxElapsed, cfg.RetryMaxInterval = 0, time.Second
	newExporter := func() (*Exporter, *prometheus.Registry) {
		reg := prometheus.NewPedanticRegistry()
		e, err := New(cfg, reg, testLog())
		if err != nil {
			t.Fatal(err)
		}
		reg.MustRegister(e.Accounts())
		e.Start()
		return e, reg
	}

	var mu sync.Mutex
	e, reg := newExporter()
	accepted := map[string]bool{} // span ids of accepted pushes
	refused, admitRefused := 0, 0
	stop := make(chan struct{})
	var loadDone sync.WaitGroup
	loadDone.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for push := 0; ; push++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			data := loadRequest(t, push, 20)
			mu.Lock()
			if ok, _ := e.Admit(true); !ok {
				admitRefused++
			}
			err := e.Push(data, 20, true, nil)
			switch {
			case err == nil:
				for _, s := range decodeRecord(t, KafkaOTLPProto, data) {
					accepted[s.span] = true
				}
			case errors.Is(err, ErrQueueFull):
				refused++
			default:
				t.Errorf("push: %v", err)
			}
			if push%50 == 0 {
				scrapeIdentity(t, reg)
			}
			mu.Unlock()
		}
	})
	phase := func(what string, d time.Duration) {
		t.Logf("%s for %v", what, d)
		time.Sleep(d)
	}
	phase("steady load", 2*time.Second)
	c.Close()
	phase("broker down", 15*time.Second)

	// traceport restarts mid-outage: what it holds stays in the queue dir.
	mu.Lock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	e.Shutdown(ctx)
	cancel()
	before := e.Stats()
	if before.Dropped[ReasonShutdown] != 0 {
		t.Errorf("restart with --queue-dir dropped %d spans", before.Dropped[ReasonShutdown])
	}
	e, reg = newExporter()
	if s := e.Stats(); s.Replayed == 0 {
		t.Errorf("nothing replayed from the queue dir after a restart mid-outage: %+v", s)
	}
	mu.Unlock()
	phase("broker still down", 15*time.Second)

	c = broker()
	defer c.Close()
	phase("broker back", 2*time.Second)
	close(stop)
	loadDone.Wait()
	eventually(t, 60*time.Second, "queue drained", settled(e))
	s := checkIdentity(t, e, reg)
	for r, n := range s.Dropped {
		if n != 0 && r != ReasonQueueFull { // queue_full: the pushes refused, counted in refused
			t.Errorf("dropped{%s} = %d after the outage", r, n)
		}
	}
	if refused == 0 || admitRefused == 0 {
		t.Errorf("a 30 s outage at 2000 spans/s never filled a 3000-span queue: refused %d pushes, Admit refused %d", refused, admitRefused)
	}

	got := readTopic(t, brokers, KafkaOTLPProto, len(accepted), 60*time.Second)
	seen := map[string]int{}
	for _, g := range got {
		seen[g.span]++
	}
	missing, dups := 0, 0
	for id := range accepted {
		switch n := seen[id]; {
		case n == 0:
			missing++
		case n > 1:
			dups += n - 1
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d accepted spans are not in the topic", missing, len(accepted))
	}
	t.Logf("accepted %d spans, refused %d pushes (queue full), %d duplicates in the topic, exported after restart %d (replayed %d)",
		len(accepted), refused, dups, s.Exported, s.Replayed)
}
