package simulators

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
	"github.com/rivermon/rivermon/internal/sl651"
)

// SL 651-2014 link timing (reference/sl651.md, domain.md §4.4).
const (
	// sl651Wait is how long an RTU waits for the centre's confirmation of
	// a frame (M2), and sl651Tries how often it sends it: once and twice
	// again, then it gives up until the next link.
	sl651Wait  = 10 * time.Second
	sl651Tries = 3
	// sl651KeepAlive is the idle time after which an RTU that stays online
	// sends a link keep-alive (2FH), the standard's recommended 40 s.
	sl651KeepAlive = 40 * time.Second
	// sl651Centre is the centre address the RTUs report to.
	sl651Centre = 1
)

// sl651Codes are the values an RTU sends, with their elements (Table C.1);
// battery_v comes from the station's status, as VT.
var sl651Codes = map[string]string{
	"level_m":       "Z",
	"flow_m3s":      "Q",
	"water_temp_c":  "C",
	"rain_mm":       "PJ",
	"rain_total_mm": "PT",
}

// rtu sends a station's level, flow, water temperature, rain and battery
// voltage as SL 651-2014 frames, the way a hydrological RTU does: a timed
// report (32H) at each reading, an hourly report (34H) on the hour with the
// hour's twelve 5-minute rain amounts (DRP) at a rain gauge, and an added
// report (33H) when the stage rises past the warning level. Over TCP it
// keeps one connection, waits for the centre's confirmation of each frame
// (M2) and sends a keep-alive (2FH) when the link has been idle; over MQTT
// it publishes the frames to the station's sl651 topic.
//
// The hourly report leaves the 5-minute stage array (DRZ1) out. The timed
// reports already carry every reading's stage to the millimetre (Z);
// DRZ1 carries it to the centimetre, and a sample that repeats the stage
// alone makes the centre rate the flow for that time: at a station with a
// flow meter, the rated flow would take the measured flow's place in the
// day's ecological-flow account.
type rtu struct {
	station  string // station id, for messages
	address  string // sl651_address
	password string
	enc      sl651.Encoding
	warning  float64 // level_warning_m, when hasWarn
	hasWarn  bool
	hourly   bool // sends 34H: a rain gauge read every 5 minutes

	// Over MQTT, publish delivers a frame; over TCP (publish nil), the RTU
	// dials the centre with dial.
	publish func(ctx context.Context, frame []byte) error
	dial    func(ctx context.Context) (net.Conn, error)
	now     func() time.Time // wall clock, for the keep-alive
	wait    time.Duration    // for a confirmation (sl651Wait)
	sent    func(frame []byte)

	conn    net.Conn
	buf     []byte            // bytes read from the centre and not yet framed
	last    time.Time         // wall clock of the last frame sent or received
	serial  uint16            // of the last report
	battery *float64          // the latest battery voltage
	level   *float64          // the latest stage, for the added report
	counter *float64          // the latest rain counter
	rain    map[int64]float64 // the 5-minute rain of the past hour, by Unix time (ns)
}

// newRTU is the RTU of st (which has an sl651_address).
func newRTU(st *registry.Station, enc sl651.Encoding) *rtu {
	r := &rtu{station: st.ID, address: st.SL651Address, password: st.SL651Password, enc: enc,
		hourly: st.Reports("rain_mm") && time.Duration(st.Interval) == 5*time.Minute,
		now:    time.Now, wait: sl651Wait, rain: map[int64]float64{}}
	if r.password == "" {
		r.password = "0000" // a frame always carries one; the centre checks it only when it has one
	}
	r.warning, r.hasWarn = st.Limits["level_warning_m"]
	return r
}

// take splits off a sample the values the RTU sends; the rest stays for
// the other protocols.
func (r *rtu) take(s reading.Sample) (rest reading.Sample, carried []reading.Value) {
	rest = reading.Sample{Time: s.Time}
	for _, v := range s.Values {
		if _, ok := sl651Codes[v.Code]; ok {
			carried = append(carried, v)
		} else {
			rest.Values = append(rest.Values, v)
		}
	}
	return rest, carried
}

