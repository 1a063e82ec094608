package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// recordVersion heads every spool record so that the format can change.
const recordVersion = 1

// encodeRecord renders what a batch must still deliver, its points and its
// dead letters, as one spool record.
func encodeRecord(lines []string, dls []deadLetter) []byte {
	n := 1 + binary.MaxVarintLen64*2
	for _, l := range lines {
		n += binary.MaxVarintLen64 + len(l)
	}
	for _, d := range dls {
		n += 3*binary.MaxVarintLen64 + len(d.topic) + len(d.reason) + len(d.body)
	}
	b := make([]byte, 0, n)
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(len(lines)))
	for _, l := range lines {
		b = binary.AppendUvarint(b, uint64(len(l)))
		b = append(b, l...)
	}
	b = binary.AppendUvarint(b, uint64(len(dls)))
	for _, d := range dls {
		for _, s := range [][]byte{[]byte(d.topic), []byte(d.reason), d.body} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

var errRecord = errors.New("spool record is malformed")

// decodeRecord is the inverse of encodeRecord; it appends to lines and dls.
func decodeRecord(b []byte, lines []string, dls []deadLetter) ([]string, []deadLetter, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return lines, dls, fmt.Errorf("%w: unknown version", errRecord)
	}
	b = b[1:]
	// One string for the whole record: the lines are slices of it rather
	// than a copy each.
	text := string(b)
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errRecord
		}
		s := b[k : k+int(n)]
		b = b[k+int(n):]
		return s, nil
	}
	count := func() (int, error) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return 0, errRecord
		}
		b = b[k:]
		return int(n), nil
	}
	nl, err := count()
	if err != nil {
		return lines, dls, err
	}
	for range nl {
		s, err := next()
		if err != nil {
			return lines, dls, err
		}
		end := len(text) - len(b) // s is what next consumed last
		lines = append(lines, text[end-len(s):end])
	}
	nd, err := count()
	if err != nil {
		return lines, dls, err
	}
	for range nd {
		var parts [3][]byte
		for i := range parts {
			if parts[i], err = next(); err != nil {
				return lines, dls, err
			}
		}
		dls = append(dls, deadLetter{topic: string(parts[0]), reason: string(parts[1]), body: append([]byte(nil), parts[2]...)})
	}
	if len(b) != 0 {
		return lines, dls, fmt.Errorf("%w: %d bytes left over", errRecord, len(b))
	}
	return lines, dls, nil
}
