package exporter

import (
	"context"
	"testing"
	"time"
)

func TestZZDebug(t *testing.T) {
	for _, mb := range []int{4_000_000} {
		for _, snd := range []int{4, 4, 4, 4, 4, 4} {
			t.Logf("maxbytes %d senders %d", mb, snd)
			data := request(t, 100)
			addr, _ := rawSink(t)
			cfg := Defaults()
			cfg.Endpoint = addr
			cfg.Compression = "none"
			cfg.BatchMaxBytes = mb
			cfg.Senders = snd
			e, reg := start(t, cfg)
			_ = reg
			t0 := time.Now()
			waits := 0
			for range 5000 {
				for ok, _ := e.Admit(true); !ok; ok, _ = e.Admit(true) {
					waits++
					time.Sleep(50 * time.Microsecond)
				}
				e.Push(data, 100, true)
			}
			t1 := time.Since(t0)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			e.Shutdown(ctx)
			t.Logf("push %v total %v waits %d", t1, time.Since(t0), waits)
			mfs, _ := reg.Gather()
			for _, mf := range mfs {
				if mf.GetName() == "traceport_export_duration_seconds" || mf.GetName() == "traceport_export_failures_total" {
					for _, m := range mf.GetMetric() {
						h := m.GetHistogram()
				if h == nil {
					t.Logf("%s %v %v", mf.GetName(), m.GetLabel(), m.GetCounter().GetValue())
					continue
				}
						t.Logf("%s %v count %d sum %.3f", mf.GetName(), m.GetLabel(), h.GetSampleCount(), h.GetSampleSum())
					}
				}
			}
		}
	}
}
