package exporter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Fsync policies of the persistent queue (--queue-fsync).
const (
	// FsyncAlways: Push returns only after its record is fsynced, so a
	// client's 2xx/OK means the spans are on disk. Pushes that arrive while
	// an fsync runs share the next one (group commit).
	FsyncAlways = "always"
	// FsyncInterval: records are fsynced every QueueFsyncInterval; a crash
	// of the machine (not of the process: the page cache survives that)
	// loses at most the last interval of acknowledged spans.
	FsyncInterval = "interval"
	// FsyncNever leaves flushing to the kernel; a process crash loses
	// nothing, a machine crash loses what the kernel had not written.
	FsyncNever = "never"
)

// The write-ahead log is a directory of segment files named by a growing
// number. A segment is a sequence of records:
//
//	[payload length u32 LE][CRC-32C of payload u32 LE][payload]
//
// and a payload is either a push,
//
//	'P' [seq u64 LE] [spans u32 LE] [serialized ExportTraceServiceRequest]
//
// or the acknowledgement of pushes settled (exported or dropped for good),
//
//	'A' [seq u64 LE]...
//
// Acks are written but never fsynced on their own: a lost ack costs a
// duplicate after a crash, never a loss. On open, pushes without an ack are
// replayed. A segment is deleted once every push in it is acked; acks for
// older segments it held may go with it, so a crash can replay a few
// settled pushes again (delivery stays at least once).
const (
	walHeader      = 8
	walPushHeader  = 1 + 8 + 4
	walMaxRecord   = 1 << 30 // a longer length field is corruption
	walMaxSegment  = 64 << 20
	walMinSegment  = 4 << 10
	walLockName    = "LOCK"
	walSegmentExt  = ".wal"
	walRecordPush  = 'P'
	walRecordAck   = 'A'
	walSegmentName = "%020d" + walSegmentExt
)

var (
	errWALFull   = errors.New("queue dir full (queue-max-bytes)")
	errWALClosed = errors.New("queue dir closed")

	crc32c = crc32.MakeTable(crc32.Castagnoli)
)

// segment is one file of the log. pending counts its pushes not yet acked;
// at zero, and once it is not the one being written, it is deleted.
type segment struct {
	id      uint64
	f       *os.File // only the active segment is open
	size    int64
	pending int
	// acked are its pushes already acked. When a later segment goes, the
	// ack records in it go too; these are written again so that a restart
	// does not replay them.
	acked []uint64
}

// walRef locates a push in the log, for its ack.
type walRef struct {
	seq uint64
	seg *segment
}

// walRecord is a push found on open, not acked: to be queued again.
type walRecord struct {
	ref   walRef
	data  []byte
	spans int
}

// wal is the persistent queue's disk side. The Exporter keeps the queue's
// order and accounts in memory as before; the log makes every push durable
// before Push returns, and forgets it once settled.
type wal struct {
	dir      string
	maxBytes int64
	segBytes int64
	policy   string
	log      *slog.Logger
	lock     *os.File

	mu       sync.Mutex
	cond     *sync.Cond // syncing ended
	segs     []*segment // by id; the last one is active
	size     int64      // bytes of every segment on disk
	nextSeq  uint64
	written  uint64 // records written to the active segment's file, ever
	synced   uint64 // records of written known to be on disk
	syncing  bool
	syncs    int64                // fsyncs of records, for tests and benchmarks
	fsync    func(*os.File) error // (*os.File).Sync; tests slow it down
	err      error                // sticky: after a failed write or fsync nothing is trusted
	closed   bool
	buf      []byte
	ackBuf   []byte
	carry    []uint64 // acks to write again, see segment.acked
	corrupt  int64    // bytes skipped as corrupt on open
	stopSync chan struct{}
	syncDone chan struct{}
}

