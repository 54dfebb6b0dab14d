package receiver

import (
	"sync"
	"testing"
)

func TestByteBudget(t *testing.T) {
	b := newByteBudget(400, 50) // a quarter of 400: 100 bytes
	if b.limit != 100 {
		t.Fatalf("limit %d, want 100", b.limit)
	}
	h1, h2 := b.newHold(), b.newHold()
	if !h1.grow(60) || !h2.grow(40) {
		t.Fatal("charges within the budget were refused")
	}
	if h2.grow(1) {
		t.Fatal("a charge past the budget was accepted")
	}
	if b.inUse() != 100 {
		t.Fatalf("in use %d after a refused charge, want 100", b.inUse())
	}
	h1.free()
	h1.free() // idempotent
	if !h2.grow(60) || b.inUse() != 100 {
		t.Fatalf("freed bytes were not given back: in use %d", b.inUse())
	}
	h2.free()
	if b.inUse() != 0 {
		t.Fatalf("in use %d after every hold was freed", b.inUse())
	}
	if got := newByteBudget(400, 300).limit; got != 300 {
		t.Fatalf("budget %d is below one largest request (300)", got)
	}
	if unlimited := newByteBudget(0, 300); !unlimited.take(1 << 40) {
		t.Fatal("no --memory-limit must mean no budget")
	}
}

func TestByteBudgetConcurrent(t *testing.T) {
	b := newByteBudget(4000, 1) // 1000 bytes
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := b.newHold()
			for range 500 {
				if h.grow(1) {
					mu.Lock()
					granted++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if granted != 1000 || b.inUse() != 1000 {
		t.Fatalf("granted %d, in use %d: concurrent charges must fill the budget exactly", granted, b.inUse())
	}
}
