package simulators

import (
	"bytes"
	"context"
	"errors"
	"math"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/sl651"
)

// decodeFrame reads one frame the RTU sent.
func decodeFrame(t *testing.T, raw []byte) (*sl651.Frame, *sl651.Report) {
	t.Helper()
	f, err := sl651.Decode(raw)
	if err != nil {
		t.Fatalf("frame % X: %v", raw, err)
	}
	rep, err := sl651.ParseBody(f)
	if err != nil {
		t.Fatalf("body of %02XH: %v", f.Function, err)
	}
	return f, rep
}

// TestRTUReportsTheSample plays two hours of a rain station's readings,
// the stage rising past the warning level once, through the RTU in both
// encodings: every frame decodes with internal/sl651, from the station's
// address with its password to centre 1; the serial numbers count up one
// per frame; each reading has a timed report (32H) with its stage, flow,
// water temperature (to the element's 0.1 °C), rain, counter and the
// battery voltage; each hour an hourly report (34H) with the hour's twelve
// 5-minute rain amounts, the counter and the battery; the crossing an
// added report (33H). The values SL 651 does not carry stay behind.
func TestRTUReportsTheSample(t *testing.T) {
	st := loadRegistry(t).Station("gyirong-zongga")
	warning := st.Limits["level_warning_m"]
	start := time.Date(2026, 7, 10, 9, 5, 0, 0, reading.Zone).UTC() // as decoded
	for _, enc := range []sl651.Encoding{sl651.HEX, sl651.ASCII} {
		t.Run(enc.String(), func(t *testing.T) {
			r := newRTU(st, enc)
			var sent [][]byte
			r.publish = func(_ context.Context, f []byte) error { sent = append(sent, f); return nil }
			battery := 12.87
			r.battery = &battery
			var samples []reading.Sample
			counter := 1234.5
			for i := range 24 {
				at := start.Add(time.Duration(i) * 5 * time.Minute)
				rain := float64(i%4) / 10
				counter = math.Round((counter+rain)*10) / 10
				samples = append(samples, reading.Sample{Time: at, Values: []reading.Value{
					{Code: "level_m", Value: round(warning-0.5+0.03*float64(i), 3)}, {Code: "flow_m3s", Value: 12.345 + float64(i)},
					{Code: "velocity_ms", Value: 0.8}, {Code: "water_temp_c", Value: 6.47}, {Code: "rain_mm", Value: rain},
					{Code: "rain_total_mm", Value: counter}}})
			}
			perSample := map[time.Time][]uint8{}
			for _, s := range samples {
				rest, carried := r.take(s)
				if len(rest.Values) != 1 || rest.Values[0].Code != "velocity_ms" || len(carried) != 5 {
					t.Fatalf("take left %v, took %v", rest.Values, carried)
				}
				frames, err := r.reports(s.Time, carried)
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range frames {
					if err := r.send(context.Background(), f); err != nil {
						t.Fatal(err)
					}
					fr, _ := decodeFrame(t, f)
					perSample[s.Time] = append(perSample[s.Time], fr.Function)
				}
			}
			byTime := map[time.Time]reading.Sample{}
			for _, s := range samples {
				byTime[s.Time] = s
			}
			want := func(s reading.Sample, code string) float64 { v, _ := value(s, code); return v }
			var hourly, added int
			for i, raw := range sent {
				f, rep := decodeFrame(t, raw)
				if f.Encoding != enc || !f.Up || f.Centre != 1 || f.Station != st.SL651Address || f.Password != st.SL651Password || f.End != sl651.ETX {
					t.Fatalf("frame %d: %v up %v centre %d station %s password %s end %02X", i, f.Encoding, f.Up, f.Centre, f.Station, f.Password, f.End)
				}
				if rep.Serial != uint16(i+1) {
					t.Errorf("frame %d: serial %d, want %d", i, rep.Serial, i+1)
				}
				if len(rep.Stations) != 1 || rep.Stations[0].Address != st.SL651Address || rep.Stations[0].Class != 'H' {
					t.Fatalf("frame %d: stations %+v", i, rep.Stations)
				}
				got := map[string]float64{}
				var drp []sl651.Value
				for _, v := range rep.Stations[0].Values {
					if v.Element == "DRP" {
						drp = append(drp, v)
						continue
					}
					if !v.Time.Equal(rep.Sent) {
						t.Errorf("frame %d: %s observed %s, sent %s", i, v.Element, v.Time, rep.Sent)
					}
					got[v.Element] = v.Value
				}
				s := byTime[rep.Sent]
				switch f.Function {
				case 0x32:
					exp := map[string]float64{"Z": want(s, "level_m"), "Q": want(s, "flow_m3s"), "C": 6.5,
						"PJ": want(s, "rain_mm"), "PT": want(s, "rain_total_mm"), "VT": battery}
					if !mapsEqual(got, exp) {
						t.Errorf("32H at %s: %v, want %v", rep.Sent.In(reading.Zone).Format("15:04"), got, exp)
					}
				case 0x33:
					added++
					if lv := want(s, "level_m"); lv <= warning || want(byTime[rep.Sent.Add(-5*time.Minute)], "level_m") > warning {
						t.Errorf("33H at %s, stage %.3f: not where it crosses %.2f m", rep.Sent.Format(time.RFC3339), lv, warning)
					}
					if exp := map[string]float64{"Z": want(s, "level_m"), "Q": want(s, "flow_m3s"), "VT": battery}; !mapsEqual(got, exp) {
						t.Errorf("33H: %v, want %v", got, exp)
					}
				case 0x34:
					hourly++
					if rep.Sent.In(reading.Zone).Minute() != 0 {
						t.Errorf("34H at %s", rep.Sent.Format(time.RFC3339))
					}
					if exp := map[string]float64{"PT": want(s, "rain_total_mm"), "VT": battery}; !mapsEqual(got, exp) {
						t.Errorf("34H: %v, want %v", got, exp)
					}
					if len(drp) != 12 {
						t.Fatalf("34H: %d DRP slots", len(drp))
					}
					for k, v := range drp {
						at := rep.Sent.Add(time.Duration(k-11) * 5 * time.Minute)
						if !v.Time.Equal(at) || v.Missing || v.Value != want(byTime[at], "rain_mm") {
							t.Errorf("34H slot %d: %+v, want %.1f mm at %s", k, v, want(byTime[at], "rain_mm"), at.Format(time.RFC3339))
						}
					}
				default:
					t.Errorf("frame %d: function %02X", i, f.Function)
				}
			}
			if hourly != 2 || added != 1 {
				t.Errorf("%d hourly and %d added reports, want 2 and 1", hourly, added)
			}
			if fns := perSample[start.Add(55*time.Minute)]; !bytes.Equal(fns, []byte{0x32, 0x34}) {
				t.Errorf("at 10:00 functions % X, want the timed report, then the hourly one", fns)
			}
		})
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestRTUSerialWraps: serial numbers run 1–65535 and start over at 1.
func TestRTUSerialWraps(t *testing.T) {
	r := newRTU(loadRegistry(t).Station("yarlung-dazhuka"), sl651.HEX)
	r.serial = 65534
	at := time.Date(2026, 7, 10, 9, 5, 0, 0, reading.Zone)
	var got []uint16
	for i := range 3 {
		frames, err := r.reports(at.Add(time.Duration(i)*5*time.Minute), []reading.Value{{Code: "level_m", Value: 1.2}})
		if err != nil || len(frames) != 1 {
			t.Fatalf("%d frames, %v", len(frames), err)
		}
		_, rep := decodeFrame(t, frames[0])
		got = append(got, rep.Serial)
	}
	if got[0] != 65535 || got[1] != 1 || got[2] != 2 {
		t.Errorf("serials %v, want 65535 1 2", got)
	}
}

// centre is a fake SL 651 centre on the far end of net.Pipe connections:
// it records every frame it receives and answers as answer says.
type centre struct {
	mu     sync.Mutex
	frames [][]byte
	dials  int
	// answer returns what to send back for the n-th frame (0-based)
	// received: frames to write, and whether to hang up instead.
	answer func(n int, f *sl651.Frame) (reply [][]byte, hangUp bool)
}

func (c *centre) dial(context.Context) (net.Conn, error) {
	near, far := net.Pipe()
	c.mu.Lock()
	c.dials++
	c.mu.Unlock()
	go c.serve(far)
	return near, nil
}

func (c *centre) serve(conn net.Conn) {
	defer conn.Close()
	var buf []byte
	chunk := make([]byte, 4096)
	for {
		n, err := conn.Read(chunk)
		if err != nil {
			return
		}
		buf = append(buf, chunk[:n]...)
		found, rest := sl651.Split(buf)
		buf = append(buf[:0], rest...)
		for _, f := range found {
			if f.Frame == nil {
				continue
			}
			c.mu.Lock()
			k := len(c.frames)
			c.frames = append(c.frames, f.Raw)
			c.mu.Unlock()
			reply, hangUp := c.answer(k, f.Frame)
			if hangUp {
				return
			}
			for _, r := range reply {
				if _, err := conn.Write(r); err != nil {
					return
				}
			}
		}
	}
}

func (c *centre) received() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.frames...)
}

