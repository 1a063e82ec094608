package app_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/sl651"
	"github.com/rivermon/rivermon/internal/testenv"
)

// rtuTestReport is a 30H test report as an RTU sends it, built by hand from
// SL 651-2014 Tables 20, 24 and C.1 (and reference/sl651.md): station
// address, password, serial 0001, the send and observation times, then
// PJ 12.5 mm (20 19: 3 BCD bytes, 1 decimal), PT 1234.5 mm (26 19), Z
// 2.153 m (39 23: 4 bytes, 3 decimals), a vendor element FF03 (2 bytes, 1
// decimal: skipped) and VT 12.60 V (38 12).
func rtuTestReport(t *testing.T, addr, password string, obs time.Time) []byte {
	t.Helper()
	local := obs.In(cst)
	body := "0001" + local.Add(30*time.Second).Format("060102150405") +
		"F1F1" + addr + "48" +
		"F0F0" + local.Format("0601021504") +
		"2019" + "000125" +
		"2619" + "012345" +
		"3923" + "00002153" +
		"FF0311" + "0123" +
		"3812" + "1260"
	b, err := hex.DecodeString(body)
	if err != nil {
		t.Fatal(err)
	}
	head, err := hex.DecodeString("7E7E" + "01" + addr + password + "30" + fmt.Sprintf("%04X", len(b)) + "02")
	if err != nil {
		t.Fatal(err)
	}
	frame := append(append(head, b...), sl651.ETX)
	crc := sl651.CRC(frame)
	return append(frame, byte(crc>>8), byte(crc))
}

// rtuReport builds a report of function fn with the given values at obs.
func rtuReport(t *testing.T, enc sl651.Encoding, fn uint8, addr, password string, serial uint16, obs time.Time, values map[string]float64) *sl651.Frame {
	t.Helper()
	st := sl651.StationReport{Address: addr, Class: 'H'}
	for _, el := range []string{"Z", "Q", "C", "PJ", "PT", "VT"} {
		if v, ok := values[el]; ok {
			code := map[string]string{"Z": "level_m", "Q": "flow_m3s", "C": "water_temp_c", "PJ": "rain_mm", "PT": "rain_total_mm", "VT": "battery_v"}[el]
			st.Values = append(st.Values, sl651.Value{Time: obs, Element: el, Code: code, Value: v})
		}
	}
	body, err := sl651.BuildBody(enc, fn, &sl651.Report{Serial: serial, Sent: obs.Add(time.Minute), Stations: []sl651.StationReport{st}})
	if err != nil {
		t.Fatal(err)
	}
	return &sl651.Frame{Encoding: enc, Up: true, Centre: 1, Station: addr, Password: password, Function: fn, Body: body, End: sl651.ETX}
}

