package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, dir string, seg int64) (*Log, Recovery) {
	t.Helper()
	l, rec, err := Open(dir, Options{SegmentBytes: seg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, rec
}

func appendN(t *testing.T, l *Log, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := l.Append([]byte(fmt.Sprintf("record %d %s", i, strings.Repeat("x", i%17)))); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, l *Log, after uint64) []string {
	t.Helper()
	var out []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		recs, err := l.Read(ctx, after, 1<<20)
		cancel()
		if err != nil {
			return out
		}
		for _, r := range recs {
			if r.Seq <= after {
				t.Fatalf("record %d read after %d", r.Seq, after)
			}
			after = r.Seq
			out = append(out, string(r.Data))
		}
	}
}

func TestAppendReadTrimReopen(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, 300)
	appendN(t, l, 0, 40)
	got := readAll(t, l, 0)
	if len(got) != 40 || got[0] != "record 0 " || got[39] != "record 39 "+strings.Repeat("x", 5) {
		t.Fatalf("read %d records: %q …", len(got), got[:2])
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("%d segments; want several at 300 bytes each", len(segs))
	}
	before := l.Bytes()
	if err := l.Advance(DefaultReader, 25); err != nil {
		t.Fatal(err)
	}
	if l.Bytes() >= before || l.Bytes() <= 0 {
		t.Errorf("bytes %d after trim, %d before", l.Bytes(), before)
	}
	after, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(after) >= len(segs) {
		t.Errorf("no segment deleted by the trim (%d → %d)", len(segs), len(after))
	}
	l.Close()

	l2, rec := open(t, dir, 300)
	if rec.Pending != 15 || len(rec.Cut) != 0 {
		t.Fatalf("recovery %+v, want 15 pending records", rec)
	}
	got = readAll(t, l2, l2.Trimmed())
	if len(got) != 15 || got[0] != "record 25 "+strings.Repeat("x", 8) {
		t.Fatalf("after reopen: %d records, first %q", len(got), got[0])
	}
	seq, err := l2.Append([]byte("new"))
	if err != nil || seq != 41 {
		t.Fatalf("append after reopen: seq %d, %v", seq, err)
	}
}

// TestTornTailIsCutToTheLastGoodRecord simulates a power cut in the middle
// of a write: the last record is half on disk.
func TestTornTailIsCutToTheLastGoodRecord(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, 1<<20)
	appendN(t, l, 0, 10)
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	st, _ := os.Stat(segs[0])
	if err := os.Truncate(segs[0], st.Size()-7); err != nil {
		t.Fatal(err)
	}
	l2, rec := open(t, dir, 1<<20)
	if rec.Pending != 9 || len(rec.Cut) != 1 || !strings.Contains(rec.Cut[0], "cut short") {
		t.Fatalf("recovery %+v, want 9 records and one cut", rec)
	}
	if got := readAll(t, l2, 0); len(got) != 9 || got[8] != "record 8 "+strings.Repeat("x", 8) {
		t.Fatalf("records %q", got)
	}
	if seq, err := l2.Append([]byte("after the cut")); err != nil || seq != 10 {
		t.Fatalf("append after the cut: %d %v", seq, err)
	}
	l2.Close()
	_, rec = open(t, dir, 1<<20)
	if rec.Pending != 10 || len(rec.Cut) != 0 {
		t.Fatalf("second reopen %+v", rec)
	}
}

func TestCorruptRecordKeepsEveryGoodOne(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, 200)
	appendN(t, l, 0, 30)
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	// Flip a byte in the payload of the second record of the first segment.
	b, _ := os.ReadFile(segs[0])
	first := headerSize + len("record 0 ")
	b[first+headerSize+3] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o640); err != nil {
		t.Fatal(err)
	}
	l2, rec := open(t, dir, 200)
	if len(rec.Cut) != 1 || !strings.Contains(rec.Cut[0], "checksum") {
		t.Fatalf("recovery %+v", rec)
	}
	got := readAll(t, l2, 0)
	// Record 0 survives; the rest of the first segment is cut; every later
	// segment is kept whole.
	if len(got) == 0 || got[0] != "record 0 " || got[len(got)-1] != "record 29 "+strings.Repeat("x", 12) {
		t.Fatalf("records %q", got)
	}
	if got[1] == "record 1 x" {
		t.Fatal("the corrupt record was kept")
	}
}

