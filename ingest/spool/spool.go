// Package spool is rivermon's durable local buffer: an append-only log of
// records in segment files, each record framed with its length, a CRC-32C
// and a sequence number. A record is durable once Append returns (the
// segment is fsynced), so the caller may acknowledge what it holds. Records
// are read back in order by one or more readers, each from a position of
// its own (saved in the folder, so that a restart resumes each where it
// was), and trimmed once every reader has taken them; whole segments are
// deleted when every record in them is trimmed, and the segment being
// written too when every record is trimmed and it has reached the roll
// size, or the disk has refused a write, or the log is opened: so a full
// disk gets its space back once delivery has caught up.
//
// After a crash or power cut the tail of a segment may hold a half-written
// record. Open keeps every record up to the first bad one in each segment,
// truncates the rest of that segment, and reports what it cut; it never
// refuses to start and never drops a record that checks out.
//
// Why not a library: tidwall/wal frames entries without a checksum (a torn
// record of plausible length reads as good) and refuses to open a corrupt
// tail; bbolt rewrites B-tree pages on every commit and cannot tell a torn
// record from a good one because it has no records. The format here is a
// dozen lines and fully tested.
package spool

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

const (
	headerSize = 16 // length u32 | crc32c u32 | seq u64, little endian
	// MaxRecordBytes bounds one record; a larger length in a header is
	// taken for corruption.
	MaxRecordBytes = 256 << 20
	segmentSuffix  = ".seg"
	trimFile       = "trimmed"
	cursorPrefix   = "cursor."
)

// DefaultReader is the reader of a log opened without Options.Readers.
const DefaultReader = "default"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure a Log.
type Options struct {
	// SegmentBytes is the size at which a new segment file is started
	// (default 16 MiB).
	SegmentBytes int64
	// Readers names the log's readers (default: one, DefaultReader): each
	// takes every record, at its own pace, and a record is trimmed once
	// every reader has taken it. A reader's position is kept in the file
	// cursor.<name>; a reader without one (new) starts at the oldest
	// record not yet trimmed. Names are letters, digits, '-', '_' and '.'.
	Readers []string
}

// cursor is one reader's position.
type cursor struct {
	name string
	pos  uint64   // every record through pos is taken
	f    *os.File // cursor.<name>, overwritten in place like the trim mark
}

// Recovery says what Open found.
type Recovery struct {
	Segments int
	Pending  int   // records not yet trimmed
	Bytes    int64 // their size
	// Cut describes each truncation of a damaged segment tail.
	Cut []string
}

// Record is one stored record.
type Record struct {
	Seq  uint64
	Data []byte
}

type segment struct {
	path  string
	first uint64 // seq of the first record (from the file name)
	last  uint64 // seq of the last record, 0 when empty
	size  int64  // bytes durably written
	rf    *os.File
}

type entry struct {
	seq  uint64
	size int64
	end  int64 // bytes appended since Open, through this record (for Behind)
	seg  *segment
	off  int64
}

// Log is an open spool.
type Log struct {
	dir  string
	opts Options

	mu       sync.Mutex
	segs     []*segment
	active   *os.File
	next     uint64
	trimmed  uint64
	pending  []entry
	bytes    int64
	total    int64 // bytes appended since Open, the records found by Open included
	cursors  []*cursor
	appended chan struct{} // closed and replaced on every append
	freed    chan struct{} // closed and replaced on every trim
	closed   bool
	mark     *os.File // the trim mark, open once, overwritten in place
	// starved is set while the disk refuses writes: the active segment is
	// then replaced as soon as every record in it is delivered, whatever
	// its size, so that its space comes back.
	starved bool
}

// HeaderBytes is what the spool adds to each record: a record of n bytes
// takes n+HeaderBytes of the bound (Bytes, AppendWithin).
const HeaderBytes = headerSize

// ErrFull is returned by AppendWithin when the record does not fit under
// the bound.
var ErrFull = errors.New("spool: full")

