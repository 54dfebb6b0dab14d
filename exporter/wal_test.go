package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// openTestWAL opens dir with the always policy and closes it at cleanup.
func openTestWAL(tb testing.TB, dir string, maxBytes int64) (*wal, []walRecord) {
	tb.Helper()
	w, recs, err := openWAL(dir, maxBytes, FsyncAlways, 0, testLog())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { w.close() })
	return w, recs
}

// payload is a distinct request body for push i.
func payload(i, size int) []byte {
	b := bytes.Repeat([]byte{byte(i)}, size)
	copy(b, fmt.Sprintf("push-%d-", i))
	return b
}

func mustAppend(tb testing.TB, w *wal, i, size int) item {
	tb.Helper()
	data := payload(i, size)
	ref, err := w.append(data, i+1)
	if err != nil {
		tb.Fatalf("append %d: %v", i, err)
	}
	return item{data: data, spans: i + 1, ref: ref}
}

// wantReplay checks recs are pushes idx, in order, with their bodies.
func wantReplay(tb testing.TB, recs []walRecord, size int, idx ...int) {
	tb.Helper()
	if len(recs) != len(idx) {
		tb.Fatalf("replayed %d pushes, want %d (%v)", len(recs), len(idx), idx)
	}
	for k, i := range idx {
		if !bytes.Equal(recs[k].data, payload(i, size)) || recs[k].spans != i+1 {
			tb.Fatalf("replayed push %d: %d spans, body %.12q; want push %d", k, recs[k].spans, recs[k].data, i)
		}
	}
}

func segments(tb testing.TB, dir string) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+walSegmentExt))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// Pushes not acked come back, in push order and intact; acked ones do not.
func TestWALReplay(t *testing.T) {
	dir := t.TempDir()
	w, recs := openTestWAL(t, dir, 1<<30)
	wantReplay(t, recs, 0)
	var items []item
	for i := range 10 {
		items = append(items, mustAppend(t, w, i, 1000))
	}
	w.ack([]item{items[7], items[1]})
	w.ack(items[3:5])
	w.close()

	w2, recs := openTestWAL(t, dir, 1<<30)
	wantReplay(t, recs, 1000, 0, 2, 5, 6, 8, 9)
	if w2.corruptBytes() != 0 {
		t.Errorf("corrupt bytes %d in a cleanly closed log", w2.corruptBytes())
	}
	// Sequence numbers go on: a new push is not confused with an old one.
	it := mustAppend(t, w2, 10, 1000)
	if it.ref.seq <= recs[len(recs)-1].ref.seq {
		t.Errorf("new seq %d not after replayed %d", it.ref.seq, recs[len(recs)-1].ref.seq)
	}
	ackRecs(w2, recs)
	w2.close()
	w3, recs := openTestWAL(t, dir, 1<<30)
	wantReplay(t, recs, 1000, 10)
	w3.close()
}

func ackRecs(w *wal, recs []walRecord) {
	items := make([]item, len(recs))
	for i, r := range recs {
		items[i] = item{spans: r.spans, ref: r.ref}
	}
	w.ack(items)
}

// A crash can cut the last record anywhere: at every byte offset, the
// records before it come back, the torn bytes are counted and cut off, and
// the log goes on working.
func TestWALTornTail(t *testing.T) {
	src := t.TempDir()
	w, _ := openTestWAL(t, src, 1<<30)
	for i := range 3 {
		mustAppend(t, w, i, 300)
	}
	w.close()
	seg := segments(t, src)
	if len(seg) != 1 {
		t.Fatalf("segments %v", seg)
	}
	full, err := os.ReadFile(seg[0])
	if err != nil {
		t.Fatal(err)
	}
	last := walHeader + walPushHeader + 300
	for cut := 1; cut < last; cut++ {
		dir := t.TempDir()
		name := filepath.Join(dir, filepath.Base(seg[0]))
		os.WriteFile(name, full[:len(full)-cut], 0o640)
		w, recs := openTestWAL(t, dir, 1<<30)
		wantReplay(t, recs, 300, 0, 1)
		if got, want := w.corruptBytes(), int64(last-cut); got != want {
			t.Fatalf("cut %d: corrupt bytes %d, want %d", cut, got, want)
		}
		if fi, _ := os.Stat(name); fi.Size() != int64(len(full)-last) {
			t.Fatalf("cut %d: torn tail not truncated: %d bytes", cut, fi.Size())
		}
		mustAppend(t, w, 3, 300)
		w.close()
		w2, recs := openTestWAL(t, dir, 1<<30)
		wantReplay(t, recs, 300, 0, 1, 3)
		if w2.corruptBytes() != 0 {
			t.Fatalf("cut %d: the tail was counted again", cut)
		}
		w2.close()
	}
	// A tail of zeros, as a file system may leave after a crash.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, filepath.Base(seg[0])), append(bytes.Clone(full), make([]byte, 4096)...), 0o640)
	w2, recs := openTestWAL(t, dir, 1<<30)
	wantReplay(t, recs, 300, 0, 1, 2)
	if w2.corruptBytes() != 4096 {
		t.Errorf("zero tail: corrupt bytes %d, want 4096", w2.corruptBytes())
	}
}

