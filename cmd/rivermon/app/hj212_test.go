package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hj212"
	"github.com/rivermon/rivermon/internal/testenv"
	"github.com/rivermon/rivermon/simulators"
)

var cst = time.FixedZone("CST", 8*3600)

// hjPacket builds a real-time (2011) upload asking for an answer.
func hjPacket(mn string, at time.Time, items map[string]string) []byte {
	var cp strings.Builder
	cp.WriteString("DataTime=" + at.In(cst).Format("20060102150405"))
	for _, code := range []string{"w01010", "w01001", "w01009", "w21003", "w01018"} {
		if v, ok := items[code]; ok {
			flag := "N"
			if f, ok := items[code+"-Flag"]; ok {
				flag = f
			}
			cp.WriteString(";" + code + "-Rtd=" + v + "," + code + "-Flag=" + flag)
		}
	}
	p := hj212.Packet{QN: at.In(cst).Format("20060102150405") + "000", ST: "21", CN: "2011", PW: "123456", MN: mn, Flag: 5, CP: cp.String()}
	return p.Encode()
}

// readReplies collects the 9014 answers a connection receives.
func readReplies(c net.Conn) (<-chan *hj212.Packet, func() int) {
	out := make(chan *hj212.Packet, 1000)
	var mu sync.Mutex
	n := 0
	go func() {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				close(out)
				return
			}
			p, perr := hj212.Decode(line)
			if perr == nil {
				mu.Lock()
				n++
				mu.Unlock()
				out <- p
			}
		}
	}()
	return out, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestHJ212OverTCPAndMQTT(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-hj212", tcp: true})
	watch := testenv.NewClient(t, mq.URL, "hj212-watch")
	watch.Subscribe(prefix + "/deadletter/#")
	reg := loadRegistry(t)
	const st = "nianchu-gyantse"
	mn := reg.Station(st).HJ212MN
	base := time.Now().Truncate(time.Minute).Add(-3 * time.Hour)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	values := map[string]string{"w01010": "9.8", "w01001": "8.21", "w01009": "6.62", "w21003": "0.11"}

	c, err := net.Dial("tcp", svc.hj212)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	replies, count := readReplies(c)

	// A packet split across two writes.
	a := hjPacket(mn, at(0), values)
	c.Write(a[:37])
	c.Write(a[37:])
	// Two packets coalesced, with a damaged one between them.
	bad := hjPacket(mn, at(1), values)
	bad[60] ^= 1
	withFault := map[string]string{"w01010": "9.9", "w01001": "8.3", "w01009": "6.7", "w21003": "0.4", "w21003-Flag": "D"}
	c.Write(append(append(hjPacket(mn, at(2), values), bad...), hjPacket(mn, at(3), withFault)...))
	testenv.Eventually(t, 15*time.Second, func() bool { return count() == 3 }, "9014 answers: %d of 3", count())
	for range 3 {
		p := <-replies
		if p.CN != "9014" || p.ST != "91" || p.MN != mn || p.Flag != 4 {
			t.Errorf("answer %+v", p)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		for _, m := range watch.Received(prefix + "/deadletter/#") {
			var dl map[string]any
			if json.Unmarshal(m.Payload, &dl) == nil && dl["reason"] == "hj212_bad_crc" {
				return true
			}
		}
		return false
	}, "the damaged packet was not dead-lettered")
	// The connection is still good.
	c.Write(hjPacket(mn, at(4), values))
	testenv.Eventually(t, 10*time.Second, func() bool { return count() == 4 }, "no answer after the damaged packet")
	if p := <-replies; p.CN != "9014" {
		t.Errorf("answer %+v, want 9014", p)
	}

	// Commands that ask get the request answer (9011) and, when taken, the
	// execution result (9012); a packet framed with CRC-16/MODBUS from a
	// station using the standard's CRC gets none.
	cmd := func(cn string) []byte {
		p := hj212.Packet{QN: "20261203080000000", ST: "21", CN: cn, PW: "123456", MN: mn, Flag: 5}
		return p.Encode()
	}
	modbus := hj212.Packet{QN: "20261203080000001", ST: "21", CN: "2011", PW: "123456", MN: mn, Flag: 5,
		CP: "DataTime=" + at(5).In(cst).Format("20060102150405") + ";w01001-Rtd=8.1,w01001-Flag=N"}
	c.Write(append(append(cmd("1011"), modbus.EncodeCRC(hj212.CRCVariantModbus)...), cmd("2081")...))
	testenv.Eventually(t, 10*time.Second, func() bool { return count() == 7 }, "answers to the commands: %d of 3", count()-4)
	for _, want := range []string{"9011 QnRtn=2", "9011 QnRtn=1", "9012 ExeRtn=1"} {
		if p := <-replies; p.CN+" "+p.CP != want {
			t.Errorf("answer %s %s, want %s", p.CN, p.CP, want)
		}
	}

	testenv.Eventually(t, 10*time.Second, func() bool {
		return in.Count(t, "reading", "ph", fmt.Sprintf("station = '%s'", st)) == 4
	}, "the four good packets are not all stored")
	if got := field(t, in, "reading", "do_mgl", st, at(0)); got != "6.62" {
		t.Errorf("do_mgl = %s, want 6.62", got)
	}
	if got := field(t, in, "reading", "nh3n_mgl_qc", st, at(3)); got != "4" {
		t.Errorf("a value flagged D (instrument fault): nh3n_mgl_qc = %s, want 4", got)
	}
	if got := field(t, in, "reading", "wq_class", st, at(0)); got != "1" { // DO 6.62 mg/L at 9.8 °C and 4,030 m is 97 % saturated: Class I
		t.Errorf("wq_class = %s, want 1", got)
	}

	// InfluxDB down: the answer still comes once the packet is spooled. A
	// new connection, as an analyser would open: the first one may have
	// been closed as idle (idle_timeout 2 s here) while InfluxDB stopped.
	in.Stop()
	c2, err := net.Dial("tcp", svc.hj212)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	replies2, count2 := readReplies(c2)
	c2.Write(hjPacket(mn, at(5), values))
	testenv.Eventually(t, 10*time.Second, func() bool { return count2() == 1 }, "no answer while InfluxDB is down")
	if p := <-replies2; p.CN != "9014" {
		t.Errorf("answer during the outage: %+v", p)
	}
	in.Start()
	testenv.Eventually(t, 30*time.Second, func() bool {
		return in.Count(t, "reading", "ph", fmt.Sprintf("station = '%s'", st)) == 5
	}, "the packet answered during the outage was not stored afterwards")

	// A flood of analysers connecting at once: none is starved.
	const conns = 100
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	for k := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc, err := net.Dial("tcp", svc.hj212)
			if err != nil {
				t.Error(err)
				return
			}
			defer cc.Close()
			_ = cc.SetReadDeadline(time.Now().Add(20 * time.Second))
			cc.Write(hjPacket(mn, at(10+k), values))
			if line, err := bufio.NewReader(cc).ReadBytes('\n'); err == nil {
				if p, perr := hj212.Decode(line); perr == nil && p.CN == "9014" {
					mu.Lock()
					answered++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if answered != conns {
		t.Errorf("%d of %d connections answered", answered, conns)
	}
	testenv.Eventually(t, 20*time.Second, func() bool {
		return in.Count(t, "reading", "ph", fmt.Sprintf("station = '%s'", st)) == 5+conns
	}, "the flood's packets are not all stored")

	// Over MQTT: two packets in one message; one with another station's MN.
	pub := testenv.NewClient(t, mq.URL, "gateway")
	other := reg.Station("nianchu-mouth").HJ212MN
	pub.Publish(prefix+"/stations/"+st+"/hj212", append(hjPacket(mn, at(150), values), hjPacket(other, at(151), values)...))
	testenv.Eventually(t, 10*time.Second, func() bool {
		return in.Count(t, "reading", "ph", fmt.Sprintf("station = '%s'", st)) == 6+conns
	}, "the MQTT packet was not stored")
	// deadLettered reports whether a dead letter of st gives reason.
	deadLettered := func(reason string) func() bool {
		return func() bool {
			for _, m := range watch.Received(prefix + "/deadletter/#") {
				var dl map[string]any
				if json.Unmarshal(m.Payload, &dl) == nil && dl["reason"] == reason && m.Topic == prefix+"/deadletter/"+st {
					return true
				}
			}
			return false
		}
	}
	testenv.Eventually(t, 10*time.Second, deadLettered("hj212_mn_mismatch"), "a packet with another station's MN was not dead-lettered")
	if n := in.Count(t, "reading", "ph", "station = 'nianchu-mouth'"); n != 0 {
		t.Errorf("the foreign MN was stored under nianchu-mouth: %d", n)
	}

	// An analyser whose clock was never set (DataTime in year 1): its
	// nanoseconds would wrap to 1754. Dead-lettered, not stored.
	pub.Publish(prefix+"/stations/"+st+"/hj212", hjPacket(mn, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), values))
	testenv.Eventually(t, 10*time.Second, deadLettered("bad_time"), "a DataTime of year 1 was not dead-lettered as bad_time")

	if n := in.Count(t, "reading", "ph", fmt.Sprintf("station = '%s'", st)); n != 6+conns {
		t.Errorf("%d ph values stored, want %d: the year-1 packet was stored", n, 6+conns)
	}
}

// TestSimulatorSpeaksHJ212 runs stationsim's HJ 212 mode for the
// water-quality stations over TCP and over MQTT, one of them (Yadong) a
// logger framing with CRC-16/MODBUS as its registry entry says: every
// value arrives. Forced to the standard's CRC, the Yadong packets are
// dead-lettered hj212_bad_crc.
func TestSimulatorSpeaksHJ212(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-hjsim", tcp: true})
	reg := loadRegistry(t)
	if reg.Station("yadong-yadong").HJ212CRC != hj212.CRCVariantModbus {
		t.Fatal("yadong-yadong's hj212_crc is not modbus")
	}
	stations := []string{"nianchu-gyantse", "yarlung-lhatse", "yadong-yadong"}
	for _, transport := range []string{"tcp", "mqtt"} {
		start := time.Now().UTC().Truncate(time.Hour).Add(-9 * time.Hour)
		if transport == "mqtt" {
			start = start.Add(3 * time.Hour)
		}
		sum, err := simulators.Run(context.Background(), simulators.Options{
			Broker: mq.URL, TopicPrefix: prefix, Registry: reg, Start: start, Speed: 1e9, Duration: 2 * time.Hour,
			Seed: 4, ClientID: "sim-hj-" + transport, Protocol: "hj212", Transport: transport, HJ212Addr: svc.hj212,
			Stations: stations,
		})
		if err != nil || sum.Errors != 0 || sum.Packets != 3*24 {
			t.Fatalf("%s: %v, %d errors, %d packets (want 72)", transport, err, sum.Errors, sum.Packets)
		}
		where := fmt.Sprintf("time >= %d AND time < %d", start.UnixNano(), start.Add(2*time.Hour).UnixNano())
		testenv.Eventually(t, 20*time.Second, func() bool {
			return in.Count(t, "reading", "ph", where) == 72 && in.Count(t, "reading", "level_m", where) == 72 &&
				in.Count(t, "reading", "ph", where+" AND station = 'yadong-yadong'") == 24
		}, "%s: water-quality values (HJ 212) or levels (native) missing", transport)
	}

	// The wrong CRC forced on the MODBUS logger.
	watch := testenv.NewClient(t, mq.URL, "hjsim-watch")
	watch.Subscribe(prefix + "/deadletter/#")
	start := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	sum, err := simulators.Run(context.Background(), simulators.Options{
		Broker: mq.URL, TopicPrefix: prefix, Registry: reg, Start: start, Speed: 1e9, Duration: 30 * time.Minute,
		Seed: 4, ClientID: "sim-hj-crc", Protocol: "hj212", Transport: "mqtt", HJ212CRC: hj212.CRCVariantHJ212,
		Stations: []string{"yadong-yadong"},
	})
	if err != nil || sum.Packets != 6 {
		t.Fatalf("forced CRC: %v, %d packets (want 6)", err, sum.Packets)
	}
	testenv.Eventually(t, 20*time.Second, func() bool {
		n := 0
		for _, m := range watch.Received(prefix + "/deadletter/#") {
			var dl map[string]any
			if json.Unmarshal(m.Payload, &dl) == nil && dl["reason"] == "hj212_bad_crc" && m.Topic == prefix+"/deadletter/yadong-yadong" {
				n++
			}
		}
		return n == 6
	}, "the 6 packets with the standard's CRC from a MODBUS logger were not all dead-lettered hj212_bad_crc")
	where := fmt.Sprintf("time >= %d AND station = 'yadong-yadong'", start.UnixNano())
	if n := in.Count(t, "reading", "ph", where); n != 0 {
		t.Errorf("%d packets with the wrong CRC stored", n)
	}
}