// Append stores data as one record and fsyncs it. When it returns nil the
// record survives a crash.
func (l *Log) Append(data []byte) (uint64, error) {
	return l.AppendWithin(data, -1)
}

// AppendWithin is Append if the records not yet trimmed and this one, with
// its header, take at most max bytes; otherwise it writes nothing and
// returns ErrFull. The check and the write are one step: two appenders
// cannot both take the last room. A negative max is no bound.
func (l *Log) AppendWithin(data []byte, max int64) (uint64, error) {
	if len(data) > MaxRecordBytes {
		return 0, fmt.Errorf("spool: record of %d bytes is over %d", len(data), MaxRecordBytes)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, errors.New("spool: closed")
	}
	if max >= 0 && l.bytes+int64(headerSize+len(data)) > max {
		return 0, ErrFull
	}
	s := l.segs[len(l.segs)-1]
	if s.size >= l.opts.SegmentBytes {
		if err := l.roll(); err != nil {
			return 0, err
		}
		s = l.segs[len(l.segs)-1]
	}
	seq := l.next
	buf := make([]byte, headerSize+len(data))
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(data)))
	binary.LittleEndian.PutUint64(buf[8:16], seq)
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Update(crc32.Checksum(buf[8:16], castagnoli), castagnoli, data))
	copy(buf[headerSize:], data)
	for try := 0; ; try++ {
		err := l.write(s, buf)
		if err == nil {
			break
		}
		l.starved = true
		// The disk is full (or failing) and the active segment holds
		// only delivered records: give its space back and try again
		// once. Without this a spool emptied by delivery never released
		// a segment below the roll size, and a full disk stayed full.
		if try == 0 && len(l.pending) == 0 && s.size > 0 {
			if rerr := l.release(true); rerr == nil {
				s = l.segs[len(l.segs)-1]
				continue
			}
		}
		return 0, err
	}
	l.starved = false
	l.total += int64(len(buf))
	l.pending = append(l.pending, entry{seq: seq, size: int64(len(buf)), end: l.total, seg: s, off: s.size})
	l.bytes += int64(len(buf))
	s.size += int64(len(buf))
	s.last = seq
	l.next++
	close(l.appended)
	l.appended = make(chan struct{})
	return seq, nil
}

// write appends buf to the active segment s and fsyncs it; on failure it
// cuts what it wrote, so that the next append does not follow a torn
// record. The caller holds l.mu.
func (l *Log) write(s *segment, buf []byte) error {
	if _, err := l.active.Write(buf); err != nil {
		_ = l.active.Truncate(s.size)
		return fmt.Errorf("spool: write: %w", err)
	}
	if err := l.active.Sync(); err != nil {
		_ = l.active.Truncate(s.size)
		return fmt.Errorf("spool: fsync: %w", err)
	}
	return nil
}

// Bytes is the size of the records not yet trimmed.
func (l *Log) Bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bytes
}

// Trimmed is the sequence number through which every reader has taken
// the records.
func (l *Log) Trimmed() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.trimmed
}

// Last is the sequence number of the newest record appended (0 before
// the first).
func (l *Log) Last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// Readers returns the names of the log's readers.
func (l *Log) Readers() []string {
	out := make([]string, len(l.cursors))
	for i, c := range l.cursors {
		out[i] = c.name
	}
	return out
}

// Position is the sequence number through which reader has taken the
// records (0 for a name that is not a reader's).
func (l *Log) Position(reader string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.cursor(reader); c != nil {
		return c.pos
	}
	return 0
}

// Behind is the size of the records reader has not taken yet.
func (l *Log) Behind(reader string) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cursor(reader)
	if c == nil {
		return 0
	}
	i := sort.Search(len(l.pending), func(i int) bool { return l.pending[i].seq > c.pos })
	if i == 0 {
		return l.bytes
	}
	return l.total - l.pending[i-1].end
}

