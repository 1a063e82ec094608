package ingest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/testenv"
)

// hjRegistry is the shipped registry with extra keys under some stations'
// hj212_mn line: extra maps a station id to YAML lines.
func hjRegistry(t *testing.T, extra map[string]string) *registry.Registry {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for id, lines := range extra {
		i := strings.Index(text, "  - id: "+id+" ")
		j := strings.Index(text[i:], "    hj212_mn: ")
		if i < 0 || j < 0 {
			t.Fatalf("station %s with hj212_mn not in stations.yaml", id)
		}
		at := i + j + strings.Index(text[i+j:], "\n") + 1
		text = text[:at] + lines + text[at:]
	}
	r, err := registry.Load("stations.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// hjHarness is a pipeline with reg as its registry that stores into a real
// InfluxDB and keeps its dead letters.
type hjHarness struct {
	p    *pipeline
	in   *testenv.Influx
	pub  *fakePublisher
	acks *ackLog
	n    int
	stop func()
}

func newHJHarness(t *testing.T, reg *registry.Registry) *hjHarness {
	t.Helper()
	in := testenv.StartInflux(t)
	w := influx.New(influx.Options{URL: in.URL, Bucket: "rivermon/autogen", MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	t.Cleanup(w.Close)
	h := &hjHarness{in: in, pub: &fakePublisher{}, acks: &ackLog{}}
	h.p = newPipeline(t, t.TempDir(), w, h.pub, Options{})
	// The stream reads the registry; the intake and delivery do not.
	so := h.p.stream.o
	so.Registry = reg
	// Messages here carry receive times of the past: the wall-clock sweep
	// would give held pieces up at once.
	so.SweepEvery = time.Hour
	h.p.stream = NewStream(so)
	h.stop = start(t, h.p)
	return h
}

// send hands one MQTT message to the pipeline and waits until it is
// acknowledged (stored and dead-lettered in the spool).
func (h *hjHarness) send(t *testing.T, station string, payload []byte, received time.Time) {
	t.Helper()
	h.n++
	h.p.Handle("rivermon/v1/stations/"+station+"/hj212", payload, received, h.acks.ack(h.n))
	n := h.n
	eventually(t, func() bool { return len(h.acks.get()) == n }, "message not acknowledged")
}

// deadLetters waits until station has at least n dead letters and returns
// them, decoded.
func (h *hjHarness) deadLetters(t *testing.T, station string, n int) []map[string]any {
	t.Helper()
	topic := "rivermon/v1/deadletter/" + station
	var got []string
	eventually(t, func() bool {
		h.pub.mu.Lock()
		defer h.pub.mu.Unlock()
		got = append([]string(nil), h.pub.sent[topic]...)
		return len(got) >= n
	}, fmt.Sprintf("fewer than %d dead letters on %s", n, topic))
	out := make([]map[string]any, len(got))
	for i, s := range got {
		if err := json.Unmarshal([]byte(s), &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// row waits for the reading point of station at time at and returns its
// fields and tags, numbers as strings.
func (h *hjHarness) row(t *testing.T, station string, at time.Time) map[string]string {
	t.Helper()
	q := fmt.Sprintf("SELECT * FROM reading WHERE station = '%s' AND time = %d", station, at.UnixNano())
	var row map[string]string
	testenv.Eventually(t, 10*time.Second, func() bool {
		ss, err := h.in.Query("rivermon", q)
		if err != nil || len(ss) == 0 || len(ss[0].Values) == 0 {
			return false
		}
		row = map[string]string{}
		for k, v := range ss[0].Rows()[0] {
			if v != nil {
				row[k] = fmt.Sprint(v)
			}
		}
		return true
	}, "no reading of %s at %s", station, at)
	return row
}

func payloadOf(t *testing.T, dl map[string]any) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(fmt.Sprint(dl["payload_b64"]))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hjData is a real-time upload (2011) of station MN mn at DataTime at,
// with items "w01010-Rtd=9.8,w01010-Flag=N;…" in cp.
func hjData(mn string, at time.Time, cp string) *hj212.Packet {
	local := at.In(time.FixedZone("CST", 8*3600)).Format("20060102150405")
	return &hj212.Packet{QN: local + "000", ST: "21", CN: "2011", PW: "123456", MN: mn, Flag: 5, CP: "DataTime=" + local + ";" + cp}
}

// TestHJ212ValuesMustBeFiniteDecimals: NaN, +Inf and a hex float are each
// dead-lettered bad_value; the other values of their packet are stored as
// sent.
func TestHJ212ValuesMustBeFiniteDecimals(t *testing.T) {
	reg := hjRegistry(t, nil)
	h := newHJHarness(t, reg)
	const st = "nianchu-bainang"
	mn := reg.Station(st).HJ212MN
	at := time.Date(2026, 7, 1, 2, 0, 0, 0, time.UTC)
	pkt := hjData(mn, at, "w01010-Rtd=9.8,w01010-Flag=N;w01009-Rtd=NaN,w01009-Flag=N;w01001-Rtd=+Inf,w01001-Flag=N;w21003-Rtd=0x1p-2,w21003-Flag=N;w01014-Rtd=312.0,w01014-Flag=N;w21011-Rtd=6E-2,w21011-Flag=N")
	h.send(t, st, pkt.Encode(), at.Add(time.Minute))

	dls := h.deadLetters(t, st, 3)
	var details []string
	for _, dl := range dls {
		if dl["reason"] != "bad_value" || dl["level"] != "value" {
			t.Errorf("dead letter %v, want bad_value at value level", dl)
		}
		if payloadOf(t, dl) != string(pkt.Encode()) {
			t.Errorf("dead letter payload is not the packet: %q", payloadOf(t, dl))
		}
		details = append(details, fmt.Sprint(dl["detail"]))
	}
	joined := strings.Join(details, "\n")
	for _, want := range []string{`w01009-Rtd "NaN"`, `w01001-Rtd "+Inf"`, `w21003-Rtd "0x1p-2"`} {
		if !strings.Contains(joined, want) {
			t.Errorf("no dead letter for %s in:\n%s", want, joined)
		}
	}
	row := h.row(t, st, at)
	for code, want := range map[string]string{"water_temp_c": "9.8", "cond_uscm": "312", "tp_mgl": "0.06"} {
		if row[code] != want {
			t.Errorf("%s = %q, want %s", code, row[code], want)
		}
	}
	for _, code := range []string{"do_mgl", "ph", "nh3n_mgl"} {
		if v, ok := row[code]; ok {
			t.Errorf("%s stored as %s", code, v)
		}
	}
}

// TestHJ212CRCVariantIsTheStations: a packet framed with CRC-16/MODBUS is
// stored exactly for a station with hj212_crc: modbus, and dead-lettered
// hj212_bad_crc, naming both variants, from a station with the default;
// the standard's CRC from the MODBUS station likewise.
func TestHJ212CRCVariantIsTheStations(t *testing.T) {
	const modbusSt, defaultSt = "nianchu-gyantse", "nianchu-mouth"
	reg := hjRegistry(t, map[string]string{modbusSt: "    hj212_crc: modbus\n"})
	if reg.Station(modbusSt).HJ212CRC != hj212.CRCVariantModbus || reg.Station(defaultSt).HJ212CRC != hj212.CRCVariantHJ212 {
		t.Fatalf("hj212_crc %q and %q", reg.Station(modbusSt).HJ212CRC, reg.Station(defaultSt).HJ212CRC)
	}
	h := newHJHarness(t, reg)
	at := time.Date(2026, 7, 1, 3, 0, 0, 0, time.UTC)
	items := "w01010-Rtd=9.8,w01010-Flag=N;w01001-Rtd=8.21,w01001-Flag=N;w01009-Rtd=6.62,w01009-Flag=N;w21003-Rtd=0.11,w21003-Flag=N"

	h.send(t, modbusSt, hjData(reg.Station(modbusSt).HJ212MN, at, items).EncodeCRC(hj212.CRCVariantModbus), at)
	row := h.row(t, modbusSt, at)
	for code, want := range map[string]string{"water_temp_c": "9.8", "ph": "8.21", "do_mgl": "6.62", "nh3n_mgl": "0.11"} {
		if row[code] != want {
			t.Errorf("MODBUS station: %s = %q, want %s", code, row[code], want)
		}
	}

	wrong := hjData(reg.Station(defaultSt).HJ212MN, at, items).EncodeCRC(hj212.CRCVariantModbus)
	h.send(t, defaultSt, wrong, at)
	dls := h.deadLetters(t, defaultSt, 1)
	want := "framed with CRC-16/MODBUS; station " + defaultSt + " expects the HJ 212 CRC (hj212_crc)"
	if dls[0]["reason"] != "hj212_bad_crc" || dls[0]["level"] != "message" || dls[0]["detail"] != want || payloadOf(t, dls[0]) != string(wrong) {
		t.Errorf("dead letter %v, want hj212_bad_crc %q with the packet", dls[0], want)
	}

	back := hjData(reg.Station(modbusSt).HJ212MN, at.Add(time.Minute), items).Encode()
	h.send(t, modbusSt, back, at)
	dls = h.deadLetters(t, modbusSt, 1)
	want = "framed with the HJ 212 CRC; station " + modbusSt + " expects CRC-16/MODBUS (hj212_crc)"
	if dls[0]["reason"] != "hj212_bad_crc" || dls[0]["detail"] != want {
		t.Errorf("dead letter %v, want hj212_bad_crc %q", dls[0], want)
	}
	if n := h.in.Count(t, "reading", "ph", fmt.Sprintf("station = '%s' OR station = '%s'", modbusSt, defaultSt)); n != 1 {
		t.Errorf("%d points stored, want the MODBUS station's one", n)
	}
}

// TestHJ212PW: a station with hj212_pw takes only packets carrying it; a
// wrong or missing PW is dead-lettered hj212_bad_pw without saying what
// the PW should be.
func TestHJ212PW(t *testing.T) {
	const st, secret = "yarlung-shigatse", "s3cr#t"
	reg := hjRegistry(t, map[string]string{st: "    hj212_pw: \"" + secret + "\"\n"})
	h := newHJHarness(t, reg)
	mn := reg.Station(st).HJ212MN
	at := time.Date(2026, 7, 1, 4, 0, 0, 0, time.UTC)
	good := hjData(mn, at, "w01001-Rtd=8.1,w01001-Flag=N")
	good.PW = secret
	wrong := hjData(mn, at.Add(time.Minute), "w01001-Rtd=8.2,w01001-Flag=N") // PW 123456
	none := hjData(mn, at.Add(2*time.Minute), "w01001-Rtd=8.3,w01001-Flag=N")
	none.PW = ""
	h.send(t, st, append(append(good.Encode(), wrong.Encode()...), none.Encode()...), at.Add(3*time.Minute))

	if row := h.row(t, st, at); row["ph"] != "8.1" {
		t.Errorf("the packet with the right PW: ph = %q, want 8.1", row["ph"])
	}
	details := map[string]bool{}
	for i, dl := range h.deadLetters(t, st, 2) {
		if dl["reason"] != "hj212_bad_pw" || dl["level"] != "message" {
			t.Errorf("dead letter %d: %v, want hj212_bad_pw", i, dl)
		}
		if strings.Contains(fmt.Sprint(dl["detail"]), secret) {
			t.Errorf("dead letter %d gives the PW away: %v", i, dl["detail"])
		}
		details[fmt.Sprint(dl["detail"])] = true
	}
	for _, want := range []string{"PW is not station " + st + "'s hj212_pw", "no PW; station " + st + " has an hj212_pw"} {
		if !details[want] {
			t.Errorf("no dead letter %q in %v", want, details)
		}
	}
	if n := h.in.Count(t, "reading", "ph", fmt.Sprintf("station = '%s'", st)); n != 1 {
		t.Errorf("%d points stored, want 1", n)
	}
}

// hjPieces cuts p's data area at the given offsets into the pieces of a
// split packet (Flag bit D, PNUM and PNO, p's QN), each framed, as a
// sender that cuts its data area anywhere would.
func hjPieces(p *hj212.Packet, at ...int) [][]byte {
	var out [][]byte
	prev := 0
	for i, end := range append(at, len(p.CP)) {
		q := *p
		q.Flag |= 2
		q.PNUM, q.PNO = fmt.Sprint(len(at)+1), fmt.Sprint(i+1)
		q.CP = p.CP[prev:end]
		prev = end
		out = append(out, q.Encode())
	}
	return out
}

// TestHJ212SplitPackets: pieces of a split packet are stored whether they
// come in one message or several, in any order; a piece that stands on its
// own is stored at once; a packet that cannot be completed is dead-lettered
// hj212_incomplete with the frames of all its pieces held, and nothing else
// is dead-lettered.
func TestHJ212SplitPackets(t *testing.T) {
	reg := hjRegistry(t, nil)
	h := newHJHarness(t, reg)
	base := time.Date(2026, 7, 1, 6, 0, 0, 0, time.UTC)
	const items = "w01010-Rtd=9.8,w01010-Flag=N;w01001-Rtd=8.21,w01001-Flag=N;w01009-Rtd=6.62,w01009-Flag=N;w21003-Rtd=0.11,w21003-Flag=N"
	whole := map[string]string{"water_temp_c": "9.8", "ph": "8.21", "do_mgl": "6.62", "nh3n_mgl": "0.11"}
	mn := func(st string) string { return reg.Station(st).HJ212MN }
	// cutAt is the offset in a data area just after sub.
	cutAt := func(p *hj212.Packet, sub string) int { return strings.Index(p.CP, sub) + len(sub) }
	check := func(t *testing.T, st string, at time.Time, want map[string]string) {
		t.Helper()
		row := h.row(t, st, at)
		for code, v := range want {
			if row[code] != v {
				t.Errorf("%s = %q, want %s", code, row[code], v)
			}
		}
	}
	deadLettered := map[string]int{} // what each station should have in the end

	t.Run("in one message", func(t *testing.T) {
		const st = "nianchu-gyantse"
		p := hjData(mn(st), base, items)
		ps := hjPieces(p, cutAt(p, "w01001-R"), cutAt(p, "w01009-Flag=N;w21"))
		h.send(t, st, bytes.Join(ps, nil), base.Add(time.Minute))
		check(t, st, base, whole)
	})

	t.Run("across messages out of order", func(t *testing.T) {
		const st = "nianchu-bainang"
		p := hjData(mn(st), base, items)
		ps := hjPieces(p, cutAt(p, "Data"), cutAt(p, "w01001-Rtd=8.21,w01001-Flag=N;w01"))
		for _, i := range []int{2, 0, 1} {
			h.send(t, st, ps[i], base.Add(time.Minute))
		}
		check(t, st, base, whole)
	})

	t.Run("first piece cut inside a value", func(t *testing.T) {
		// The first piece parses: stored at once with pH 8.2, then
		// rewritten with 8.21 when the rest comes.
		const st = "nianchu-mouth"
		p := hjData(mn(st), base, items)
		ps := hjPieces(p, cutAt(p, "w01001-Rtd=8.2"))
		h.send(t, st, ps[0], base.Add(time.Minute))
		check(t, st, base, map[string]string{"water_temp_c": "9.8", "ph": "8.2"})
		h.send(t, st, ps[1], base.Add(time.Minute))
		testenv.Eventually(t, 10*time.Second, func() bool { return h.row(t, st, base)["nh3n_mgl"] == "0.11" }, "the rest not stored")
		check(t, st, base, whole)
	})

	t.Run("pieces that stand on their own", func(t *testing.T) {
		// As lua-HJ212 sends them: each piece with the DataTime and whole
		// items, each with its own QN.
		const st = "yarlung-lhatse"
		p1 := hjData(mn(st), base, "w01010-Rtd=9.8,w01010-Flag=N;w01001-Rtd=8.21,w01001-Flag=N")
		p2 := hjData(mn(st), base, "w01009-Rtd=6.62,w01009-Flag=N;w21003-Rtd=0.11,w21003-Flag=N")
		p1.Flag, p1.PNUM, p1.PNO = 7, "2", "1"
		p2.Flag, p2.PNUM, p2.PNO, p2.QN = 7, "2", "2", p1.QN[:16]+"1"
		h.send(t, st, p1.Encode(), base.Add(time.Minute))
		check(t, st, base, map[string]string{"water_temp_c": "9.8", "ph": "8.21"})
		h.send(t, st, p2.Encode(), base.Add(time.Minute))
		testenv.Eventually(t, 10*time.Second, func() bool { return h.row(t, st, base)["nh3n_mgl"] == "0.11" }, "the second piece not stored")
		check(t, st, base, whole)
	})

	t.Run("a piece twice", func(t *testing.T) {
		const st = "xiangqu-namling"
		p := hjData(mn(st), base, items)
		ps := hjPieces(p, cutAt(p, "w01001-R"), cutAt(p, "w01009-Flag=N;w21"))
		h.send(t, st, ps[1], base.Add(time.Minute))
		h.send(t, st, ps[1], base.Add(time.Minute))
		dls := h.deadLetters(t, st, 1)
		if dls[0]["reason"] != "hj212_incomplete" || payloadOf(t, dls[0]) != string(ps[1]) ||
			!strings.Contains(fmt.Sprint(dls[0]["detail"]), "PNO 2 again") {
			t.Errorf("dead letter %v, want hj212_incomplete with the second copy of piece 2", dls[0])
		}
		deadLettered[st] = 1
		h.send(t, st, append(ps[0], ps[2]...), base.Add(time.Minute))
		check(t, st, base, whole)
	})

	t.Run("a piece missing", func(t *testing.T) {
		// The first piece is the DataTime alone: no values, held.
		const st = "duoxiong-phuntsoling"
		p := hjData(mn(st), base, items)
		ps := hjPieces(p, len("DataTime=20260701140000;"), cutAt(p, "w01009-Flag=N;w21"))
		h.send(t, st, ps[2], base.Add(time.Minute))
		h.send(t, st, ps[0], base.Add(2*time.Minute))
		// Any HJ 212 message more than ten minutes after the first piece
		// gives the packet up.
		other := hjData(mn("pumqu-chentang"), base, items)
		h.send(t, "pumqu-chentang", other.Encode(), base.Add(12*time.Minute))
		check(t, "pumqu-chentang", base, whole)
		dls := h.deadLetters(t, st, 1)
		dl := dls[0]
		want := fmt.Sprintf("pieces 1, 3 of 3 (QN %s, MN %s) not joined: not complete 10m0s after its first piece", p.QN, p.MN)
		if dl["reason"] != "hj212_incomplete" || dl["level"] != "message" || dl["detail"] != want {
			t.Errorf("dead letter %v, want hj212_incomplete %q", dl, want)
		}
		if got := payloadOf(t, dl); got != string(ps[0])+string(ps[2]) {
			t.Errorf("dead letter payload %q, want pieces 1 and 3 as sent", got)
		}
		if dl["received_at"] != base.Add(time.Minute).Format(time.RFC3339Nano) || dl["topic"] != "rivermon/v1/stations/"+st+"/hj212" {
			t.Errorf("dead letter %v, want the first piece's topic and arrival", dl)
		}
		deadLettered[st] = 1
	})

	// Every packet given up by now: only the two dead letters above.
	h.send(t, "gyirong-town", hjData(mn("gyirong-town"), base, items).Encode(), base.Add(time.Hour))
	check(t, "gyirong-town", base, whole)
	h.deadLetters(t, "duoxiong-phuntsoling", 1)
	h.pub.mu.Lock()
	defer h.pub.mu.Unlock()
	for topic, dls := range h.pub.sent {
		st := strings.TrimPrefix(topic, "rivermon/v1/deadletter/")
		if len(dls) != deadLettered[st] {
			t.Errorf("%s: %d dead letters, want %d:\n%s", st, len(dls), deadLettered[st], strings.Join(dls, "\n"))
		}
	}
}

// TestHJ212PiecesHeldAtShutdownAreDeadLettered: the pieces of a packet not
// complete when rivermon stops were answered; they are kept as a dead
// letter, not lost.
func TestHJ212PiecesHeldAtShutdownAreDeadLettered(t *testing.T) {
	reg := hjRegistry(t, nil)
	h := newHJHarness(t, reg)
	const st = "duoxiong-phuntsoling"
	base := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	p := hjData(reg.Station(st).HJ212MN, base, "w01010-Rtd=9.8,w01010-Flag=N;w01001-Rtd=8.21,w01001-Flag=N")
	ps := hjPieces(p, len("DataTime=20260701140000;"))
	h.send(t, st, ps[1], base.Add(time.Minute))
	h.stop()
	dls := h.deadLetters(t, st, 1)
	if dls[0]["reason"] != "hj212_incomplete" || payloadOf(t, dls[0]) != string(ps[1]) ||
		!strings.HasSuffix(fmt.Sprint(dls[0]["detail"]), "rivermon stopped before the rest came") {
		t.Errorf("dead letter %v, want hj212_incomplete with the held piece", dls[0])
	}
}
