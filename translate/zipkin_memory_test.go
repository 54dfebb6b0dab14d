//go:build unix

package translate

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// TestZipkinJSONDecodeMemory: decoding a JSON body allocates at most four
// times its size, output included, for the bodies that cost most per byte:
// a span of a million short tags, and many Envoy spans. Everything the
// decoder allocates is counted (TotalAlloc, with the collector off, is
// more than the peak could be).
func TestZipkinJSONDecodeMemory(t *testing.T) {
	f := func(name string, body []byte) {
		t.Run(name, func(t *testing.T) {
			// A first decode fills the decoder pool as a busy receiver's is.
			if _, _, _, err := ZipkinV2JSONToOTLP(envoyBody(t, 10), ZipkinOptions{}, nil, nil); err != nil {
				t.Fatal(err)
			}
			dst := make([]byte, 0, len(body)+512) // as the receiver sizes it
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			out, _, _, err := ZipkinV2JSONToOTLP(body, ZipkinOptions{}, dst, nil)
			runtime.ReadMemStats(&after)
			if err != nil || len(out) == 0 {
				t.Fatal(err)
			}
			ratio := float64(after.TotalAlloc-before.TotalAlloc) / float64(len(body))
			t.Logf("%d bytes: allocated %.2f× the body", len(body), ratio)
			if ratio > 4 {
				t.Errorf("decoding a %d-byte body allocated %.1f× its size, want at most 4×", len(body), ratio)
			}
		})
	}
	f("a million tags", manyTagsBody(1_000_000))
	f("envoy spans", envoyBody(t, 2_000))
}

// TestZipkinRepeatedTagKeys: with few tags or many (two ways of finding
// repeats), a repeated key keeps its first place and its last value, and a
// tag named like an endpoint attribute gives way to the endpoint's value,
// as pcommon.Map.Put would have it.
func TestZipkinRepeatedTagKeys(t *testing.T) {
	for _, n := range []int{20, 200} {
		var tags []string
		want := pcommon.NewMap()
		put := func(k, v string) {
			tags = append(tags, fmt.Sprintf("%q:%q", k, v))
			want.PutStr(k, v)
		}
		for i := range n {
			put(fmt.Sprintf("k%d", i%(n/2)), fmt.Sprint("v", i)) // every key twice
			if i == n/3 {
				put("peer.service", "from a tag")
			}
		}
		want.PutStr("peer.service", "remote")
		want.PutInt("network.peer.port", 9411)
		body := `[{"traceId":"1","id":"2","timestamp":1,"remoteEndpoint":{"serviceName":"remote","port":9411},"tags":{` + strings.Join(tags, ",") + `}}]`
		td, rej, err := ZipkinV2JSON([]byte(body), ZipkinOptions{})
		if err != nil || rej.Spans != 0 {
			t.Fatal(err, rej)
		}
		got := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).Attributes()
		if fmt.Sprint(got.AsRaw()) != fmt.Sprint(want.AsRaw()) || got.Len() != want.Len() {
			t.Fatalf("%d tags: attributes\n%v\nwant\n%v", n, got.AsRaw(), want.AsRaw())
		}
		gotKeys, wantKeys := mapKeys(got), mapKeys(want)
		if gotKeys != wantKeys {
			t.Errorf("%d tags: key order\n%s\nwant\n%s", n, gotKeys, wantKeys)
		}
	}
}

func mapKeys(m pcommon.Map) string {
	var b strings.Builder
	m.Range(func(k string, _ pcommon.Value) bool {
		b.WriteString(k + " ")
		return true
	})
	return b.String()
}
