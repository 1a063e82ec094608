package ingest

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Reasons of HJ 212 rejections beyond the framing ones of package hj212.
const (
	ReasonUnknownMN      = "hj212_unknown_mn"
	ReasonBadPW          = "hj212_bad_pw"
	ReasonMNMismatch     = "hj212_mn_mismatch"
	ReasonUnsupportedCN  = "hj212_unsupported_cn"
	ReasonBadCP          = "hj212_bad_cp"
	reasonIncompleteHJ12 = "hj212_incomplete"
)

func hj212Reasons() []string {
	return []string{hj212.ReasonBadFrame, hj212.ReasonBadLength, hj212.ReasonBadCRC, hj212.ReasonBadSegment,
		ReasonUnknownMN, ReasonBadPW, ReasonMNMismatch, ReasonUnsupportedCN, ReasonBadCP, reasonIncompleteHJ12}
}

// Bounds of the split HJ 212 packets held until their last piece comes
// (hj212Pieces): a packet of more pieces than hj212MaxPieces is not joined;
// beyond hj212MaxPieces or hj212MaxBytes held, the packet begun first is
// given up, as is one whose first piece came more than hj212PieceAge ago.
// A packet is cut into pieces when its data segment would be over 1,024
// characters (HJ 212-2017 Table 2), and its pieces are sent back to back:
// 64 KiB is some 60 full pieces, ten minutes twenty times the standard's
// three tries of ten seconds (Table 1).
const (
	hj212MaxPieces = 64
	hj212MaxBytes  = 64 << 10
	hj212PieceAge  = 10 * time.Minute
)

// hj212Pieces holds pieces of split HJ 212 packets (Flag bit D, PNUM/PNO)
// until all the pieces of their packet are in. A piece that stands on its
// own (its DataTime and whole items, as the senders examined in package
// hj212 send them) is stored at once and never waits; only a piece that
// does not (a data area cut anywhere: no DataTime, an item cut off) is
// held, and each packet's first piece beside it, since a data area cut
// inside a value still parses. A packet that cannot be completed is
// dead-lettered hj212_incomplete with the frames of all its pieces held:
// one too old at the next sweep or HJ 212 message, and every one held when
// rivermon stops. The pieces are in memory only and the messages that
// brought them are acknowledged once their batch is spooled, so a crash
// loses the pieces of a packet not yet complete. The stream's assembler
// goroutine owns it.
type hj212Pieces struct{ a *hj212.Assembler[pieceOrigin] }

// pieceOrigin is what the stream keeps of a piece beside its frame.
type pieceOrigin struct {
	source, from string            // of the message that brought it
	station      *registry.Station // whose MN it carries
	stored       bool              // stored on its own when it came
}

func (hp *hj212Pieces) assembler() *hj212.Assembler[pieceOrigin] {
	if hp.a == nil {
		hp.a = hj212.NewAssembler[pieceOrigin](hj212.AssemblerLimits{
			MaxPieces: hj212MaxPieces, MaxBytes: hj212MaxBytes, MaxAge: hj212PieceAge})
	}
	return hp.a
}