// One flipped bit anywhere in a record is caught by its length or
// checksum: the records before it come back, nothing after it is trusted.
func TestWALBitFlip(t *testing.T) {
	src := t.TempDir()
	w, _ := openTestWAL(t, src, 1<<30)
	for i := range 3 {
		mustAppend(t, w, i, 200)
	}
	w.close()
	seg := segments(t, src)[0]
	full, _ := os.ReadFile(seg)
	rec := walHeader + walPushHeader + 200
	for off := rec; off < 2*rec; off++ {
		bit := byte(1) << (off % 8)
		dir := t.TempDir()
		b := bytes.Clone(full)
		b[off] ^= bit
		os.WriteFile(filepath.Join(dir, filepath.Base(seg)), b, 0o640)
		w, recs := openTestWAL(t, dir, 1<<30)
		wantReplay(t, recs, 200, 0)
		if w.corruptBytes() != int64(2*rec) {
			t.Fatalf("flip at %d: corrupt bytes %d, want %d", off, w.corruptBytes(), 2*rec)
		}
		w.close()
	}
}

// Segments rotate at their size; a segment goes once all its pushes are
// acked, whatever the order, and the disk use comes back down.
func TestWALSegments(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 1<<30)
	w.segBytes = 10 << 10
	var items []item
	for i := range 60 {
		items = append(items, mustAppend(t, w, i, 1000))
	}
	if n := len(segments(t, dir)); n < 5 {
		t.Fatalf("%d segments for 60 KB at 10 KB each", n)
	}
	rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	keep := items[0] // one push stays pending to the end
	for i := 1; i < len(items); i += 7 {
		w.ack(items[i:min(i+7, len(items))])
	}
	// Only keep's segment and the active one are left.
	if got := segments(t, dir); len(got) > 2 {
		t.Errorf("segments left %v, want at most keep's and the active one", got)
	}
	w.close()
	w2, recs := openTestWAL(t, dir, 1<<30)
	wantReplay(t, recs, 1000, keep.spans-1)
	ackRecs(w2, recs)
	w2.segBytes = 10 << 10
	w2.ack([]item{mustAppend(t, w2, 99, 20<<10)}) // fills the active segment
	w2.ack([]item{mustAppend(t, w2, 98, 100)})    // rotates: the settled one goes
	if got := segments(t, dir); len(got) != 1 {
		t.Errorf("segments left %v, want only the active one", got)
	}
	if size, _ := w2.usage(); size > 25<<10 {
		t.Errorf("disk use %d after everything was acked", size)
	}
}

// Acks kept in a segment that is deleted before the pushes they ack are
// written again: a restart replays only what is pending.
func TestWALAcksOutliveTheirSegment(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 1<<30)
	w.segBytes = 4 << 10
	a := []item{mustAppend(t, w, 0, 1400), mustAppend(t, w, 1, 1400), mustAppend(t, w, 2, 1400)}
	b := mustAppend(t, w, 3, 5000) // next segment
	w.ack(a[1:])                   // the ack lands in b's segment
	c := mustAppend(t, w, 4, 100)  // and another segment
	w.ack([]item{b, c})            // b's segment goes, with the ack of a[1:]
	if n := len(segments(t, dir)); n != 2 {
		t.Fatalf("%d segments, want a's and c's", n)
	}
	w.close()
	_, recs := openTestWAL(t, dir, 1<<30)
	wantReplay(t, recs, 1400, 0)
}