// openWAL opens (creating) dir, locks it against a second traceport,
// replays what is left in it and starts a new segment for writing.
// Corrupt or torn records are skipped, counted and logged, never fatal.
func openWAL(dir string, maxBytes int64, policy string, interval time.Duration, log *slog.Logger) (*wal, []walRecord, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("queue-dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, walLockName), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("queue-dir: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("queue-dir %s: in use by another process: %w", dir, err)
	}
	w := &wal{
		dir:      dir,
		maxBytes: maxBytes,
		segBytes: min(walMaxSegment, max(maxBytes/16, walMinSegment)),
		policy:   policy,
		log:      log,
		lock:     lock,
		nextSeq:  1,
		fsync:    (*os.File).Sync,
	}
	w.cond = sync.NewCond(&w.mu)
	recs, err := w.replay()
	if err == nil {
		err = w.rotate()
	}
	if err == nil {
		err = w.writeCarry() // the acks of deleted segments, once more
	}
	if err != nil {
		w.close()
		return nil, nil, err
	}
	if policy == FsyncInterval {
		w.stopSync, w.syncDone = make(chan struct{}), make(chan struct{})
		go w.syncEvery(interval)
	}
	return w, recs, nil
}

// replay reads every segment in order, keeps the pushes not acked, deletes
// segments left with none, and truncates each at its first bad record.
func (w *wal) replay() ([]walRecord, error) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, fmt.Errorf("queue-dir: %w", err)
	}
	var ids []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), walSegmentExt)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	live := map[uint64]*walRecord{}
	for _, id := range ids {
		seg := &segment{id: id}
		path := w.segPath(id)
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("queue-dir: %w", err)
		}
		good := w.scan(raw, path, func(payload []byte) {
			switch payload[0] {
			case walRecordPush:
				seq := binary.LittleEndian.Uint64(payload[1:])
				spans := int(binary.LittleEndian.Uint32(payload[9:]))
				live[seq] = &walRecord{ref: walRef{seq: seq, seg: seg}, data: slices.Clone(payload[walPushHeader:]), spans: spans}
				seg.pending++
				w.nextSeq = max(w.nextSeq, seq+1)
			case walRecordAck:
				for p := payload[1:]; len(p) >= 8; p = p[8:] {
					seq := binary.LittleEndian.Uint64(p)
					if r := live[seq]; r != nil {
						r.ref.seg.pending--
						r.ref.seg.acked = append(r.ref.seg.acked, seq)
						delete(live, seq)
					}
				}
			}
		})
		if good < len(raw) {
			if err := os.Truncate(path, int64(good)); err != nil {
				return nil, fmt.Errorf("queue-dir: truncate corrupt tail: %w", err)
			}
		}
		seg.size = int64(good)
		w.segs = append(w.segs, seg)
		w.size += seg.size
	}
	recs := make([]walRecord, 0, len(live))
	for _, r := range live {
		recs = append(recs, *r)
	}
	slices.SortFunc(recs, func(a, b walRecord) int { return compareUint(a.ref.seq, b.ref.seq) })
	w.segs = slices.DeleteFunc(w.segs, func(s *segment) bool {
		if s.pending > 0 {
			w.carry = append(w.carry, s.acked...)
			return false
		}
		w.remove(s)
		return true
	})
	return recs, nil
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scan calls fn with each valid record's payload and returns the length of
// the valid prefix. The first record with an impossible length, a short
// body, an unknown type or a wrong checksum ends the segment: what follows
// cannot be framed with confidence, so it is counted as corrupt.
func (w *wal) scan(raw []byte, path string, fn func(payload []byte)) int {
	off := 0
	for off < len(raw) {
		rest := raw[off:]
		why := ""
		var n int
		switch {
		case len(rest) < walHeader:
			why = "truncated header"
		default:
			n = int(binary.LittleEndian.Uint32(rest))
			switch {
			case n < 1 || n > walMaxRecord:
				why = "impossible length"
			case len(rest)-walHeader < n:
				why = "truncated record"
			case crc32.Checksum(rest[walHeader:walHeader+n], crc32c) != binary.LittleEndian.Uint32(rest[4:]):
				why = "checksum mismatch"
			default:
				p := rest[walHeader : walHeader+n]
				switch {
				case p[0] == walRecordPush && n >= walPushHeader:
				case p[0] == walRecordAck && (n-1)%8 == 0:
				default:
					why = "unknown record"
				}
			}
		}
		if why != "" {
			w.corrupt += int64(len(rest))
			w.log.Warn("queue dir: skipping corrupt records", "file", path, "offset", off, "bytes", len(rest), "why", why)
			return off
		}
		fn(rest[walHeader : walHeader+n])
		off += walHeader + n
	}
	return off
}

