package ingest

import (
	"fmt"

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

// decodeHJ212 reads one or more HJ 212-2017 packets: from MQTT (st is the
// topic's station, whose hj212_mn each packet must carry) or from the TCP
// listener (st nil: the station is found by MN). Each data packet becomes
// one sample, stored as a native reading is.
func (s *Stream) decodeHJ212(m *Message, st *registry.Station, d *decoded) {
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
		target := st
		switch {
		case st == nil:
			target = s.o.Registry.StationByMN(pkt.MN)
			if target == nil {
				reject("_unknown", ReasonUnknownMN, fmt.Sprintf("MN %s is no station's hj212_mn", pkt.MN), reading.LevelMessage)
				continue
			}
		case st.HJ212MN != pkt.MN:
			reject(st.ID, ReasonMNMismatch, fmt.Sprintf("MN %s is not station %s's (%s)", pkt.MN, st.ID, st.HJ212MN), reading.LevelMessage)
			continue
		}
		if pkt.CRC != target.HJ212CRC {
			reject(target.ID, hj212.ReasonBadCRC, fmt.Sprintf("framed with %s; station %s expects %s (hj212_crc)",
				crcName(pkt.CRC), target.ID, crcName(target.HJ212CRC)), reading.LevelMessage)
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
			continue
		}
		field, ok := hj212.ValueField(pkt.CN)
		if !ok {
			reject(target.ID, ReasonUnsupportedCN, fmt.Sprintf("CN %s is not a data upload (2011, 2051, 2061, 2031)", pkt.CN), reading.LevelMessage)
			continue
		}
		data, err := hj212.ParseCP(pkt.CP)
		if err != nil {
			reject(target.ID, ReasonBadCP, err.Error(), reading.LevelMessage)
			continue
		}
		if err := reading.Storable(data.Time); err != nil {
			reject(target.ID, reading.ReasonBadTime, "DataTime: "+err.Error(), reading.LevelSample)
			continue
		}
		if data.Time.Sub(m.Received) > reading.MaxFuture {
			reject(target.ID, reading.ReasonFutureTime, fmt.Sprintf("DataTime %s is ahead of the receive time", data.Time.Format("2006-01-02T15:04:05Z")), reading.LevelSample)
			continue
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
			continue
		}
		sortValues(&smp)
		d.groups = append(d.groups, group{st: target, heard: true, samples: []reading.Sample{smp}, forced: []map[string]int{forced}})
		accepted++
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
