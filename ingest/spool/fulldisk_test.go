package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rivermon/rivermon/internal/testenv"
)

// A spool emptied by delivery gives its space back, whatever the size of
// its segment. Before, a segment below the 16 MiB roll size stayed on disk
// after every record in it was delivered: on a full disk nothing could be
// appended again, before or after a restart.
func TestOpenStartsOnAnEmptySegmentWhenAllIsDelivered(t *testing.T) {
	dir := t.TempDir()
	l, _ := open(t, dir, 1<<20)
	appendN(t, l, 0, 30)
	if err := l.Advance(DefaultReader, 30); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l2, rec := open(t, dir, 1<<20)
	if rec.Pending != 0 {
		t.Fatalf("recovery %+v", rec)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) != 1 || filepath.Base(segs[0]) != fmt.Sprintf("%020d.seg", 31) {
		t.Fatalf("segments %v, want only an empty one for record 31", segs)
	}
	if st, err := os.Stat(segs[0]); err != nil || st.Size() != 0 {
		t.Fatalf("segment %v, %v: want it empty", st, err)
	}
	if seq, err := l2.Append([]byte("x")); err != nil || seq != 31 {
		t.Fatalf("append after the restart: %d, %v", seq, err)
	}
}

// TestFullDiskIsGivenBack runs on a real file system of 256 KiB (a tmpfs
// in a mount namespace of the test's own): the spool fills it, delivery
// takes everything, and appends succeed again: at once, after a restart,
// and when something else filled the disk after delivery caught up.
func TestFullDiskIsGivenBack(t *testing.T) {
	dir := os.Getenv("RIVERMON_SMALLFS_DIR")
	if dir == "" {
		dir = t.TempDir()
		cmd := testenv.SmallFS(t, dir, 256<<10, os.Args[0], "-test.run=^TestFullDiskIsGivenBack$", "-test.v")
		cmd.Env = append(os.Environ(), "RIVERMON_SMALLFS_DIR="+dir)
		out, err := cmd.CombinedOutput()
		t.Logf("on a 256 KiB file system:\n%s", out)
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestFullDiskIsGivenBack")) {
			t.Fatalf("failed: %v", err)
		}
		return
	}
	rec := []byte(strings.Repeat("r", 4000))
	fill := func(l *Log) int {
		t.Helper()
		for n := 0; ; n++ {
			if _, err := l.Append(rec); err != nil {
				t.Logf("disk full after %d records: %v", n, err)
				if n == 0 {
					t.Fatal("nothing could be appended")
				}
				return n
			}
		}
	}
	deliverAll := func(l *Log) {
		t.Helper()
		if got := readAll(t, l, l.Trimmed()); len(got) == 0 {
			t.Fatal("nothing to deliver")
		}
		if err := l.Advance(DefaultReader, l.next-1); err != nil {
			t.Fatal(err)
		}
	}
	sp := filepath.Join(dir, "spool")

	// Full, then delivered: the next append succeeds without a restart.
	l, _ := open(t, sp, 16<<20)
	fill(l)
	deliverAll(l)
	if _, err := l.Append(rec); err != nil {
		t.Fatalf("append after delivery emptied a full spool: %v", err)
	}

	// Full, restarted, delivered: the same.
	fill(l)
	l.Close()
	l, _ = open(t, sp, 16<<20)
	deliverAll(l)
	if _, err := l.Append(rec); err != nil {
		t.Fatalf("append after a restart and delivery: %v", err)
	}

	// Delivered before the disk filled (here with another file): the
	// segment is given back when an append fails, and the append made.
	deliverAll(l)
	other, err := os.Create(filepath.Join(dir, "other"))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := other.Write(make([]byte, 4096)); err != nil {
			break
		}
	}
	other.Close()
	if _, err := l.Append(rec); err != nil {
		t.Fatalf("append on a disk filled after delivery: %v", err)
	}

	// Delivered, and the disk filled, before a restart: the restart gives
	// the segment back.
	deliverAll(l)
	l.Close()
	for {
		f, err := os.OpenFile(filepath.Join(dir, "other"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Write(make([]byte, 4096))
		f.Close()
		if err != nil {
			break
		}
	}
	l, _ = open(t, sp, 16<<20)
	if _, err := l.Append(rec); err != nil {
		t.Fatalf("append after a restart on a full disk: %v", err)
	}
}