func (w *wal) segPath(id uint64) string { return filepath.Join(w.dir, fmt.Sprintf(walSegmentName, id)) }

// remove deletes a settled segment's file. Failing to is not fatal: its
// pushes would be replayed after a restart, as duplicates.
func (w *wal) remove(s *segment) {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	if err := os.Remove(w.segPath(s.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		w.log.Warn("queue dir: remove settled segment", "err", err)
		return
	}
	w.size -= s.size
}

// rotate closes the active segment (fsynced, unless the policy is never)
// and starts a new one. Called with mu held and no fsync running.
func (w *wal) rotate() error {
	var old *segment
	if n := len(w.segs); n > 0 && w.segs[n-1].f != nil {
		old = w.segs[n-1]
		if w.policy != FsyncNever {
			if err := old.f.Sync(); err != nil {
				return fmt.Errorf("queue-dir: fsync: %w", err)
			}
		}
		w.synced = w.written
		old.f.Close()
		old.f = nil
	}
	id := uint64(1)
	if n := len(w.segs); n > 0 {
		id = w.segs[n-1].id + 1
	}
	f, err := os.OpenFile(w.segPath(id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("queue-dir: %w", err)
	}
	if w.policy != FsyncNever {
		if err := syncDir(w.dir); err != nil {
			f.Close()
			return err
		}
	}
	w.segs = append(w.segs, &segment{id: id, f: f})
	if old != nil && old.pending == 0 {
		w.drop(old)
	}
	return nil
}

// syncDir makes a new segment's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("queue-dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("queue-dir: fsync: %w", err)
	}
	return nil
}

// drop removes a settled, inactive segment from the list and the disk.
// The acks it may hold for older, live segments are carried over.
func (w *wal) drop(s *segment) {
	i := slices.Index(w.segs, s)
	if i < 0 {
		return
	}
	for _, older := range w.segs[:i] {
		w.carry = append(w.carry, older.acked...)
	}
	w.segs = slices.Delete(w.segs, i, i+1)
	w.remove(s)
}

// writeCarry writes the carried acks as one record.
func (w *wal) writeCarry() error {
	if len(w.carry) == 0 {
		return nil
	}
	err := w.writeAcks(w.carry)
	w.carry = w.carry[:0]
	return err
}

func (w *wal) writeAcks(seqs []uint64) error {
	w.ackBuf = append(w.ackBuf[:0], make([]byte, walHeader)...)
	w.ackBuf = append(w.ackBuf, walRecordAck)
	for _, seq := range seqs {
		w.ackBuf = binary.LittleEndian.AppendUint64(w.ackBuf, seq)
	}
	return w.write(w.ackBuf)
}

func (w *wal) active() *segment { return w.segs[len(w.segs)-1] }

// append writes one push and, with the always policy, returns once it is
// fsynced. errWALFull means queue-max-bytes would be exceeded.
func (w *wal) append(data []byte, spans int) (walRef, error) {
	n := walHeader + walPushHeader + len(data)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return walRef{}, err
	}
	for {
		// Rotate a full segment, or one whose pushes are all settled when
		// the budget is short: rotating deletes it.
		a := w.active()
		full := a.size >= w.segBytes
		reclaim := w.size+int64(n) > w.maxBytes && a.pending == 0 && a.size > 0
		if !full && !reclaim {
			break
		}
		if w.syncing {
			w.cond.Wait()
			if err := w.usable(); err != nil {
				return walRef{}, err
			}
			continue
		}
		if err := w.rotate(); err != nil {
			w.err = err
			return walRef{}, err
		}
	}
	if err := w.writeCarry(); err != nil {
		return walRef{}, err
	}
	if w.size+int64(n) > w.maxBytes {
		return walRef{}, errWALFull
	}
	seq := w.nextSeq
	w.buf = slices.Grow(w.buf[:0], n)[:walHeader+walPushHeader]
	w.buf[walHeader] = walRecordPush
	binary.LittleEndian.PutUint64(w.buf[walHeader+1:], seq)
	binary.LittleEndian.PutUint32(w.buf[walHeader+9:], uint32(spans))
	w.buf = append(w.buf, data...)
	if err := w.write(w.buf); err != nil {
		return walRef{}, err
	}
	w.nextSeq++
	a := w.active()
	a.pending++
	ref := walRef{seq: seq, seg: a}
	if w.policy == FsyncAlways {
		mine := w.written
		for w.synced < mine {
			if err := w.usable(); err != nil {
				return walRef{}, err
			}
			if w.syncing {
				w.cond.Wait()
				continue
			}
			w.sync()
		}
	}
	return ref, nil
}

