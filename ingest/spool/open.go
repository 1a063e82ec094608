package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Open opens or creates the spool in dir and recovers it.
func Open(dir string, opts Options) (*Log, Recovery, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 16 << 20
	}
	var rec Recovery
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, rec, fmt.Errorf("spool: %w", err)
	}
	if len(opts.Readers) == 0 {
		opts.Readers = []string{DefaultReader}
	}
	l := &Log{dir: dir, opts: opts, next: 1, appended: make(chan struct{}), freed: make(chan struct{})}
	if b, err := os.ReadFile(filepath.Join(dir, trimFile)); err == nil {
		if n, ok := parseMark(b); ok {
			l.trimmed = n
		}
	}
	// Each reader resumes from its cursor, or from the mark when it has
	// none (a new reader, or a spool written before there were cursors)
	// or one that a crash damaged. The mark is never ahead of a reader:
	// it is the lowest position when it is written.
	low, high := uint64(0), l.trimmed
	for i, name := range opts.Readers {
		if !validReader(name) || slices.Contains(opts.Readers[:i], name) {
			return nil, rec, fmt.Errorf("spool: reader name %q: want letters, digits, '-', '_' and '.', each name once", name)
		}
		c := &cursor{name: name, pos: l.trimmed}
		if b, err := os.ReadFile(filepath.Join(dir, cursorPrefix+name)); err == nil {
			if n, ok := parseMark(b); ok && n > c.pos {
				c.pos = n
			}
		}
		if i == 0 || c.pos < low {
			low = c.pos
		}
		high = max(high, c.pos)
		l.cursors = append(l.cursors, c)
	}
	l.trimmed = low
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		return nil, rec, fmt.Errorf("spool: %w", err)
	}
	sort.Strings(names) // zero-padded first sequence numbers sort in order
	for i, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), segmentSuffix), 10, 64)
		if err != nil {
			continue
		}
		s := &segment{path: name, first: first}
		cut, err := l.scan(s)
		if err != nil {
			l.closeFiles()
			return nil, rec, err
		}
		// A segment's name is the first sequence number it was opened
		// for; an empty one (rolled after a full trim) still fixes where
		// the numbering goes on, whatever the trim mark says.
		l.next = max(l.next, first)
		if cut != "" {
			rec.Cut = append(rec.Cut, cut)
		}
		if s.last > 0 && s.last <= l.trimmed && i < len(names)-1 {
			// Every record delivered: the segment is no longer needed.
			_ = os.Remove(name)
			continue
		}
		l.segs = append(l.segs, s)
	}
	// Numbers a reader has passed are never given again: it would skip
	// the records that got them.
	if high >= l.next {
		l.next = high + 1
	}
	if len(l.segs) == 0 {
		if err := l.roll(); err != nil {
			return nil, rec, err
		}
	} else {
		last := l.segs[len(l.segs)-1]
		f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			l.closeFiles()
			return nil, rec, fmt.Errorf("spool: %w", err)
		}
		l.active = f
	}
	// Everything delivered: start on an empty segment, whatever the size
	// of the last one, so that a restart gives back the space of a spool
	// that filled the disk. The mark is written now, while there is room
	// for it, and later overwritten in place.
	if err := l.release(true); err != nil {
		l.closeFiles()
		return nil, rec, err
	}
	_ = l.saveMark(l.trimmed)
	for _, c := range l.cursors {
		_ = c.save(dir)
	}
	rec.Segments, rec.Pending, rec.Bytes = len(l.segs), len(l.pending), l.bytes
	return l, rec, nil
}

func validReader(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// scan reads every record of s, keeps those that check out, and truncates
// the segment at the first that does not.
func (l *Log) scan(s *segment) (cut string, err error) {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0o640)
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	var off int64
	hdr := make([]byte, headerSize)
	var buf []byte
	prev := s.first - 1
	reason := ""
	for off < st.Size() {
		if _, err := f.ReadAt(hdr, off); err != nil {
			reason = "a record header is cut short"
			break
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		seq := binary.LittleEndian.Uint64(hdr[8:16])
		if n > MaxRecordBytes || off+headerSize+n > st.Size() {
			reason = "a record is cut short"
			break
		}
		if seq <= prev {
			reason = fmt.Sprintf("record sequence %d does not follow %d", seq, prev)
			break
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := f.ReadAt(buf, off+headerSize); err != nil {
			reason = "a record is cut short"
			break
		}
		if crc32.Update(crc32.Checksum(hdr[8:16], castagnoli), castagnoli, buf) != sum {
			reason = "a record fails its checksum"
			break
		}
		if seq > l.trimmed {
			l.total += headerSize + n
			l.pending = append(l.pending, entry{seq: seq, size: headerSize + n, end: l.total, seg: s, off: off})
			l.bytes += headerSize + n
		}
		prev, s.last = seq, seq
		if seq >= l.next {
			l.next = seq + 1
		}
		off += headerSize + n
	}
	s.size = off
	if off < st.Size() {
		if err := f.Truncate(off); err != nil {
			return "", fmt.Errorf("spool: truncate %s: %w", s.path, err)
		}
		if err := f.Sync(); err != nil {
			return "", fmt.Errorf("spool: %w", err)
		}
		return fmt.Sprintf("%s: %s at byte %d; cut %d bytes after the last good record", filepath.Base(s.path), reason, off, st.Size()-off), nil
	}
	return "", nil
}

// roll starts a new segment named after the next sequence number.
func (l *Log) roll() error {
	if l.active != nil {
		if err := l.active.Close(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		l.active = nil
	}
	path := filepath.Join(l.dir, fmt.Sprintf("%020d%s", l.next, segmentSuffix))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(l.dir); err != nil {
		f.Close()
		return err
	}
	l.active = f
	l.segs = append(l.segs, &segment{path: path, first: l.next})
	return nil
}
