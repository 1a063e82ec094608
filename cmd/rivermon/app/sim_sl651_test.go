package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/sl651"
	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

// TestSimulatorSpeaksSL651 runs stationsim's SL 651 mode through rivermon
// for two and a half simulated hours of the last monsoon at full speed:
// Gyirong Zongga's RTU over TCP in HEX, waiting for rivermon's
// confirmations, in a storm, and Gyirong town's over MQTT in ASCII beside
// its analyser's HJ 212 packets, in a flood (the stage passes the warning
// level: an added report). The reports agree with each other where they
// repeat a value. Every stage, flow, water temperature, rain amount and
// rain counter the frames carried (timed, hourly and added reports alike)
// is in InfluxDB, as many as were sent and with the values sent, and every
// battery voltage is in station_status; the values SL 651 does not carry
// came as JSON, the water quality as HJ 212; nothing is dead-lettered.
func TestSimulatorSpeaksSL651(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-slsim", tcp: true})
	watch := testenv.NewClient(t, mq.URL, "slsim-watch")
	watch.Subscribe(prefix + "/deadletter/#")
	reg := loadRegistry(t)
	now := time.Now().In(shanghai)
	year := now.Year()
	if now.Month() < time.August {
		year-- // the simulator sends no future
	}
	start := time.Date(year, time.July, 15, 0, 0, 0, 0, shanghai)
	const window = 150 * time.Minute
	for _, c := range []struct {
		station, protocol, transport, encoding, scenario string
		wantPackets, wantAdded                           int
	}{
		{"gyirong-zongga", "sl651", "tcp", "hex", simulators.ScenarioStorm, 0, 0},
		{"gyirong-town", "sl651,hj212", "mqtt", "ascii", simulators.ScenarioFlood, 30, 1},
	} {
		var mu sync.Mutex
		var frames [][]byte
		sum, err := simulators.Run(context.Background(), simulators.Options{
			Broker: mq.URL, TopicPrefix: prefix, Registry: reg, Start: start, Speed: 1e9, Duration: window,
			Seed: 6, ClientID: "sim-sl-" + c.transport, Protocol: c.protocol, Transport: c.transport,
			SL651Addr: svc.sl651, SL651Encoding: c.encoding, HJ212Addr: svc.hj212, Stations: []string{c.station},
			Scenarios: map[string][]string{c.station: {c.scenario}}, ScenarioStart: start.Add(15 * time.Minute),
			Sent: func(_, protocol string, payload []byte) {
				if protocol == simulators.ProtocolSL651 {
					mu.Lock()
					frames = append(frames, payload)
					mu.Unlock()
				}
			},
		})
		// 30 timed reports, 3 hourly ones (the first with one slot of the
		// hour before it only).
		if err != nil || sum.Errors != 0 || sum.Samples != 30 || sum.Frames < 33 || sum.Packets != c.wantPackets {
			t.Fatalf("%s: %v, %d errors, %d samples, %d SL 651 frames, %d HJ 212 packets", c.station, err, sum.Errors, sum.Samples, sum.Frames, sum.Packets)
		}
		// What the frames carried: code → time → value, and the battery.
		want := map[string]map[int64]float64{}
		functions := map[uint8]int{}
		for _, raw := range frames {
			f, derr := sl651.Decode(raw)
			if derr != nil {
				t.Fatal(derr)
			}
			if want := map[string]sl651.Encoding{"hex": sl651.HEX, "ascii": sl651.ASCII}[c.encoding]; f.Encoding != want {
				t.Fatalf("%s: a %v frame, want %v", c.station, f.Encoding, want)
			}
			functions[f.Function]++
			rep, perr := sl651.ParseBody(f)
			if perr != nil {
				t.Fatal(perr)
			}
			for _, sr := range rep.Stations {
				for _, v := range sr.Values {
					if v.Missing {
						continue
					}
					if want[v.Code] == nil {
						want[v.Code] = map[int64]float64{}
					}
					if w, ok := want[v.Code][v.Time.UnixNano()]; ok && w != v.Value {
						t.Errorf("%s: %02XH says %s %v at %s, an earlier report %v", c.station, f.Function, v.Element, v.Value,
							v.Time.Format(time.RFC3339), w)
					}
					want[v.Code][v.Time.UnixNano()] = v.Value
				}
			}
		}
		if functions[0x32] != 30 || functions[0x34] != 3 || c.wantAdded > 0 && functions[0x33] != c.wantAdded {
			t.Errorf("%s: reports by function %v, want 30 timed (32H), 3 hourly (34H) and %d added (33H)", c.station, functions, c.wantAdded)
		}
		rain := 0.0
		for _, v := range want["rain_mm"] {
			rain += v
		}
		where := fmt.Sprintf("station = '%s' AND time >= %d AND time < %d", c.station, start.UnixNano(), start.Add(window).UnixNano())
		for _, code := range []string{"level_m", "flow_m3s", "water_temp_c", "rain_mm", "rain_total_mm", "battery_v"} {
			measurement := "reading"
			if code == "battery_v" {
				measurement = "station_status"
			}
			if len(want[code]) == 0 {
				t.Fatalf("%s: no %s sent", c.station, code)
			}
			testenv.Eventually(t, 20*time.Second, func() bool {
				return in.Count(t, measurement, code, where) == int64(len(want[code]))
			}, "%s: %d %s in InfluxDB, %d sent", c.station, in.Count(t, measurement, code, where), code, len(want[code]))
			ss, err := in.Query("rivermon", fmt.Sprintf("SELECT %q FROM %s WHERE %s", code, measurement, where))
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range ss {
				for _, row := range s.Values {
					if row[1] == nil {
						continue
					}
					ns, _ := row[0].(json.Number).Int64()
					got, _ := strconv.ParseFloat(string(row[1].(json.Number)), 64)
					if w, ok := want[code][ns]; !ok || got != w {
						t.Errorf("%s: %s %v at %s, sent %v (%v)", c.station, code, got, time.Unix(0, ns).UTC().Format(time.RFC3339), w, ok)
					}
				}
			}
		}
		t.Logf("%s: %d frames %v; stored as sent: %d stages, %d flows, %d water temperatures, %d rain amounts (%.1f mm), %d counters, %d battery voltages",
			c.station, len(frames), functions, len(want["level_m"]), len(want["flow_m3s"]), len(want["water_temp_c"]), len(want["rain_mm"]), rain,
			len(want["rain_total_mm"]), len(want["battery_v"]))
		if c.scenario == simulators.ScenarioStorm && rain < 50 {
			t.Errorf("%s: %.1f mm of rain in the storm", c.station, rain)
		}
		// The native JSON and the HJ 212 packets come their own ways: they
		// may still be on theirs.
		testenv.Eventually(t, 20*time.Second, func() bool { return in.Count(t, "reading", "velocity_ms", where) == 30 },
			"%s: %d velocities (native JSON), want 30", c.station, in.Count(t, "reading", "velocity_ms", where))
		if c.wantPackets > 0 {
			testenv.Eventually(t, 20*time.Second, func() bool { return in.Count(t, "reading", "ph", where) == int64(c.wantPackets) },
				"%s: %d pH values (HJ 212), want %d", c.station, in.Count(t, "reading", "ph", where), c.wantPackets)
		}
	}
	for _, m := range watch.Received(prefix + "/deadletter/#") {
		t.Errorf("dead letter on %s: %.300s", m.Topic, m.Payload)
	}
}