// decodeHJ212 reads one or more HJ 212-2017 packets: from MQTT (st is the
// topic's station, whose hj212_mn each packet must carry) or from the TCP
// listener (st nil: the station is found by MN). Each data packet becomes
// one sample, stored as a native reading is; the pieces of a split packet
// each become one, or are joined (hj212Pieces).
func (s *Stream) decodeHJ212(m *Message, st *registry.Station, d *decoded) {
	for _, g := range s.pieces.assembler().Expire(m.Received) {
		s.giveUpHJ212(d, g)
	}
	frames, rest := hj212.Split(m.Payload)
	stationOf := func(s *registry.Station) string {
		if s == nil {
			return "_unknown"
		}
		return s.ID
	}
	if len(rest) > 0 {
		frames = append(frames, hj212.Frame{Raw: rest, Err: &hj212.Error{Reason: reasonIncompleteHJ12, Detail: "a packet is cut short"}})
	}
	accepted, rejected := 0, 0
	for _, f := range frames {
		reject := func(station, reason, detail string, level reading.Level) {
			mm := *m
			mm.Payload = f.Raw
			s.reject(d, &mm, station, &reading.Rejection{Level: level, Reason: reason, Detail: detail})
			if level != reading.LevelValue {
				rejected++
			}
		}
		if f.Err != nil {
			reject(stationOf(st), f.Err.Reason, f.Err.Detail, reading.LevelMessage)
			continue
		}
		pkt := f.Pkt
		// answer adds the answers the packet asks for (over TCP, where a
		// message is one packet), sent once it is durable.
		answer := func(v hj212.Verdict) {
			if m.Reply != nil {
				for _, a := range hj212.Answers(pkt, v) {
					d.reply = append(d.reply, a...)
				}
			}
		}
		target := st
		switch {
		case st == nil:
			target = s.o.Registry.StationByMN(pkt.MN)
			if target == nil {
				reject("_unknown", ReasonUnknownMN, fmt.Sprintf("MN %s is no station's hj212_mn", pkt.MN), reading.LevelMessage)
				answer(hj212.BadMN)
				continue
			}
		case st.HJ212MN != pkt.MN:
			reject(st.ID, ReasonMNMismatch, fmt.Sprintf("MN %s is not station %s's (%s)", pkt.MN, st.ID, st.HJ212MN), reading.LevelMessage)
			answer(hj212.BadMN)
			continue
		}
		if pkt.CRC != target.HJ212CRC {
			reject(target.ID, hj212.ReasonBadCRC, fmt.Sprintf("framed with %s; station %s expects %s (hj212_crc)",
				crcName(pkt.CRC), target.ID, crcName(target.HJ212CRC)), reading.LevelMessage)
			// A CRC error gets no answer (HJ 212-2017 §6.4): the logger
			// tries again, and its operator sees the dead letters.
			continue
		}
		if target.HJ212PW != "" && pkt.PW != target.HJ212PW {
			// The detail never says what the PW should be: dead letters
			// are published to anyone subscribed.
			detail := fmt.Sprintf("PW is not station %s's hj212_pw", target.ID)
			if pkt.PW == "" {
				detail = fmt.Sprintf("no PW; station %s has an hj212_pw", target.ID)
			}
			reject(target.ID, ReasonBadPW, detail, reading.LevelMessage)
			answer(hj212.BadPW)
			continue
		}
		field, ok := hj212.ValueField(pkt.CN)
		switch {
		case !ok && pkt.CN == hj212.CNBootTime:
			// The logger says it has restarted: a sign of life, nothing
			// to store.
			d.heard = target
			accepted++
			answer(hj212.Taken)
			continue
		case !ok:
			reject(target.ID, ReasonUnsupportedCN, fmt.Sprintf("CN %s is not a data upload (2011, 2051, 2061, 2031)", pkt.CN), reading.LevelMessage)
			answer(hj212.Rejected)
			continue
		}
		pnum, pno, piece := pkt.Pieces()
		data, err := hj212.ParseCP(pkt.CP)
		switch {
		case piece && (err != nil || len(data.Items) == 0):
			// Not whole on its own: held for the other pieces.
			s.holdHJ212(d, m, f.Raw, target, pkt, pnum, pno, false)
			d.heard = target
			accepted++
			answer(hj212.Taken)
			continue
		case err != nil:
			reject(target.ID, ReasonBadCP, err.Error(), reading.LevelMessage)
			answer(hj212.Rejected)
			continue
		}
		answer(hj212.Taken)
		stored := s.hj212Sample(d, m.Received, target, field, data, reject)
		if stored {
			accepted++
		}
		if piece && pno == 1 {
			// A first piece parses even when its data area was cut
			// inside the last value: kept, for the rest to be joined to.
			s.holdHJ212(d, m, f.Raw, target, pkt, pnum, pno, stored)
		}
	}
	switch {
	case rejected == 0:
		s.m.msgAccepted.Inc()
	case accepted == 0:
		s.m.msgRejected.Inc()
	default:
		s.m.msgPartial.Inc()
	}
}

// hj212Sample adds the sample of a data upload's data area to d, as a
// sample of target: factors rivermon does not take and values that are
// not finite decimal numbers are rejected (value level), a DataTime that
// cannot be stored rejects the sample. It reports whether a sample was
// added.
func (s *Stream) hj212Sample(d *decoded, received time.Time, target *registry.Station, field string, data *hj212.Data,
	reject func(station, reason, detail string, level reading.Level)) bool {
	if err := reading.Storable(data.Time); err != nil {
		reject(target.ID, reading.ReasonBadTime, "DataTime: "+err.Error(), reading.LevelSample)
		return false
	}
	if data.Time.Sub(received) > reading.MaxFuture {
		reject(target.ID, reading.ReasonFutureTime, fmt.Sprintf("DataTime %s is ahead of the receive time", data.Time.Format("2006-01-02T15:04:05Z")), reading.LevelSample)
		return false
	}
	smp := reading.Sample{Time: data.Time}
	forced := map[string]int{}
	for _, code := range data.SortedCodes() {
		item := data.Items[code]
		param, known := hj212.Codes[code]
		raw, has := item[field]
		switch {
		case !known:
			reject(target.ID, reading.ReasonUnknownParam, fmt.Sprintf("factor %s is not taken", code), reading.LevelValue)
			continue
		case !has:
			continue // a flag without a value, or another interval statistic only
		}
		v, ok := hj212.ParseNumber(raw)
		if !ok {
			// NaN, Inf and hex floats would reach InfluxDB (CONTRACT §11).
			reject(target.ID, reading.ReasonBadValue, fmt.Sprintf("%s-%s %q is not a finite decimal number", code, field, raw), reading.LevelValue)
			continue
		}
		flag, knownFlag := hj212.FlagQC[item["Flag"]]
		if item["Flag"] != "" && !knownFlag {
			flag = 2 // an unknown device flag: the value cannot be judged normal
		}
		if flag > 0 {
			forced[param] = flag
		}
		smp.Values = append(smp.Values, reading.Value{Code: param, Value: v})
	}
	if len(smp.Values) == 0 {
		reject(target.ID, reading.ReasonNoValues, "no value of a known factor", reading.LevelSample)
		return false
	}
	sortValues(&smp)
	d.groups = append(d.groups, group{st: target, heard: true, samples: []reading.Sample{smp}, forced: []map[string]int{forced}})
	return true
}