func TestWaitBelowAndReadWait(t *testing.T) {
	l, _ := open(t, t.TempDir(), 1<<20)
	appendN(t, l, 0, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.WaitBelow(ctx, l.Bytes(), 10); err == nil {
		t.Fatal("WaitBelow returned while the spool was full")
	}
	done := make(chan error)
	full := l.Bytes()
	go func() { done <- l.WaitBelow(context.Background(), full, 10) }()
	if err := l.Advance(DefaultReader, 2); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Read blocks until something is appended.
	got := make(chan []Record)
	go func() {
		recs, _ := l.Read(context.Background(), 5, 1<<20)
		got <- recs
	}()
	if _, err := l.Append([]byte("six")); err != nil {
		t.Fatal(err)
	}
	if recs := <-got; len(recs) != 1 || recs[0].Seq != 6 || string(recs[0].Data) != "six" {
		t.Fatalf("read %+v", recs)
	}
}

func TestEmptyLogIsEmptyAfterFullTrim(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, 100)
	appendN(t, l, 0, 20)
	if err := l.Advance(DefaultReader, 20); err != nil {
		t.Fatal(err)
	}
	if l.Bytes() != 0 {
		t.Errorf("bytes %d", l.Bytes())
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 {
		t.Errorf("%d segments left, want 1", len(segs))
	}
	l.Close()
	l2, rec := open(t, dir, 100)
	if rec.Pending != 0 {
		t.Errorf("recovery %+v", rec)
	}
	if seq, _ := l2.Append([]byte("x")); seq != 21 {
		t.Errorf("next seq %d, want 21", seq)
	}
}

func BenchmarkAppend(b *testing.B) {
	l, _, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	rec := make([]byte, 64<<10)
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := l.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// Positions and the trim mark are overwritten in place; one damaged by a
// crash fails its checksum, and its reader takes records again (from the
// mark, else from the oldest) rather than skip any.
func TestDamagedCursorDeliversAgain(t *testing.T) {
	dir := t.TempDir()
	two := Options{SegmentBytes: 1 << 20, Readers: []string{"a", "b"}}
	reopen := func() *Log {
		t.Helper()
		l, _, err := Open(dir, two)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	l := reopen()
	appendN(t, l, 0, 40)
	for _, step := range []struct {
		reader string
		seq    uint64
	}{{"a", 9}, {"a", 25}, {"b", 9}} {
		if err := l.Advance(step.reader, step.seq); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if b, err := os.ReadFile(filepath.Join(dir, cursorPrefix+"a")); err != nil || string(b) != string(formatMark(25)) {
		t.Fatalf("cursor a %q, %v; want %q", b, err, formatMark(25))
	}
	if b, err := os.ReadFile(filepath.Join(dir, trimFile)); err != nil || string(b) != string(formatMark(9)) {
		t.Fatalf("mark %q, %v; want %q", b, err, formatMark(9))
	}
	l = reopen()
	if l.Position("a") != 25 || l.Position("b") != 9 || l.Trimmed() != 9 {
		t.Fatalf("positions a %d, b %d, trimmed %d; want 25, 9, 9", l.Position("a"), l.Position("b"), l.Trimmed())
	}
	l.Close()

	// A torn write of a's position: the new number's digits, the old
	// checksum. a starts again from the mark.
	torn := []byte(string(formatMark(39))[:20] + string(formatMark(25))[20:])
	if err := os.WriteFile(filepath.Join(dir, cursorPrefix+"a"), torn, 0o640); err != nil {
		t.Fatal(err)
	}
	l = reopen()
	if l.Position("a") != 9 || l.Position("b") != 9 {
		t.Fatalf("torn cursor: positions a %d, b %d; want 9 and 9", l.Position("a"), l.Position("b"))
	}
	l.Close()

	// The mark torn too, and b's lost: from the oldest record.
	for _, f := range []string{trimFile, cursorPrefix + "a"} {
		if err := os.WriteFile(filepath.Join(dir, f), torn, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(dir, cursorPrefix+"b")); err != nil {
		t.Fatal(err)
	}
	l = reopen()
	if l.Position("a") != 0 || l.Position("b") != 0 || len(readAll(t, l, 0)) != 40 {
		t.Fatalf("torn mark and cursors: positions a %d, b %d; want 0 and all 40 records", l.Position("a"), l.Position("b"))
	}
	l.Close()

	// A spool from before the cursors: a bare mark, no cursor files. Every
	// reader resumes from the mark.
	for _, f := range []string{cursorPrefix + "a", cursorPrefix + "b"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, trimFile), []byte("25\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	l = reopen()
	if l.Position("a") != 25 || l.Position("b") != 25 {
		t.Fatalf("bare mark: positions a %d, b %d; want 25", l.Position("a"), l.Position("b"))
	}
}

// After a full trim has rolled to a new, empty segment, a crash can leave
// an older (or torn) mark. The numbering must go on from the segment's
// name, or the next start takes the new records for out of order and cuts
// them.
func TestStaleMarkAfterRollKeepsNewRecords(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, 100)
	for range 10 { // a segment each
		if _, err := l.Append([]byte(strings.Repeat("r", 120))); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Advance(DefaultReader, 10); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) != 1 || filepath.Base(segs[0]) != fmt.Sprintf("%020d.seg", 11) {
		t.Fatalf("segments after the full trim: %v, want only the new empty one", segs)
	}
	for _, mark := range [][]byte{formatMark(3), []byte("torn")} {
		if err := os.WriteFile(filepath.Join(dir, trimFile), mark, 0o640); err != nil {
			t.Fatal(err)
		}
		l2, _ := open(t, dir, 100)
		var seqs []uint64
		for i := range 3 {
			seq, err := l2.Append([]byte(fmt.Sprintf("after %d", i)))
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		l2.Close()
		l3, rec := open(t, dir, 100)
		if len(rec.Cut) != 0 || rec.Pending < 3 {
			t.Fatalf("mark %q: appended %v, then recovery %+v: new records lost", mark, seqs, rec)
		}
		got := readAll(t, l3, l3.Trimmed())
		if len(got) < 3 || got[len(got)-1] != "after 2" {
			t.Fatalf("mark %q: read back %q", mark, got)
		}
		if err := l3.Advance(DefaultReader, seqs[2]); err != nil {
			t.Fatal(err)
		}
		l3.Close()
	}
}

// AppendWithin counts the headers and refuses, writing nothing, a record
// that would take the log past the bound by a single byte.
func TestAppendWithinIsExact(t *testing.T) {
	l, _ := open(t, t.TempDir(), 1<<20)
	rec := []byte(strings.Repeat("r", 84)) // 100 bytes with its header
	for i := range 3 {
		if _, err := l.AppendWithin(rec, 300); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if l.Bytes() != 300 {
		t.Fatalf("bytes %d, want 300", l.Bytes())
	}
	if _, err := l.AppendWithin([]byte("x"), 300); !errors.Is(err, ErrFull) {
		t.Fatalf("a 17-byte record at the bound: %v, want ErrFull", err)
	}
	if _, err := l.AppendWithin([]byte("x"), 316); !errors.Is(err, ErrFull) {
		t.Fatalf("a 17-byte record with 16 bytes of room: %v, want ErrFull", err)
	}
	if seq, err := l.AppendWithin([]byte("x"), 317); err != nil || seq != 4 {
		t.Fatalf("a 17-byte record with 17 bytes of room: %d, %v", seq, err)
	}
	if got := readAll(t, l, 0); len(got) != 4 {
		t.Fatalf("read back %d records, want 4", len(got))
	}
}

// Each reader takes every record at its own pace; a record is trimmed, and
// its segment deleted, only once both have it; a restart resumes each
// where it was, and a reader added later starts at the oldest record kept.
func TestReadersTakeEveryRecordAtTheirOwnPace(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 300, Readers: []string{"a", "b"}}
	l, _, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	appendN(t, l, 0, 40)
	full := l.Bytes()
	segs := func() int { s, _ := filepath.Glob(filepath.Join(dir, "*.seg")); return len(s) }
	before := segs()
	if err := l.Advance("a", 40); err != nil {
		t.Fatal(err)
	}
	if l.Bytes() != full || segs() != before || l.Trimmed() != 0 {
		t.Fatalf("a's advance trimmed: %d of %d bytes, %d of %d segments, trimmed %d", l.Bytes(), full, segs(), before, l.Trimmed())
	}
	if l.Behind("a") != 0 || l.Behind("b") != full {
		t.Fatalf("behind: a %d, b %d; want 0 and %d", l.Behind("a"), l.Behind("b"), full)
	}
	if err := l.Advance("b", 20); err != nil {
		t.Fatal(err)
	}
	if l.Trimmed() != 20 || l.Bytes() >= full || segs() >= before || l.Behind("b") != l.Bytes() {
		t.Fatalf("b's advance: trimmed %d, %d of %d bytes, %d of %d segments, b behind %d", l.Trimmed(), l.Bytes(), full, segs(), before, l.Behind("b"))
	}
	if err := l.Advance("c", 30); err == nil {
		t.Error("a reader that is not one advanced")
	}
	l.Close()

	l, rec, err := Open(dir, Options{SegmentBytes: 300, Readers: []string{"a", "b", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Pending != 20 || l.Position("a") != 40 || l.Position("b") != 20 || l.Position("c") != 20 {
		t.Fatalf("after the restart: %d pending, positions a %d b %d c %d; want 20, 40, 20, 20",
			rec.Pending, l.Position("a"), l.Position("b"), l.Position("c"))
	}
	if got := readAll(t, l, l.Position("a")); len(got) != 0 {
		t.Errorf("a reads %d records again", len(got))
	}
	if got := readAll(t, l, l.Position("b")); len(got) != 20 || got[0] != "record 20 "+strings.Repeat("x", 3) {
		t.Errorf("b reads %d records from %q, want 20 from record 20", len(got), got)
	}
	for _, r := range []string{"a", "b", "c"} {
		if err := l.Advance(r, 40); err != nil {
			t.Fatal(err)
		}
	}
	if l.Bytes() != 0 || l.Behind("b") != 0 {
		t.Errorf("all taken: %d bytes, b behind %d", l.Bytes(), l.Behind("b"))
	}
	for _, bad := range [][]string{{"a", "a"}, {"a/b"}, {""}, {".x"}} {
		if l2, _, err := Open(t.TempDir(), Options{Readers: bad}); err == nil {
			l2.Close()
			t.Errorf("readers %q accepted", bad)
		}
	}
}