// reports renders the frames due at t for the values carried: the timed
// report, the added report when the stage has just risen past the warning
// level, the hourly report on the hour. Each takes the next serial number.
func (r *rtu) reports(t time.Time, carried []reading.Value) ([][]byte, error) {
	if len(carried) == 0 && r.battery == nil {
		return nil, nil
	}
	var timed, added []sl651.Value
	var level *float64
	r.counter = nil
	for _, v := range carried {
		timed = append(timed, sl651.Value{Time: t, Element: sl651Codes[v.Code], Value: v.Value})
		switch v.Code {
		case "level_m":
			level = &v.Value
			added = append(added, sl651.Value{Time: t, Element: "Z", Value: v.Value})
		case "flow_m3s":
			added = append(added, sl651.Value{Time: t, Element: "Q", Value: v.Value})
		case "rain_mm":
			if r.hourly {
				r.rain[t.UnixNano()] = v.Value
			}
		case "rain_total_mm":
			r.counter = &v.Value
		}
	}
	if r.battery != nil {
		// VT last, as RTUs send it.
		vt := sl651.Value{Time: t, Element: "VT", Value: *r.battery}
		timed, added = append(timed, vt), append(added, vt)
	}
	var frames [][]byte
	add := func(fn uint8, vals []sl651.Value) error {
		f, err := r.frame(fn, t, []sl651.StationReport{{Address: r.address, Class: 'H', Values: vals}})
		if err == nil {
			frames = append(frames, f)
		}
		return err
	}
	if err := add(0x32, timed); err != nil {
		return nil, err
	}
	// Threshold-triggered: the stage crosses the warning level upwards.
	if r.hasWarn && level != nil && r.level != nil && *r.level <= r.warning && *level > r.warning {
		if err := add(0x33, added); err != nil {
			return nil, err
		}
	}
	if level != nil {
		r.level = level
	}
	if r.hourly && t.Truncate(time.Hour).Equal(t) {
		if err := add(0x34, r.hour(t)); err != nil {
			return nil, err
		}
	}
	return frames, nil
}

// hour is the body of the hourly report at t: the 5-minute rain of the
// hour ending at t, under the observation time of its first slot, which
// ends at t − 55 min (reference/sl651.md; the public sample sent at 11:00
// starts at 10:05); a slot without a reading, or over the 25.4 mm a slot
// holds, goes as missing (the timed reports carried it); then the counter
// and the battery at t.
func (r *rtu) hour(t time.Time) []sl651.Value {
	first := t.Add(-55 * time.Minute)
	var vals []sl651.Value
	for k := range 12 {
		at := first.Add(time.Duration(k) * 5 * time.Minute)
		v, ok := r.rain[at.UnixNano()]
		vals = append(vals, sl651.Value{Time: at, Element: "DRP", Value: v, Missing: !ok || v > 25.4})
	}
	for at := range r.rain {
		if at <= first.UnixNano() {
			delete(r.rain, at)
		}
	}
	if r.counter != nil {
		vals = append(vals, sl651.Value{Time: t, Element: "PT", Value: *r.counter})
	}
	if r.battery != nil {
		vals = append(vals, sl651.Value{Time: t, Element: "VT", Value: *r.battery})
	}
	return vals
}

// frame renders one uplink frame of function fn with the next serial
// number (1–65535, wrapping; 0 is not one).
func (r *rtu) frame(fn uint8, t time.Time, stations []sl651.StationReport) ([]byte, error) {
	r.serial++
	if r.serial == 0 {
		r.serial = 1
	}
	return r.encode(fn, &sl651.Report{Serial: r.serial, Sent: t, Stations: stations})
}

func (r *rtu) encode(fn uint8, rep *sl651.Report) ([]byte, error) {
	body, err := sl651.BuildBody(r.enc, fn, rep)
	if err != nil {
		return nil, fmt.Errorf("station %s: SL 651 %02XH report: %w", r.station, fn, err)
	}
	f := sl651.Frame{Encoding: r.enc, Up: true, Centre: sl651Centre, Station: r.address, Password: r.password,
		Function: fn, Body: body, End: sl651.ETX}
	return f.Encode(), nil
}