func (l *Log) cursor(reader string) *cursor {
	for _, c := range l.cursors {
		if c.name == reader {
			return c
		}
	}
	return nil
}

// WaitBelow blocks until the records not yet trimmed and size more bytes
// take at most max bytes, or ctx ends.
func (l *Log) WaitBelow(ctx context.Context, max, size int64) error {
	for {
		l.mu.Lock()
		ok := l.bytes+size <= max
		freed := l.freed
		l.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Read returns records after seq, in order, at most maxBytes of them (at
// least one). It waits for one when there is none, until ctx ends.
func (l *Log) Read(ctx context.Context, after uint64, maxBytes int64) ([]Record, error) {
	for {
		l.mu.Lock()
		todo := l.pick(after, maxBytes)
		wait := l.appended
		closed := l.closed
		l.mu.Unlock()
		if closed {
			return nil, errors.New("spool: closed")
		}
		if len(todo) > 0 {
			return l.readEntries(todo)
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Peek returns records after seq, at most maxBytes of them, without
// waiting: none when there are none.
func (l *Log) Peek(after uint64, maxBytes int64) ([]Record, error) {
	l.mu.Lock()
	todo := l.pick(after, maxBytes)
	l.mu.Unlock()
	if len(todo) == 0 {
		return nil, nil
	}
	return l.readEntries(todo)
}

// pick chooses the pending records after seq, at least one when there is
// one, at most maxBytes. The caller holds l.mu.
func (l *Log) pick(after uint64, maxBytes int64) []entry {
	i := sort.Search(len(l.pending), func(i int) bool { return l.pending[i].seq > after })
	var todo []entry
	var total int64
	for ; i < len(l.pending) && (len(todo) == 0 || total+l.pending[i].size <= maxBytes); i++ {
		todo = append(todo, l.pending[i])
		total += l.pending[i].size
	}
	return todo
}

func (l *Log) readEntries(es []entry) ([]Record, error) {
	out := make([]Record, 0, len(es))
	for _, e := range es {
		f, err := l.reader(e.seg)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, e.size)
		if _, err := f.ReadAt(buf, e.off); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("spool: read %s: %w", e.seg.path, err)
		}
		if binary.LittleEndian.Uint64(buf[8:16]) != e.seq ||
			crc32.Update(crc32.Checksum(buf[8:16], castagnoli), castagnoli, buf[headerSize:]) != binary.LittleEndian.Uint32(buf[4:8]) {
			return nil, fmt.Errorf("spool: record %d in %s no longer checks out (disk fault?)", e.seq, e.seg.path)
		}
		out = append(out, Record{Seq: e.seq, Data: buf[headerSize:]})
	}
	return out, nil
}

func (l *Log) reader(s *segment) (*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.rf == nil {
		f, err := os.Open(s.path)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.rf = f
	}
	return s.rf, nil
}

// Advance records that reader has taken every record through seq, saving
// its position (without fsync: a position lost in a crash only makes the
// reader take records again, which InfluxDB stores once). Records every
// reader has taken are trimmed: the trim mark is saved the same way, and
// segments that hold nothing else are deleted.
func (l *Log) Advance(reader string, seq uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cursor(reader)
	if c == nil {
		return fmt.Errorf("spool: no reader %q", reader)
	}
	if seq <= c.pos {
		return nil
	}
	c.pos = seq
	err := c.save(l.dir)
	low := c.pos
	for _, o := range l.cursors {
		low = min(low, o.pos)
	}
	if low <= l.trimmed {
		return err
	}
	l.trimmed = low
	n := 0
	for n < len(l.pending) && l.pending[n].seq <= low {
		l.bytes -= l.pending[n].size
		n++
	}
	l.pending = append(l.pending[:0], l.pending[n:]...)
	close(l.freed)
	l.freed = make(chan struct{})
	if merr := l.saveMark(low); err == nil {
		err = merr
	}
	if rerr := l.release(false); rerr != nil {
		return rerr
	}
	return err
}

// save writes the cursor's position over the previous one, in the trim
// mark's format.
func (c *cursor) save(dir string) error {
	if c.f == nil {
		f, err := os.OpenFile(filepath.Join(dir, cursorPrefix+c.name), os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		c.f = f
	}
	if _, err := c.f.WriteAt(formatMark(c.pos), 0); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// Freed returns a channel closed at the next trim.
func (l *Log) Freed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.freed
}

// release deletes the segments every record of which is delivered, and
// replaces the active segment when every record in it is delivered and it
// is at the roll size, or the disk has refused a write, or always: its
// space comes back at once. The caller holds l.mu.
func (l *Log) release(always bool) error {
	old := len(l.segs) > 1 && l.segs[0].last <= l.trimmed
	active := l.segs[len(l.segs)-1]
	replace := len(l.pending) == 0 && active.size > 0 && (always || l.starved || active.size >= l.opts.SegmentBytes)
	if !old && !replace {
		return nil
	}
	// Segments go: make the mark durable first, so that a restart does not
	// take an older mark beside fewer segments. Were it lost all the same,
	// nothing would be: the records gone were delivered, and the numbering
	// goes on from the segments' names. So a mark that cannot be written
	// (a full disk) does not keep the space.
	if l.mark != nil {
		_ = l.mark.Sync()
	}
	for len(l.segs) > 1 && l.segs[0].last <= l.trimmed {
		if err := l.remove(l.segs[0]); err != nil {
			return err
		}
		l.segs = l.segs[1:]
	}
	if replace {
		// The new segment first: the log always has one to append to,
		// and a crash between the two leaves only a delivered segment.
		if err := l.roll(); err != nil {
			return err
		}
		l.segs = slices.DeleteFunc(l.segs, func(s *segment) bool { return s == active })
		if err := l.remove(active); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes a segment's file.
func (l *Log) remove(s *segment) error {
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// saveMark writes the trim mark over the previous one: the sequence number
// and its CRC-32C, the same length every time, without fsync (a mark lost
// or torn in a crash only makes records be delivered again, and a torn one
// fails its check; Trim syncs it before it deletes a segment). Overwriting in place costs one system call; creating
// and renaming a file for every delivery cost more than the delivery's own
// spool work.
func (l *Log) saveMark(seq uint64) error {
	if l.mark == nil {
		f, err := os.OpenFile(filepath.Join(l.dir, trimFile), os.O_RDWR|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		l.mark = f
	}
	if _, err := l.mark.WriteAt(formatMark(seq), 0); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return nil
}

// formatMark renders a trim mark: 20 digits, a space, 8 hex digits of the
// CRC-32C of the digits, a newline.
func formatMark(seq uint64) []byte {
	digits := fmt.Sprintf("%020d", seq)
	return fmt.Appendf(nil, "%s %08x\n", digits, crc32.Checksum([]byte(digits), castagnoli))
}

// parseMark reads a trim mark; a bare number is the form before the
// checksum was added.
func parseMark(b []byte) (uint64, bool) {
	text := strings.TrimSpace(string(b))
	digits, sum, checked := strings.Cut(text, " ")
	if checked && sum != fmt.Sprintf("%08x", crc32.Checksum([]byte(digits), castagnoli)) {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

// Close closes the files. Records stay on disk for the next Open.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	close(l.appended)
	l.closeFiles()
	return nil
}

func (l *Log) closeFiles() {
	if l.active != nil {
		l.active.Close()
	}
	if l.mark != nil {
		l.mark.Close()
	}
	for _, c := range l.cursors {
		if c.f != nil {
			c.f.Close()
		}
	}
	for _, s := range l.segs {
		if s.rf != nil {
			s.rf.Close()
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: fsync %s: %w", dir, err)
	}
	return nil
}
