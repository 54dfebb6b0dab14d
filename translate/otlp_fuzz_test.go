package translate

import (
	"slices"
	"testing"
)

// Seeds live in testdata/fuzz/<Name>/; run e.g.
// go test ./translate -run '^$' -fuzz FuzzScanOTLP -fuzztime 60s -fuzzminimizetime 5s
// (minimizing each new input for the default 60 s shows as 0 execs/sec).

// FuzzScanOTLP is the differential test against pdata: same verdict (bar the
// documented stricter cases), same counts.
func FuzzScanOTLP(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		counts, err := ScanOTLP(data, nil)
		checkAgainstPdata(t, data, counts, err)
		// Appending to earlier entries never changes them.
		prior := []ServiceCount{{"prior", 1}}
		again, err2 := ScanOTLP(data, prior)
		if (err == nil) != (err2 == nil) || !slices.Equal(again[:1], prior) || (err == nil && !slices.Equal(again[1:], counts)) {
			t.Fatalf("scan with prior counts: %v, %v; alone: %v, %v", again, err2, counts, err)
		}
		// Noting spans for a visitor changes neither verdict nor counts.
		var log visitLog
		seen, errSeen := ScanOTLPVisit(data, nil, &log)
		if errString(errSeen) != errString(err) || !slices.Equal(seen, counts) {
			t.Fatalf("scan with a visitor: %v, %v; without: %v, %v", seen, errSeen, counts, err)
		}
		// The observer's walk of requests traceport encoded shows what the
		// validation walk shows.
		checkVisitsAgree(t, data)
	})
}

// FuzzOTLPJSON checks that every accepted JSON body becomes a request
// ScanOTLP accepts with the same counts.
func FuzzOTLPJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		proto, counts, spans, err := OTLPJSON(body, nil)
		if err != nil {
			return
		}
		scanned, err := ScanOTLP(proto, nil)
		if err != nil {
			t.Fatalf("ScanOTLP refuses the converted body: %v", err)
		}
		if !slices.Equal(scanned, counts) {
			t.Fatalf("counts %v, ScanOTLP says %v", counts, scanned)
		}
		total := 0
		for _, c := range counts {
			total += c.Spans
		}
		if total != spans {
			t.Fatalf("spans %d, counts add up to %d", spans, total)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