// send delivers a frame: published over MQTT, or over TCP sent until the
// centre confirms it (M2): up to sl651Tries times, each waiting r.wait,
// the same frame (a resend keeps its serial number); a broken connection
// is dialled again. After the last try the RTU hangs up and gives the
// frame up.
func (r *rtu) send(ctx context.Context, frame []byte) error {
	if r.publish != nil {
		if err := r.publish(ctx, frame); err != nil {
			return err
		}
		r.delivered(frame)
		return nil
	}
	up, derr := sl651.Decode(frame)
	if derr != nil {
		return derr
	}
	serial := serialOf(up)
	var last error
	for try := range sl651Tries {
		if try > 0 && r.conn == nil {
			// The centre is unreachable or hung up: a moment before
			// dialling again.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(try) * time.Second):
			}
		}
		err := r.sendOnce(ctx, frame, up.Function, serial)
		if err == nil {
			r.delivered(frame)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			r.close() // broken: the next try dials again
		}
	}
	r.close()
	return fmt.Errorf("station %s: SL 651 %02XH serial %d: not confirmed after %d tries: %w", r.station, up.Function, serial, sl651Tries, last)
}

func (r *rtu) delivered(frame []byte) {
	if r.sent != nil {
		r.sent(frame)
	}
}

// sendOnce writes the frame and waits for its confirmation: a downlink
// frame of the same function code for this station echoing the serial
// number (§6.3, M2). Anything else the centre sends is read past.
func (r *rtu) sendOnce(ctx context.Context, frame []byte, fn uint8, serial uint16) error {
	if r.conn == nil {
		dctx, cancel := context.WithTimeout(ctx, r.wait)
		c, err := r.dial(dctx)
		cancel()
		if err != nil {
			return err
		}
		r.conn, r.buf = c, r.buf[:0]
	}
	// A stop must not wait out the confirmation's ten seconds.
	conn := r.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(r.wait))
	if _, err := conn.Write(frame); err != nil {
		return err
	}
	r.last = r.now()
	var chunk [1024]byte
	for {
		found, rest := sl651.Split(r.buf)
		r.buf = append(r.buf[:0], rest...)
		for _, f := range found {
			if d := f.Frame; d != nil && !d.Up && d.Function == fn && d.Station == r.address && serialOf(d) == serial {
				return nil
			}
		}
		n, err := conn.Read(chunk[:])
		if n > 0 {
			r.buf = append(r.buf, chunk[:n]...)
			r.last = r.now()
		}
		if err != nil {
			return err
		}
	}
}

// serialOf reads the serial number at the start of a body (uplink reports
// and the centre's confirmations alike); 0 when the body is too short.
func serialOf(f *sl651.Frame) uint16 {
	rep, err := sl651.ParseBody(f)
	if err != nil {
		return 0
	}
	return rep.Serial
}

// keepAlive sends a link keep-alive (2FH) on an open TCP connection idle
// for sl651KeepAlive: serial number (not incremented) and send time, no
// confirmation expected. at is the RTU's clock for the send time. It
// reports whether it sent one; a connection that fails is closed, the next
// report dials again.
func (r *rtu) keepAlive(at time.Time) (bool, error) {
	if r.publish != nil || r.conn == nil || r.now().Sub(r.last) < sl651KeepAlive {
		return false, nil
	}
	frame, err := r.encode(0x2F, &sl651.Report{Serial: max(r.serial, 1), Sent: at})
	if err != nil {
		return false, err
	}
	_ = r.conn.SetWriteDeadline(time.Now().Add(r.wait))
	if _, err := r.conn.Write(frame); err != nil {
		r.close()
		return false, fmt.Errorf("station %s: SL 651 keep-alive: %w", r.station, err)
	}
	r.last = r.now()
	r.delivered(frame)
	return true, nil
}

func (r *rtu) close() {
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}