// holdHJ212 adds a piece of a split packet to the pieces held, and stores
// the packet once it is complete; stored says the piece was stored on its
// own already.
func (s *Stream) holdHJ212(d *decoded, m *Message, raw []byte, target *registry.Station, pkt *hj212.Packet, pnum, pno int, stored bool) {
	complete, gaveUp := s.pieces.assembler().Add(hj212.Piece[pieceOrigin]{
		Pkt: pkt, PNUM: pnum, PNO: pno, At: m.Received,
		Raw:  bytes.Clone(raw), // not the whole message's payload
		Meta: pieceOrigin{source: m.Source, from: m.From, station: target, stored: stored},
	})
	for _, g := range gaveUp {
		s.giveUpHJ212(d, g)
	}
	if complete == nil {
		return
	}
	first := complete[0]
	var frames []byte
	for _, p := range complete {
		frames = append(frames, p.Raw...)
	}
	// Rejections of the joined packet carry the frames of all its pieces.
	mm := *m
	mm.Payload = frames
	reject := func(station, reason, detail string, level reading.Level) {
		s.reject(d, &mm, station, &reading.Rejection{Level: level, Reason: reason, Detail: detail})
	}
	data, err := hj212.ParseCP(hj212.Join(complete))
	if err != nil {
		reject(target.ID, ReasonBadCP, fmt.Sprintf("the %d pieces of QN %s joined: %v", len(complete), first.Pkt.QN, err), reading.LevelMessage)
		return
	}
	if first.Meta.stored {
		// The items of the first piece were stored when it came; those it
		// had whole are not stored again.
		if head, err := hj212.ParseCP(first.Pkt.CP); err == nil {
			for code, item := range head.Items {
				if maps.Equal(item, data.Items[code]) {
					delete(data.Items, code)
				}
			}
		}
		if len(data.Items) == 0 {
			return
		}
	}
	field, _ := hj212.ValueField(first.Pkt.CN) // a data upload: checked before it was held
	s.hj212Sample(d, m.Received, target, field, data, reject)
}

// giveUpHJ212 dead-letters a split packet that cannot be completed, with
// the frames of all its pieces held, unless each of them was stored on its
// own.
func (s *Stream) giveUpHJ212(d *decoded, g hj212.Incomplete[pieceOrigin]) {
	var frames []byte
	var nos []string
	lost := false
	for _, p := range g.Pieces {
		frames = append(frames, p.Raw...)
		no := strconv.Itoa(p.PNO)
		if p.Meta.stored {
			no += " (stored on its own)"
		} else {
			lost = true
		}
		nos = append(nos, no)
	}
	if !lost {
		return
	}
	// The dead letter tells where and when the packet's first piece came.
	first := slices.MinFunc(g.Pieces, func(a, b hj212.Piece[pieceOrigin]) int { return a.At.Compare(b.At) })
	m := Message{Source: first.Meta.source, From: first.Meta.from, Payload: frames, Received: first.At}
	detail := fmt.Sprintf("pieces %s of %d (QN %s, MN %s) not joined: %s", strings.Join(nos, ", "), g.PNUM, g.Key.QN, g.Key.MN, g.Why)
	s.reject(d, &m, first.Meta.station.ID, &reading.Rejection{Level: reading.LevelMessage, Reason: reasonIncompleteHJ12, Detail: detail})
}

// expirePieces dead-letters into b the split packets held too long (now
// set) or, when rivermon stops (now zero), all of them: their pieces were
// answered, so they are kept as dead letters rather than lost.
func (s *Stream) expirePieces(b *batch, now time.Time) {
	if s.pieces.a == nil {
		return
	}
	var gone []hj212.Incomplete[pieceOrigin]
	if now.IsZero() {
		gone = s.pieces.a.GiveUpAll("rivermon stopped before the rest came")
	} else {
		gone = s.pieces.a.Expire(now)
	}
	if len(gone) == 0 {
		return
	}
	d := &s.dec
	d.reset()
	for _, g := range gone {
		s.giveUpHJ212(d, g)
	}
	b.rec.DeadLetters = append(b.rec.DeadLetters, d.deadLetters...)
}

// crcName names a CRC variant in a dead letter.
func crcName(variant string) string {
	if variant == hj212.CRCVariantModbus {
		return "CRC-16/MODBUS"
	}
	return "the HJ 212 CRC"
}

// sortValues puts values in the canonical parameter order.
func sortValues(s *reading.Sample) {
	order := map[string]int{}
	for i, prm := range reading.Params() {
		order[prm.Code] = i
	}
	vs := s.Values
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && order[vs[j].Code] < order[vs[j-1].Code]; j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}