// The log never grows beyond its budget; once pushes are acked there is
// room again.
func TestWALMaxBytes(t *testing.T) {
	dir := t.TempDir()
	const budget = 1 << 20
	w, _ := openTestWAL(t, dir, budget)
	var items []item
	for {
		data := payload(len(items), 40<<10)
		ref, err := w.append(data, 100)
		if errors.Is(err, errWALFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item{data: data, spans: 100, ref: ref})
		if len(items) > 100 {
			t.Fatal("no limit")
		}
	}
	if size, _ := w.usage(); size > budget {
		t.Errorf("disk use %d over budget %d", size, budget)
	}
	var total int64
	for _, s := range segments(t, dir) {
		fi, _ := os.Stat(s)
		total += fi.Size()
	}
	if total > budget {
		t.Errorf("files hold %d bytes, budget %d", total, budget)
	}
	if len(items) < 20 {
		t.Errorf("only %d 40 KB pushes fit in 1 MiB", len(items))
	}
	w.ack(items)
	// Room again, less what the settled pushes in the active segment hold
	// until it rotates.
	for i := range len(items) - 2 {
		mustAppend(t, w, i, 40<<10)
	}
}

// Concurrent pushes with the always policy share fsyncs, and every one
// acknowledged is there after a reopen.
func TestWALGroupCommit(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 1<<30)
	var syncs int
	const pushers, each = 16, 40
	var wg sync.WaitGroup
	for p := range pushers {
		wg.Go(func() {
			for i := range each {
				if _, err := w.append(payload(p*each+i, 2000), 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	w.mu.Lock()
	syncs = int(w.syncs)
	w.mu.Unlock()
	t.Logf("%d pushes, %d fsyncs", pushers*each, syncs)
	if syncs >= pushers*each || syncs == 0 {
		t.Errorf("%d fsyncs for %d concurrent pushes: no group commit", syncs, pushers*each)
	}
	w.close()
	_, recs := openTestWAL(t, dir, 1<<30)
	if len(recs) != pushers*each {
		t.Fatalf("replayed %d of %d", len(recs), pushers*each)
	}
}

// Closing is final for appends, and a second process cannot share a dir.
func TestWALClosedAndLocked(t *testing.T) {
	dir := t.TempDir()
	w, _ := openTestWAL(t, dir, 1<<30)
	if _, _, err := openWAL(dir, 1<<30, FsyncAlways, 0, testLog()); err == nil {
		t.Error("a second open of a dir in use succeeded")
	}
	w.close()
	if _, err := w.append([]byte("x"), 1); !errors.Is(err, errWALClosed) {
		t.Errorf("append after close: %v", err)
	}
	w2, _ := openTestWAL(t, dir, 1<<30) // the lock went with close
	w2.close()
}

// The interval policy syncs in the background; never does not at all.
// Both lose nothing across a clean close.
func TestWALPolicies(t *testing.T) {
	for _, policy := range []string{FsyncInterval, FsyncNever} {
		t.Run(policy, func(t *testing.T) {
			dir := t.TempDir()
			w, _, err := openWAL(dir, 1<<30, policy, 10*time.Millisecond, testLog())
			if err != nil {
				t.Fatal(err)
			}
			for i := range 5 {
				mustAppend(t, w, i, 100)
			}
			state := func() (synced, written, syncs int64) {
				w.mu.Lock()
				defer w.mu.Unlock()
				return int64(w.synced), int64(w.written), int64(w.syncs)
			}
			if policy == FsyncInterval { // by the background ticker alone, however late it runs
				eventually(t, 10*time.Second, "interval: every record synced", func() bool {
					synced, written, _ := state()
					return synced == written
				})
			}
			time.Sleep(50 * time.Millisecond) // five intervals: never must still not have synced
			if _, _, syncs := state(); policy == FsyncNever && syncs != 0 {
				t.Errorf("never: %d fsyncs", syncs)
			}
			w.close()
			_, recs := openTestWAL(t, dir, 1<<30)
			wantReplay(t, recs, 100, 0, 1, 2, 3, 4)
		})
	}
}

// The Exporter with a queue dir: what Jaeger did not take before a
// shutdown is neither lost nor counted as dropped; the next start replays
// it, delivers it, and the accounts say so: pushed + replayed = exported +
// dropped + queued + inflight.
func TestPersistentQueueRestart(t *testing.T) {
	dir := t.TempDir()
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close() // Jaeger down
	cfg := testConfig(addr, ProtocolOTLPGRPC)
	cfg.QueueDir = dir
	e, reg := start(t, cfg)
	pushN(t, e, 5, 100)
	eventually(t, 5*time.Second, "a failed attempt", func() bool { return e.Stats().Retries > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	e.Shutdown(ctx)
	s := checkIdentity(t, e, reg)
	if s.Queued != 500 || s.Dropped[ReasonShutdown] != 0 {
		t.Fatalf("after shutdown: %+v; want 500 queued (on disk), none dropped", s)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	be := &backend{tb: t}
	be.start(ProtocolOTLPGRPC, ln)
	e2, reg2 := start(t, cfg)
	if m := scrape(t, reg2); m["traceport_queue_replayed_spans_total"] != 500 {
		t.Errorf("replayed metric %v, want 500", m["traceport_queue_replayed_spans_total"])
	}
	pushN(t, e2, 1, 100)
	eventually(t, 5*time.Second, "all delivered", func() bool { return be.received() == 600 })
	eventually(t, time.Second, "settled", settled(e2))
	s = checkIdentity(t, e2, reg2)
	if s.Replayed != 500 || s.Pushed != 100 || s.Exported != 600 {
		t.Errorf("after restart: %+v; want 500 replayed, 100 pushed, 600 exported", s)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Second)
	defer cancel2()
	e2.Shutdown(ctx2)
	e3, reg3 := start(t, cfg)
	if s := checkIdentity(t, e3, reg3); s.Replayed != 0 {
		t.Errorf("third start replayed %d spans already exported", s.Replayed)
	}
}

// A full queue dir refuses as a full memory queue does: Admit says no,
// Push counts queue_full.
func TestPersistentQueueFull(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	cfg := testConfig("127.0.0.1:9", ProtocolOTLPGRPC)
	cfg.QueueDir = t.TempDir()
	cfg.QueueMaxBytes = 1 << 20
	e, err := New(cfg, reg, nil) // not started: nothing leaves
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(e.Accounts())
	defer e.Shutdown(context.Background())
	data := request(t, 100)
	pushed, refused := 0, 0
	for ok, _ := e.Admit(false); ok && refused == 0; ok, _ = e.Admit(false) {
		if err := e.Push(data, 100, false, nil); err != nil {
			refused++ // the door lets in while under the limit; the push may not fit
			continue
		}
		pushed++
	}
	if ok, after := e.Admit(true); ok || after < time.Second {
		t.Errorf("Admit at a full disk = %v, %v", ok, after)
	}
	for range 3 {
		if err := e.Push(data, 100, false, nil); errors.Is(err, ErrQueueFull) {
			refused++
		}
	}
	s := checkIdentity(t, e, reg)
	if refused == 0 || s.Dropped[ReasonQueueFull] != int64(refused*100) || s.Queued != int64(pushed*100) {
		t.Errorf("%d pushed, %d refused; stats %+v", pushed, refused, s)
	}
	m := scrape(t, reg)
	if m["traceport_queue_disk_bytes"] > 1<<20 || m["traceport_queue_disk_capacity_bytes"] != 1<<20 {
		t.Errorf("disk gauges: %v", m)
	}
	t.Logf("%d requests of %d bytes in a 1 MiB queue dir", pushed, len(data))
}

// Push accounts a push (pushed, and queued while it is written) and calls
// accounted before it waits for the fsync, so the receiver never holds its
// books across that wait: a scrape never waits for a slow disk, nor makes
// intake wait behind it.
func TestPushAccountsBeforeFsync(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	cfg := testConfig("127.0.0.1:9", ProtocolOTLPGRPC)
	cfg.QueueDir = t.TempDir()
	e, err := New(cfg, reg, nil) // not started: nothing leaves
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(e.Accounts())
	defer e.Shutdown(context.Background())
	inFsync, release := make(chan struct{}, 1), make(chan struct{})
	e.wal.mu.Lock()
	e.wal.fsync = func(f *os.File) error {
		inFsync <- struct{}{}
		<-release
		return f.Sync()
	}
	e.wal.mu.Unlock()

	atAccounted := make(chan Stats, 1)
	pushed := make(chan error, 1)
	go func() {
		pushed <- e.Push(request(t, 10), 10, true, func() { atAccounted <- e.Stats() })
	}()
	s := <-atAccounted
	if s.Pushed != 10 || s.Queued != 10 || s.Unaccounted() != 0 {
		t.Fatalf("at accounted: %+v, want 10 pushed and queued", s)
	}
	<-inFsync // the push is waiting for its fsync now, accounted already
	select {
	case err := <-pushed:
		t.Fatalf("Push returned %v before its fsync", err)
	default:
	}
	checkIdentity(t, e, reg) // a scrape during the fsync sees every span
	close(release)
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	if s := checkIdentity(t, e, reg); s.Queued != 10 {
		t.Errorf("after the fsync: %+v", s)
	}
}