// confirmations reads the downlink frames a connection receives.
func confirmations(c net.Conn) (<-chan *sl651.Frame, func() int) {
	out := make(chan *sl651.Frame, 100)
	var mu sync.Mutex
	n := 0
	go func() {
		defer close(out)
		var buf []byte
		chunk := make([]byte, 512)
		for {
			k, err := c.Read(chunk)
			buf = append(buf, chunk[:k]...)
			found, rest := sl651.Split(buf)
			for _, f := range found {
				if f.Frame != nil {
					mu.Lock()
					n++
					mu.Unlock()
					out <- f.Frame
				}
			}
			buf = append([]byte(nil), rest...)
			if err != nil {
				return
			}
		}
	}()
	return out, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestSL651OverTCP: an RTU's frames over TCP are stored exactly and
// confirmed once durable; damaged frames, unknown addresses and wrong
// passwords are dead-lettered without an answer and the connection stays
// usable; M3 transfers are joined and confirmed once; a flood of junk is
// one dead letter; idle connections do not keep a real RTU out.
func TestSL651OverTCP(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-sl651", tcp: true})
	watch := testenv.NewClient(t, mq.URL, "sl651-watch")
	watch.Subscribe(prefix + "/deadletter/#")
	reg := loadRegistry(t)
	const st = "gyirong-zongga"
	addr, pw := reg.Station(st).SL651Address, reg.Station(st).SL651Password
	base := time.Now().UTC().Truncate(5 * time.Minute).Add(-3 * time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * 5 * time.Minute) }
	deadLetters := func(reason string) int {
		n := 0
		for _, m := range watch.Received(prefix + "/deadletter/#") {
			var dl map[string]any
			if json.Unmarshal(m.Payload, &dl) == nil && dl["reason"] == reason {
				n++
			}
		}
		return n
	}

	// Each step on a connection of its own, as an RTU opens one per
	// report: the listener closes one idle for 2 s here.
	dial := func() (net.Conn, <-chan *sl651.Frame, func() int) {
		c, err := net.Dial("tcp", svc.sl651)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		confirms, count := confirmations(c)
		return c, confirms, count
	}
	c, confirms, count := dial()

	// The RTU's test report, in two writes.
	report := rtuTestReport(t, addr, pw, at(0))
	c.Write(report[:20])
	time.Sleep(50 * time.Millisecond)
	c.Write(report[20:])
	testenv.Eventually(t, 10*time.Second, func() bool { return count() == 1 }, "no confirmation of the test report")
	conf := <-confirms
	if conf.Up || conf.Function != 0x30 || conf.Station != addr || conf.Password != pw || conf.End != sl651.EOT ||
		len(conf.Body) != 8 || conf.Body[0] != 0 || conf.Body[1] != 1 {
		t.Errorf("confirmation %+v, want a downlink 30H to %s echoing serial 0001, ending EOT", conf, addr)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return field(t, in, "reading", "level_m", st, at(0)) != "" }, "the test report is not stored")
	for code, want := range map[string]string{"level_m": "2.153", "rain_mm": "12.5", "rain_total_mm": "1234.5"} {
		if got := field(t, in, "reading", code, st, at(0)); got != want {
			t.Errorf("%s = %s, want %s", code, got, want)
		}
	}
	if got := field(t, in, "station_status", "battery_v", st, at(0)); got != "12.6" {
		t.Errorf("station_status battery_v = %s, want 12.6", got)
	}
	if got := svc.metric(`rivermon_sl651_skipped_total{element="FF03",why="unmapped"}`); got != 1 {
		t.Errorf("vendor element FF03 skipped %v times, want 1", got)
	}

	// Two timed reports coalesced with a damaged one between them, then a
	// frame of an unknown address and one with a wrong password: two
	// confirmations, three dead letters, and the connection still answers.
	good1 := rtuReport(t, sl651.HEX, 0x32, addr, pw, 2, at(1), map[string]float64{"Z": 2.2, "PJ": 0, "PT": 1234.5}).Encode()
	bad := rtuReport(t, sl651.HEX, 0x32, addr, pw, 3, at(2), map[string]float64{"Z": 2.3}).Encode()
	bad[len(bad)-1] ^= 0xFF
	good2 := rtuReport(t, sl651.HEX, 0x32, addr, pw, 4, at(3), map[string]float64{"Z": 2.4}).Encode()
	stranger := rtuReport(t, sl651.HEX, 0x32, "0012345678", pw, 5, at(3), map[string]float64{"Z": 9}).Encode()
	wrongPW := rtuReport(t, sl651.HEX, 0x32, addr, "FFFF", 6, at(4), map[string]float64{"Z": 9}).Encode()
	c, confirms, count = dial()
	c.Write(bytes.Join([][]byte{good1, bad, good2, stranger, wrongPW}, nil))
	m3 := rtuReport(t, sl651.HEX, 0x32, addr, pw, 7, at(5), map[string]float64{"Z": 2.5, "Q": 12.25, "C": 4.5})
	half := len(m3.Body) / 2
	p1, p2 := *m3, *m3
	p1.Body, p1.Total, p1.Seq, p1.End = m3.Body[:half], 2, 1, sl651.ETB
	p2.Body, p2.Total, p2.Seq = m3.Body[half:], 2, 2
	c.Write(p2.Encode()) // out of order
	c.Write(p1.Encode())
	testenv.Eventually(t, 10*time.Second, func() bool { return count() == 3 }, "confirmations: %d of 3", count())
	testenv.Eventually(t, 10*time.Second, func() bool {
		return deadLetters("sl651_bad_crc") == 1 && deadLetters("sl651_unknown_address") == 1 && deadLetters("sl651_bad_password") == 1
	}, "dead letters: bad_crc %d, unknown_address %d, bad_password %d", deadLetters("sl651_bad_crc"), deadLetters("sl651_unknown_address"), deadLetters("sl651_bad_password"))
	for i, want := range []uint16{2, 4, 7} {
		f := <-confirms
		if serial := uint16(f.Body[0])<<8 | uint16(f.Body[1]); serial != want || f.Function != 0x32 {
			t.Errorf("confirmation %d: function %02X serial %d, want 32H serial %d", i, f.Function, serial, want)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return field(t, in, "reading", "flow_m3s", st, at(5)) == "12.25" }, "the M3 transfer is not stored")
	for i, want := range map[int]string{1: "2.2", 3: "2.4", 5: "2.5"} {
		if got := field(t, in, "reading", "level_m", st, at(i)); got != want {
			t.Errorf("level_m at %d = %s, want %s", i, got, want)
		}
	}
	for _, i := range []int{2, 4} {
		if got := field(t, in, "reading", "level_m", st, at(i)); got != "" {
			t.Errorf("a rejected frame was stored: level_m at %d = %s", i, got)
		}
	}

	// InfluxDB down: the confirmation still comes once the frame is in the
	// spool, and the values are stored when it is back.
	in.Stop()
	c, _, count = dial()
	c.Write(rtuReport(t, sl651.HEX, 0x33, addr, pw, 8, at(6), map[string]float64{"Z": 2.6}).Encode())
	testenv.Eventually(t, 10*time.Second, func() bool { return count() == 1 }, "no confirmation while InfluxDB is down")
	in.Start()
	testenv.Eventually(t, 30*time.Second, func() bool { return field(t, in, "reading", "level_m", st, at(6)) == "2.6" },
		"the frame confirmed during the outage was not stored afterwards")

	// 10 MB without a frame end: the connection is closed after 64 KiB and
	// the run is one dead letter.
	flood, err := net.Dial("tcp", svc.sl651)
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	go func() { _, _ = flood.Write(bytes.Repeat([]byte{0x7E, 0x7E, 0x01}, 10<<20/3)) }()
	_ = flood.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, flood); err != nil && strings.Contains(err.Error(), "timeout") {
		t.Fatal("a connection sending 10 MB without a frame end was kept open")
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return deadLetters("sl651_bad_frame") >= 1 }, "the junk was not dead-lettered")
	time.Sleep(200 * time.Millisecond)
	if n := deadLetters("sl651_bad_frame"); n != 1 {
		t.Errorf("%d dead letters for one run of junk, want 1", n)
	}

	// 1,000 idle connections from one address: a real RTU from another
	// address is answered at once, and the idle ones are closed once the
	// first-frame timeout has passed.
	idle := make([]net.Conn, 0, 1000)
	defer func() {
		for _, ic := range idle {
			ic.Close()
		}
	}()
	for range 1000 {
		ic, err := net.Dial("tcp", svc.sl651)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, ic)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	rtu, err := d.Dial("tcp", svc.sl651)
	if err != nil {
		t.Fatal(err)
	}
	defer rtu.Close()
	rtuConfirms, rtuCount := confirmations(rtu)
	rtu.Write(rtuReport(t, sl651.HEX, 0x32, addr, pw, 9, at(7), map[string]float64{"Z": 2.7}).Encode())
	testenv.Eventually(t, 10*time.Second, func() bool { return rtuCount() == 1 }, "an RTU got no answer beside 1,000 idle connections")
	<-rtuConfirms
	testenv.Eventually(t, 20*time.Second, func() bool {
		return svc.metric(`rivermon_sl651_connections_total{result="unframed"}`)+svc.metric(`rivermon_sl651_connections_total{result="refused_address"}`) >= 1000
	}, "the idle connections were neither refused nor closed")
}

