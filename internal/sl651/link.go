package sl651

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
)

// Confirm is the centre's M2/M3 confirmation of an uplink frame (§6.3,
// Tables 29, 31, 33 …): a downlink frame in the same encoding with the same
// function code, addresses and password, whose body is the uplink's serial
// number and the centre's send time now (Beijing time), ending EOT, or ESC
// when the station is to stay online. The confirmation of an M3 transfer is
// itself an M3 frame whose packet number is the packet count (Table 23
// note a); pass the frame Join returns, or the first packet, which carries
// the serial number.
func Confirm(up *Frame, now time.Time, stayOnline bool) *Frame {
	f := &Frame{
		Encoding: up.Encoding,
		Centre:   up.Centre,
		Station:  up.Station,
		Password: up.Password,
		Function: up.Function,
		End:      EOT,
	}
	if stayOnline {
		f.End = ESC
	}
	if up.Total > 0 {
		f.Total, f.Seq = up.Total, up.Total
	}
	// A confirmation echoes the serial number (§6.6.2.4); a body too short
	// to have one gets 0.
	var serial uint16
	sent := now.In(reading.Zone).Format("060102150405")
	if up.Encoding == ASCII {
		if len(up.Body) >= 4 {
			if x := parseHex(up.Body[:4]); x >= 0 {
				serial = uint16(x)
			}
		}
		f.Body = fmt.Appendf(nil, "%04X%s", serial, sent)
	} else {
		if len(up.Body) >= 2 {
			serial = uint16(up.Body[0])<<8 | uint16(up.Body[1])
		}
		f.Body = appendBCDDigits([]byte{byte(serial >> 8), byte(serial)}, sent)
	}
	f.Raw = f.Encode()
	return f
}

// Join joins the packets of one M3 transfer (same station, function code
// and packet count; each number 1 to the count once, in any order) into one
// frame whose Body is the packets' bodies in order (Table 22 note a). The
// result has the header of packet 1, End of the last packet, Total and Seq
// both the packet count, and no Raw.
func Join(packets []*Frame) (*Frame, error) {
	if len(packets) == 0 {
		return nil, errors.New("M3 join: no packets")
	}
	first := packets[0]
	if first == nil || first.Total < 1 {
		return nil, errors.New("M3 join: the first packet is not an M3 packet (no packet count)")
	}
	total := first.Total
	bySeq := make([]*Frame, total+1)
	var dup, beyond []int
	for k, p := range packets {
		if p == nil {
			return nil, fmt.Errorf("M3 join: packet %d of the list is nil", k)
		}
		if p.Station != first.Station || p.Function != first.Function || p.Total != total || p.Encoding != first.Encoding || p.Up != first.Up {
			return nil, fmt.Errorf("M3 join: packet %d of the list is station %s function %02X, %d packets; the transfer is station %s function %02X, %d packets",
				k, p.Station, p.Function, p.Total, first.Station, first.Function, total)
		}
		switch {
		case p.Seq < 1 || p.Seq > total:
			beyond = append(beyond, p.Seq)
		case bySeq[p.Seq] != nil:
			dup = append(dup, p.Seq)
		default:
			bySeq[p.Seq] = p
		}
	}
	var missing []int
	size := 0
	for seq := 1; seq <= total; seq++ {
		if bySeq[seq] == nil {
			missing = append(missing, seq)
		} else {
			size += len(bySeq[seq].Body)
		}
	}
	var problems []string
	if len(missing) > 0 {
		problems = append(problems, "missing "+numbers(missing))
	}
	if len(dup) > 0 {
		problems = append(problems, "duplicated "+numbers(dup))
	}
	if len(beyond) > 0 {
		problems = append(problems, "numbered beyond the count "+numbers(beyond))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("M3 transfer of %d packets from station %s, function %02X: packets %s",
			total, first.Station, first.Function, strings.Join(problems, "; "))
	}
	body := make([]byte, 0, size)
	for _, p := range bySeq[1:] {
		body = append(body, p.Body...)
	}
	head := bySeq[1]
	return &Frame{
		Encoding: head.Encoding,
		Up:       head.Up,
		Centre:   head.Centre,
		Station:  head.Station,
		Password: head.Password,
		Function: head.Function,
		Total:    total,
		Seq:      total,
		Body:     body,
		End:      bySeq[total].End,
	}, nil
}

// numbers lists packet numbers, the first ten of them.
func numbers(ns []int) string {
	var b strings.Builder
	for k, n := range ns {
		if k == 10 {
			fmt.Fprintf(&b, " and %d more", len(ns)-10)
			break
		}
		if k > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, n)
	}
	return b.String()
}
