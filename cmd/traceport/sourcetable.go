package main

import (
	"github.com/traceport/traceport/diagnosis"
	"github.com/traceport/traceport/receiver"
)

// sourceTable hands the receiver's source table to diagnosis, which
// imports nothing of the receiver (nor, with it, the listener and the
// protocol servers). The types convert field for field: a field added to
// one and not the other stops the build here.
type sourceTable struct{ rc *receiver.Receiver }

func (t sourceTable) Sources() []diagnosis.SourceStat {
	stats := t.rc.Sources()
	out := make([]diagnosis.SourceStat, len(stats))
	for i, s := range stats {
		out[i] = diagnosis.SourceStat(s)
	}
	return out
}

func (t sourceTable) Rejections() []diagnosis.RejectedEntry {
	stats := t.rc.Rejections()
	out := make([]diagnosis.RejectedEntry, len(stats))
	for i, s := range stats {
		out[i] = diagnosis.RejectedEntry(s)
	}
	return out
}