// TestSL651OverMQTT: ASCII frames on a station's sl651 topic, several in
// one message, are stored; a frame of another station's address is
// dead-lettered.
func TestSL651OverMQTT(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	startService(t, mq, in, "rivermon-sl651-mqtt")
	watch := testenv.NewClient(t, mq.URL, "sl651-mqtt-watch")
	watch.Subscribe(prefix + "/deadletter/#")
	reg := loadRegistry(t)
	const st = "boqu-nyalam"
	addr, pw := reg.Station(st).SL651Address, reg.Station(st).SL651Password
	other := reg.Station("yadong-yadong").SL651Address
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	timed := rtuReport(t, sl651.ASCII, 0x32, addr, pw, 1, base, map[string]float64{"Z": 1.234, "Q": 20.5, "C": 3.5, "PT": 210.5, "VT": 12.1}).Encode()
	// An hourly report: twelve 5-minute rain amounts and levels from
	// base+5m, one slot of each missing.
	hourly := sl651.StationReport{Address: addr, Class: 'H'}
	var levels []sl651.Value
	for i := range 12 {
		v := sl651.Value{Time: base.Add(time.Duration(i+1) * 5 * time.Minute), Element: "DRP", Code: "rain_mm", Value: float64(i) / 10, Period: 5 * time.Minute}
		z := sl651.Value{Time: v.Time, Element: "DRZ1", Code: "level_m", Value: float64(120+i) / 100, Relative: true}
		if i == 6 {
			v.Missing, z.Missing = true, true
		}
		hourly.Values, levels = append(hourly.Values, v), append(levels, z)
	}
	hourly.Values = append(hourly.Values, levels...)
	body, err := sl651.BuildBody(sl651.ASCII, 0x34, &sl651.Report{Serial: 2, Sent: base.Add(time.Hour), Stations: []sl651.StationReport{hourly}})
	if err != nil {
		t.Fatal(err)
	}
	hourlyFrame := (&sl651.Frame{Encoding: sl651.ASCII, Up: true, Centre: 1, Station: addr, Password: pw, Function: 0x34, Body: body, End: sl651.ETX}).Encode()
	foreign := rtuReport(t, sl651.ASCII, 0x32, other, pw, 3, base, map[string]float64{"Z": 9}).Encode()
	pub := testenv.NewClient(t, mq.URL, "rtu-gateway")
	pub.Publish(prefix+"/stations/"+st+"/sl651", bytes.Join([][]byte{timed, hourlyFrame, foreign}, nil))

	testenv.Eventually(t, 10*time.Second, func() bool { return in.Count(t, "reading", "level_m", fmt.Sprintf("station = '%s'", st)) == 12 },
		"level_m points: %d of 12", in.Count(t, "reading", "level_m", fmt.Sprintf("station = '%s'", st)))
	for code, want := range map[string]string{"level_m": "1.234", "flow_m3s": "20.5", "water_temp_c": "3.5", "rain_total_mm": "210.5"} {
		if got := field(t, in, "reading", code, st, base); got != want {
			t.Errorf("%s = %s, want %s", code, got, want)
		}
	}
	if got := field(t, in, "station_status", "battery_v", st, base); got != "12.1" {
		t.Errorf("battery_v = %s, want 12.1", got)
	}
	for i := range 12 {
		slot := base.Add(time.Duration(i+1) * 5 * time.Minute)
		rain, level := field(t, in, "reading", "rain_mm", st, slot), field(t, in, "reading", "level_m", st, slot)
		if i == 6 {
			if rain != "" || level != "" {
				t.Errorf("a missing slot was stored: rain %q level %q", rain, level)
			}
			continue
		}
		if want := fmt.Sprint(float64(i) / 10); rain != want {
			t.Errorf("slot %d rain_mm = %s, want %s", i, rain, want)
		}
		if want := fmt.Sprint(float64(120+i) / 100); level != want {
			t.Errorf("slot %d level_m = %s, want %s", i, level, want)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		for _, m := range watch.Received(prefix + "/deadletter/#") {
			var dl map[string]any
			if json.Unmarshal(m.Payload, &dl) == nil && dl["reason"] == "sl651_address_mismatch" && m.Topic == prefix+"/deadletter/"+st {
				return true
			}
		}
		return false
	}, "a frame of another station's address was not dead-lettered")
}
