package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreMonotonicAndTight(t *testing.T) {
	f := func(v uint64) {
		t.Helper()
		got := valueOf(bucketOf(v))
		lo, hi := float64(v)*(1-1.0/64), float64(v)*(1+1.0/64)+1
		if float64(got) < lo || float64(got) > hi {
			t.Errorf("valueOf(bucketOf(%d)) = %d, want within 1/64", v, got)
		}
	}
	for _, v := range []uint64{0, 1, 31, 63, 64, 65, 127, 128, 1000, 123456, 1e9, 3.6e12, 1 << 62, ^uint64(0)} {
		f(v)
	}
	prev := -1
	for v := uint64(0); v < 1<<20; v += 7 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf(%d) = %d < %d: not monotonic", v, b, prev)
		}
		prev = b
	}
}

func TestQuantilesMatchSortedSample(t *testing.T) {
	var h histogram
	r := rand.New(rand.NewPCG(1, 2))
	sample := make([]time.Duration, 100000)
	for i := range sample {
		// Log-normal-ish: most around 200µs, a long tail to ~100ms.
		d := time.Duration(100e3 * (1 + r.ExpFloat64()*r.ExpFloat64()*r.ExpFloat64()))
		sample[i] = d
		h.record(d)
	}
	slices.Sort(sample)
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := sample[int(q*float64(len(sample)))-1]
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.02 || diff < -0.02 {
			t.Errorf("q%.3f = %v, want %v ± 2%%", q, got, want)
		}
	}
	var empty histogram
	if got := empty.quantile(0.99); got != 0 {
		t.Errorf("empty quantile = %v, want 0", got)
	}
}
