package topology
import ("testing";"github.com/traceport/traceport/bench";"github.com/traceport/traceport/translate")
func BenchmarkDbgScanOTLP(b *testing.B) {
	body := bench.SDKOTLP(100, 1)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ { translate.ScanOTLP(body, nil) }
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
}
func BenchmarkDbgMine(b *testing.B) {
	body := bench.SDKOTLP(100, 1)
	tr := New(Config{}, nil)
	sc := &scanner{names: tr.names}
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ { sc.spans = sc.spans[:0]; sc.request(body) }
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
}
