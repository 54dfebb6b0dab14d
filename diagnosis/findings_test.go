package diagnosis

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/traceport/traceport/topology"
)

// fakeTable is a source table given outright, for the findings rules alone.
type fakeTable []SourceStat

func (t fakeTable) Sources() []SourceStat       { return t }
func (t fakeTable) Rejections() []RejectedEntry { return nil }

func TestFindingsRules(t *testing.T) {
	now := time.Unix(1766022480, 0)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	sidecar := func(service string, last time.Time) SourceStat {
		return SourceStat{Protocol: "zipkin", Encoding: "json", Service: service, Spans: 1, Requests: 1, LastSeen: last}
	}
	app := func(service string, last time.Time) SourceStat {
		return SourceStat{Protocol: "otlp_grpc", Encoding: "proto", Service: service, Spans: 1, Requests: 1, LastSeen: last}
	}
	// want: per finding, "workload kind" and a phrase of its message.
	type finding struct{ what, says string }
	f := func(name string, table fakeTable, want ...finding) {
		t.Helper()
		d := New(Config{SilenceAfter: 5 * time.Minute, Now: func() time.Time { return now }}, topology.New(topology.Config{}, nil), table)
		got := d.Report().Findings
		if len(got) != len(want) {
			t.Errorf("%s: findings %+v, want %+v", name, got, want)
			return
		}
		for i, w := range want {
			if what := got[i].Workload + " " + got[i].Kind; what != w.what || !strings.Contains(got[i].Message, w.says) {
				t.Errorf("%s: finding %s: %s; want %s saying %q", name, what, got[i].Message, w.what, w.says)
			}
		}
	}
	f("nothing yet", nil)
	f("app live, no sidecar, the mesh reports nowhere",
		fakeTable{app("a", ago(time.Minute)), sidecar("b", ago(10*time.Minute))})
	f("app live, no sidecar, another sidecar live",
		fakeTable{app("a", ago(time.Minute)), sidecar("b", ago(time.Minute))},
		finding{"a sidecar_absent", "if this workload runs with an Istio sidecar, its spans never reached traceport"})
	f("app live, sidecar silent 10m",
		fakeTable{app("a", ago(time.Minute)), sidecar("a", ago(10*time.Minute))},
		finding{"a sidecar_stale", "its sidecar's spans (Zipkin) stopped 10m0s ago"})
	f("sidecar live, app silent 6m",
		fakeTable{app("a", ago(6*time.Minute)), sidecar("a", ago(time.Second))},
		finding{"a app_stale", "its app's spans (OTLP) stopped 6m0s ago"})
	f("both silent", fakeTable{app("a", ago(6*time.Minute)), sidecar("a", ago(7*time.Minute))})
	f("both live", fakeTable{app("a", ago(time.Second)), sidecar("a", ago(time.Second))})
	f("silent exactly SilenceAfter is still live", fakeTable{app("a", ago(time.Second)), sidecar("a", ago(5*time.Minute))})
	f("the doctor's probes", fakeTable{app(ProbeService, ago(time.Second)), sidecar("b", ago(time.Second))})
	f("findings sorted by workload",
		fakeTable{app("z", ago(time.Second)), app("m", ago(time.Second)), sidecar("b", ago(time.Second))},
		finding{"m sidecar_absent", "of m arrive"}, finding{"z sidecar_absent", "of z arrive"})
}

func TestSourceEntries(t *testing.T) {
	now := time.Unix(1766022480, 0)
	table := fakeTable{
		{Protocol: "otlp_http", Encoding: "json", Service: "a", Spans: 3, Requests: 2, LastSeen: now.Add(-10 * time.Minute), Clients: []string{"10.0.0.1"}, MoreClients: 5},
		{Protocol: "zipkin", Encoding: "json", Service: "a", Spans: 1, Requests: 1, LastSeen: now.Add(-1500 * time.Millisecond)},
		{Protocol: "otlp_grpc", Encoding: "proto", Service: ProbeService, Spans: 1, Requests: 1, LastSeen: now},
	}
	d := New(Config{Now: func() time.Time { return now }}, topology.New(topology.Config{}, nil), table)
	rep := d.Report()
	if rep.SilenceAfter != "5m0s" || rep.Rejected == nil {
		t.Errorf("silenceAfter %q (want the default 5m0s), rejected %v (want [] in JSON)", rep.SilenceAfter, rep.Rejected)
	}
	var got []string
	for _, s := range rep.Sources {
		got = append(got, fmt.Sprintf("%s %s %s probe=%v stale=%v silent=%s clients=%v+%d", s.Workload, s.Path, s.Protocol, s.Probe, s.Stale, s.SilentFor, s.Clients, s.MoreClients))
	}
	want := []string{
		"a sidecar zipkin probe=false stale=false silent=2s clients=[]+0",
		"a app otlp_http probe=false stale=true silent=10m0s clients=[10.0.0.1]+5",
		"traceport-doctor app otlp_grpc probe=true stale=false silent=0s clients=[]+0",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sources\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, s := range rep.Sources {
		if s.Clients == nil {
			t.Errorf("%s: clients nil, want [] in JSON", s.Service)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(name string, change func(*Config), want ...string) {
		t.Helper()
		c := DefaultConfig()
		change(&c)
		err := c.Validate()
		var got []string
		if err != nil {
			got = strings.Split(err.Error(), "\n")
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	f("defaults", func(*Config) {})
	f("silence-after 0", func(c *Config) { c.SilenceAfter = 0 }, "silence-after: want > 0")
	f("orphan-grace 0", func(c *Config) { c.OrphanGrace = 0 }, "orphan-grace: want > 0")
	f("ratio 0", func(c *Config) { c.HealthSampleRatio = 0 }, "health-sample-ratio: want more than 0 and at most 1")
	f("ratio 1.5", func(c *Config) { c.HealthSampleRatio = 1.5 }, "health-sample-ratio: want more than 0 and at most 1")
	f("ratio 1", func(c *Config) { c.HealthSampleRatio = 1 })
	f("window under grace", func(c *Config) { c.HealthWindow = time.Second }, "health-window: want at least orphan-grace")
	f("all at once", func(c *Config) { *c = Config{SilenceAfter: -1, OrphanGrace: time.Minute} },
		"silence-after: want > 0", "health-sample-ratio: want more than 0 and at most 1", "health-window: want at least orphan-grace")
}
