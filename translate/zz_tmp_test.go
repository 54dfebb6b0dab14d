package translate

import "testing"

func BenchmarkTmpParseOnly(b *testing.B) {
	body := envoyBody(b, 100)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for range b.N {
		d := getZDecoder(ZipkinOptions{})
		s := jsonScanner{b: body, d: d}
		if !s.array(func(i int) bool { return d.v2Span(&s, i) }) {
			b.Fatal(s.err)
		}
		putZDecoder(d)
	}
}
