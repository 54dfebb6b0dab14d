package bufpool

import "testing"

func TestGetPut(t *testing.T) {
	p := &Pool{}
	for _, size := range []int{0, 1, 255, 256, 257, 43_000, 1 << 20, 1<<20 + 1, 1 << 24, 1<<24 + 1} {
		b := p.Get(size)
		if len(*b) != size {
			t.Fatalf("Get(%d) has length %d", size, len(*b))
		}
		if c := cap(*b); size <= 1<<maxShift && (c < size || c > size+size/4+256) {
			t.Fatalf("Get(%d) has capacity %d, want at most a quarter more", size, c)
		}
		(*b)[:cap(*b)][cap(*b)-1] = 7
		p.Put(b)
		again := p.Get(size)
		if len(*again) != size {
			t.Fatalf("second Get(%d) has length %d", size, len(*again))
		}
		p.Put(again)
	}
	// A buffer of a foreign capacity is not pooled (it would be handed out
	// for sizes it cannot hold).
	odd := make([]byte, 1000)
	p.Put(&odd)
	if b := p.Get(1000); cap(*b) != 1024 {
		t.Fatalf("Get(1000) after Put of a 1000-byte buffer has capacity %d", cap(*b))
	}
	// Every size maps to a class that holds it, and a class's own size to
	// itself.
	for n := 1; n < 1<<20; n += 1 + n/7 {
		i, c := class(n)
		if c < n || c > n+n/4+256 {
			t.Fatalf("class(%d) = %d bytes", n, c)
		}
		if j, d := class(c); j != i || d != c {
			t.Fatalf("class(%d) = #%d %d bytes, class(%d) = #%d %d bytes", n, i, c, c, j, d)
		}
	}
}

func BenchmarkGetPut43K(b *testing.B) {
	p := &Pool{}
	for b.Loop() {
		p.Put(p.Get(43_000))
	}
}
