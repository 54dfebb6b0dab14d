package transport

import (
	"sync"
	"testing"
)

func TestBudget(t *testing.T) {
	b := NewBudget(400, 50) // a quarter of 400: 100 bytes
	if b.limit != 100 {
		t.Fatalf("limit %d, want 100", b.limit)
	}
	h1, h2 := b.NewHold(), b.NewHold()
	if !h1.Grow(60) || !h2.Grow(40) {
		t.Fatal("charges within the budget were refused")
	}
	if h2.Grow(1) {
		t.Fatal("a charge past the budget was accepted")
	}
	if b.InUse() != 100 {
		t.Fatalf("in use %d after a refused charge, want 100", b.InUse())
	}
	h1.Free()
	h1.Free() // idempotent
	if !h2.Grow(60) || b.InUse() != 100 {
		t.Fatalf("freed bytes were not given back: in use %d", b.InUse())
	}
	h2.Free()
	if b.InUse() != 0 {
		t.Fatalf("in use %d after every hold was freed", b.InUse())
	}
	if got := NewBudget(400, 300).limit; got != 300 {
		t.Fatalf("budget %d is below one largest request (300)", got)
	}
	if unlimited := NewBudget(0, 300); !unlimited.take(1 << 40) {
		t.Fatal("no --memory-limit must mean no budget")
	}
}

func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(4000, 1) // 1000 bytes
	var wg sync.WaitGroup
	var mu sync.Mutex
	granted := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := b.NewHold()
			for range 500 {
				if h.Grow(1) {
					mu.Lock()
					granted++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if granted != 1000 || b.InUse() != 1000 {
		t.Fatalf("granted %d, in use %d: concurrent charges must fill the budget exactly", granted, b.InUse())
	}
}