func confirm(f *sl651.Frame) []byte { return sl651.Confirm(f, time.Now(), false).Encode() }

// TestRTUWaitsForTheConfirmation runs the RTU's TCP link (M2) against a
// fake centre: a frame is done once the centre confirms it (same function
// code and serial number: other answers are read past); unconfirmed, it is
// sent again after 10 s, the same bytes, three times in all, then given up
// and the connection closed; a centre that hangs up is dialled again and
// gets the frame again; a link idle for 40 s gets a keep-alive (2FH)
// carrying the last serial number, unconfirmed.
func TestRTUWaitsForTheConfirmation(t *testing.T) {
	st := loadRegistry(t).Station("gyirong-zongga")
	at := time.Date(2026, 7, 10, 9, 5, 0, 0, reading.Zone)
	report := func(r *rtu) []byte {
		t.Helper()
		frames, err := r.reports(at, []reading.Value{{Code: "level_m", Value: 1.234}, {Code: "rain_total_mm", Value: 100.5}})
		if err != nil || len(frames) != 1 {
			t.Fatalf("%d frames, %v", len(frames), err)
		}
		return frames[0]
	}
	for _, c := range []struct {
		name       string
		answer     func(n int, f *sl651.Frame) ([][]byte, bool)
		wantErr    bool
		wantCopies int
		wantDials  int
		wantWait   time.Duration // how long the send takes (fake time)
	}{
		{name: "confirmed",
			answer:     func(_ int, f *sl651.Frame) ([][]byte, bool) { return [][]byte{confirm(f)}, false },
			wantCopies: 1, wantDials: 1},
		{name: "other answers are read past",
			answer: func(n int, f *sl651.Frame) ([][]byte, bool) {
				if n > 0 {
					return [][]byte{confirm(f)}, false
				}
				other := *f
				other.Body = append([]byte(nil), f.Body...)
				other.Body[1]++ // the next serial number (HEX)
				wrongFn := *f
				wrongFn.Function = 0x33
				return [][]byte{confirm(&other), confirm(&wrongFn), []byte("noise")}, false
			},
			wantCopies: 2, wantDials: 1, wantWait: sl651Wait},
		{name: "confirmed at the third try",
			answer: func(n int, f *sl651.Frame) ([][]byte, bool) {
				if n < 2 {
					return nil, false
				}
				return [][]byte{confirm(f)}, false
			},
			wantCopies: 3, wantDials: 1, wantWait: 2 * sl651Wait},
		{name: "never confirmed",
			answer:     func(int, *sl651.Frame) ([][]byte, bool) { return nil, false },
			wantErr:    true,
			wantCopies: 3, wantDials: 1, wantWait: 3 * sl651Wait},
		{name: "hung up",
			answer: func(n int, f *sl651.Frame) ([][]byte, bool) {
				if n == 0 {
					return nil, true
				}
				return [][]byte{confirm(f)}, false
			},
			wantCopies: 2, wantDials: 2, wantWait: time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cen := &centre{answer: c.answer}
				r := newRTU(st, sl651.HEX)
				r.dial = cen.dial
				defer r.close()
				frame := report(r)
				began := time.Now()
				err := r.send(context.Background(), frame)
				took := time.Since(began)
				synctest.Wait()
				if (err != nil) != c.wantErr {
					t.Fatalf("send: %v, want an error %v", err, c.wantErr)
				}
				got := cen.received()
				if len(got) != c.wantCopies || cen.dials != c.wantDials {
					t.Fatalf("%d frames on %d connections, want %d on %d", len(got), cen.dials, c.wantCopies, c.wantDials)
				}
				for i, g := range got {
					if !bytes.Equal(g, frame) {
						t.Errorf("copy %d differs from the frame (a resend keeps its serial number)", i)
					}
				}
				if took != c.wantWait {
					t.Errorf("the send took %s, want %s", took, c.wantWait)
				}
				if c.wantErr && r.conn != nil {
					t.Error("the connection is still open after the frame was given up")
				}
			})
		})
	}

	t.Run("keep-alive", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cen := &centre{answer: func(_ int, f *sl651.Frame) ([][]byte, bool) {
				if f.Function == 0x2F {
					return nil, false
				}
				return [][]byte{confirm(f)}, false
			}}
			r := newRTU(st, sl651.HEX)
			r.dial = cen.dial
			defer r.close()
			if err := r.send(context.Background(), report(r)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(sl651KeepAlive - time.Second)
			if sent, err := r.keepAlive(time.Now()); sent || err != nil {
				t.Fatalf("a keep-alive after %s idle: %v %v", sl651KeepAlive-time.Second, sent, err)
			}
			time.Sleep(time.Second)
			if sent, err := r.keepAlive(time.Now()); !sent || err != nil {
				t.Fatalf("no keep-alive after %s idle: %v", sl651KeepAlive, err)
			}
			synctest.Wait()
			got := cen.received()
			if len(got) != 2 {
				t.Fatalf("%d frames, want the report and a keep-alive", len(got))
			}
			f, rep := decodeFrame(t, got[1])
			if f.Function != 0x2F || rep.Serial != 1 || len(rep.Stations) != 0 || f.Station != st.SL651Address {
				t.Errorf("keep-alive %02XH serial %d with %d stations from %s", f.Function, rep.Serial, len(rep.Stations), f.Station)
			}
			if sent, _ := r.keepAlive(time.Now()); sent {
				t.Error("a second keep-alive right after the first")
			}
			// The next report carries the next serial number.
			next := report(r)
			if err := r.send(context.Background(), next); err != nil {
				t.Fatal(err)
			}
			if _, rep := decodeFrame(t, next); rep.Serial != 2 {
				t.Errorf("the report after the keep-alive has serial %d, want 2", rep.Serial)
			}
		})
	})

	t.Run("stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			cen := &centre{answer: func(int, *sl651.Frame) ([][]byte, bool) { return nil, false }}
			r := newRTU(st, sl651.HEX)
			r.dial = cen.dial
			defer r.close()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			began := time.Now()
			if err := r.send(ctx, report(r)); !errors.Is(err, context.Canceled) {
				t.Errorf("send: %v, want the context's error", err)
			}
			if took := time.Since(began); took != time.Second {
				t.Errorf("the stop took %s, want at once", took-time.Second)
			}
		})
	})
}