func (w *wal) usable() error {
	if w.closed {
		return errWALClosed
	}
	return w.err
}

// write frames buf's payload (buf[walHeader:]) and writes it to the active
// segment. A short write is cut off again so the segment stays well formed.
func (w *wal) write(buf []byte) error {
	binary.LittleEndian.PutUint32(buf, uint32(len(buf)-walHeader))
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(buf[walHeader:], crc32c))
	a := w.active()
	if _, err := a.f.Write(buf); err != nil {
		if terr := a.f.Truncate(a.size); terr != nil {
			w.err = fmt.Errorf("queue-dir: write: %w; truncate: %v", err, terr)
			return w.err
		}
		if _, serr := a.f.Seek(a.size, 0); serr != nil {
			w.err = fmt.Errorf("queue-dir: write: %w; seek: %v", err, serr)
			return w.err
		}
		return fmt.Errorf("queue-dir: write: %w", err)
	}
	a.size += int64(len(buf))
	w.size += int64(len(buf))
	w.written++
	return nil
}

// sync is one group commit: it fsyncs the active segment without holding
// mu, so pushes keep writing meanwhile, and marks every record written
// before it started as synced. Called with mu held and no fsync running.
func (w *wal) sync() {
	w.syncing = true
	w.syncs++
	target, f := w.written, w.active().f
	w.mu.Unlock()
	err := w.fsync(f)
	w.mu.Lock()
	w.syncing = false
	if err != nil {
		// After a failed fsync the kernel may have dropped the dirty pages:
		// nothing written since the last good one can be trusted (the
		// PostgreSQL "fsyncgate" lesson). Refuse from now on.
		w.err = fmt.Errorf("queue-dir: fsync: %w", err)
		w.log.Error("queue dir unusable until restart", "err", err)
	} else {
		w.synced = max(w.synced, target)
	}
	w.cond.Broadcast()
}

func (w *wal) syncEvery(d time.Duration) {
	defer close(w.syncDone)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-w.stopSync:
			return
		case <-t.C:
		}
		w.mu.Lock()
		if !w.closed && w.err == nil && !w.syncing && w.synced < w.written {
			w.sync()
		}
		w.mu.Unlock()
	}
}

// ack forgets settled pushes: one ack record, not fsynced, and every
// segment left with no pending push (except the active one) deleted.
func (w *wal) ack(items []item) {
	w.mu.Lock()
	defer w.mu.Unlock()
	active := w.active()
	n := len(w.carry)
	for _, it := range items {
		seg := it.ref.seg
		if seg == nil {
			continue
		}
		w.carry = append(w.carry, it.ref.seq)
		seg.pending--
		if seg.pending == 0 && seg != active {
			w.drop(seg)
		} else {
			seg.acked = append(seg.acked, it.ref.seq)
		}
	}
	if len(w.carry) == n || w.usable() != nil {
		return
	}
	if err := w.writeCarry(); err != nil {
		// Not fatal: the pushes are settled; they may come back as
		// duplicates after a restart.
		w.log.Warn("queue dir: write ack", "err", err)
	}
}

// usage is the bytes the log takes on disk, and its bound.
func (w *wal) usage() (size, limit int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size, w.maxBytes
}

func (w *wal) corruptBytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.corrupt
}

// close fsyncs (unless never) and closes the log; later appends fail with
// errWALClosed. Pushes not acked stay on disk for the next start.
func (w *wal) close() error {
	if w.stopSync != nil {
		close(w.stopSync)
		<-w.syncDone
		w.stopSync = nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	for w.syncing {
		w.cond.Wait()
	}
	var err error
	if n := len(w.segs); n > 0 {
		if a := w.segs[n-1]; a.f != nil {
			if w.policy != FsyncNever && w.err == nil {
				err = a.f.Sync()
			}
			if err == nil {
				w.synced = w.written
			}
			a.f.Close()
			a.f = nil
		}
	}
	w.cond.Broadcast()
	w.lock.Close() // releases the flock
	return err
}
