package app_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// TestShippedBrokerConfigAuthenticatesAndConfinesStations runs Mosquitto
// with the shipped configs/mosquitto (paths and ports moved to a temporary
// folder), credentials made by scripts/mqtt-credentials.sh from the shipped
// registry, and a TLS listener; rivermon connects over TLS as user
// rivermon-1. A station's own readings are stored, and what it sends on its
// HJ 212 and SL 651 topics reaches rivermon; what it publishes as another
// station never does; anonymous and wrong-password clients are refused.
func TestShippedBrokerConfigAuthenticatesAndConfinesStations(t *testing.T) {
	b := startShippedBroker(t, nil)
	mq, creds, certs, tlsURL := b.mq, b.creds, b.certs, b.tlsURL
	in := testenv.StartInflux(t)

	if _, err := testenv.Dial(t, testenv.ClientOptions{URL: mq.URL, ID: "anon"}); err == nil {
		t.Error("an anonymous client was let in")
	}
	if _, err := testenv.Dial(t, testenv.ClientOptions{URL: tlsURL, ID: "liar", Username: "nianchu-gyantse", Password: "wrong", CAFile: certs.CA}); err == nil {
		t.Error("a wrong password was let in")
	}

	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-1", mqURL: tlsURL, username: "rivermon-1", password: creds["rivermon-1"], caFile: certs.CA})
	station, err := testenv.Dial(t, testenv.ClientOptions{URL: tlsURL, ID: "nianchu-gyantse", Username: "nianchu-gyantse", Password: creds["nianchu-gyantse"], CAFile: certs.CA})
	if err != nil {
		t.Fatalf("station connect over TLS: %v", err)
	}
	ts := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	msg := func(st string, i int, level float64) []byte {
		return mustJSON(t, map[string]any{"station": st, "samples": []any{map[string]any{
			"time": ts.Add(time.Duration(i) * time.Second).Format(time.RFC3339), "values": map[string]any{"level_m": level}}}})
	}
	// Forged: publishing as another station, then a genuine reading.
	// Mosquitto takes a denied QoS 1 publish without passing it on.
	station.Publish(readingsTopic("nianchu-mouth"), msg("nianchu-mouth", 0, 9.99))
	station.Publish(readingsTopic("nianchu-gyantse"), msg("nianchu-gyantse", 1, 1.11))
	testenv.Eventually(t, 15*time.Second, func() bool {
		return in.Count(t, "reading", "level_m", "station = 'nianchu-gyantse'") == 1
	}, "the station's own reading was not stored")
	if n := in.Count(t, "reading", "level_m", "station = 'nianchu-mouth'"); n != 0 {
		t.Errorf("a station published as another: %d points stored", n)
	}
	if n := in.Count(t, "reading", "level_m", ""); n != 1 {
		t.Errorf("%d points stored, want only the genuine one", n)
	}
	// Its raw-protocol topics are its own too: what it sends there reaches
	// rivermon (here, frames that do not parse, dead-lettered).
	station.Publish(prefix+"/stations/nianchu-gyantse/hj212", []byte("not a packet"))
	station.Publish(prefix+"/stations/nianchu-gyantse/sl651", []byte("not a frame"))
	testenv.Eventually(t, 15*time.Second, func() bool {
		return svc.metric(`rivermon_messages_total{result="rejected"}`) == 2
	}, "the station's HJ 212 and SL 651 messages did not reach rivermon")
}

// shippedBroker is Mosquitto running the shipped configs/mosquitto.
type shippedBroker struct {
	mq     *testenv.Mosquitto
	tlsURL string // the stations' listener; mq.URL is rivermon's
	certs  testenv.TLSFiles
	creds  map[string]string // user → password
}

// startShippedBroker runs Mosquitto with the shipped configs/mosquitto
// (paths and ports moved to temporary ones, edit applied to the text when
// set) and credentials made by scripts/mqtt-credentials.sh from the shipped
// registry, and checks that the script keeps every password when run again.
func startShippedBroker(t *testing.T, edit func(conf string) string) shippedBroker {
	t.Helper()
	root, _ := testenv.RepoRoot()
	etc := t.TempDir()
	script := exec.Command("bash", filepath.Join(root, "scripts", "mqtt-credentials.sh"), filepath.Join(root, "configs", "stations.yaml"), etc)
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("mqtt-credentials.sh: %v\n%s", err, out)
	}
	creds := readCredentials(t, filepath.Join(etc, "credentials.csv"))
	if len(creds) != 26 {
		t.Fatalf("%d credentials, want rivermon-1, rivermon-a, rivermon-b and 23 stations", len(creds))
	}
	// Running it again keeps every password.
	if out, err := exec.Command("bash", filepath.Join(root, "scripts", "mqtt-credentials.sh"), filepath.Join(root, "configs", "stations.yaml"), etc).CombinedOutput(); err != nil || !strings.Contains(string(out), "0 new user") {
		t.Fatalf("second run: %v %s", err, out)
	}

	shipped, err := os.ReadFile(filepath.Join(root, "configs", "mosquitto", "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	acl, err := os.ReadFile(filepath.Join(root, "configs", "mosquitto", "acl"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "acl"), acl, 0o644); err != nil {
		t.Fatal(err)
	}
	certs := testenv.WriteTLS(t, etc)
	tlsPort := testenv.FreePort(t)
	conf := string(shipped)
	if edit != nil {
		conf = edit(conf)
	}
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{Conf: func(dir string, port int) string {
		return strings.NewReplacer(
			"/var/lib/mosquitto/", dir+"/",
			"/etc/mosquitto/rivermon/", etc+"/",
			"listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1", port),
			"listener 8883\n", fmt.Sprintf("listener %d 127.0.0.1\n", tlsPort),
			"log_dest syslog", "log_dest stderr",
		).Replace(conf)
	}})
	return shippedBroker{mq: mq, tlsURL: fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort), certs: certs, creds: creds}
}

func readCredentials(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		out[r[0]] = r[1]
	}
	return out
}

// TestStationCannotTakeRivermonsSession: with the shipped broker config a
// client id belongs to one user, so a station's login asking for
// rivermon's client id gets a session of its own. With rivermon stopped,
// such a clean-session connect leaves the 100 readings queued for rivermon
// where they are, and all arrive when it comes back; with rivermon running,
// it does not knock rivermon off. The same config without
// use_username_as_clientid, the hole the option closes, loses the 100 and
// lets rivermon be knocked off: the test would notice.
func TestStationCannotTakeRivermonsSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(string) string
		safe bool
	}{
		{name: "shipped", safe: true},
		{name: "without use_username_as_clientid", edit: func(conf string) string {
			if !strings.Contains(conf, "\nuse_username_as_clientid true\n") {
				t.Fatal("the shipped mosquitto.conf does not set use_username_as_clientid")
			}
			return strings.ReplaceAll(conf, "\nuse_username_as_clientid true\n", "\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startShippedBroker(t, tc.edit)
			in := testenv.StartInflux(t)
			so := serviceOptions{clientID: "rivermon-1", username: "rivermon-1", password: b.creds["rivermon-1"]}
			station := func(id string) testenv.ClientOptions {
				return testenv.ClientOptions{URL: b.tlsURL, ID: id, Username: id, Password: b.creds[id], CAFile: b.certs.CA}
			}
			// A station publishing, and another station's login asking
			// for rivermon's client id.
			pub, err := testenv.Dial(t, station("nianchu-gyantse"))
			if err != nil {
				t.Fatal(err)
			}
			intruder := station("yarlung-dazhuka")
			intruder.ID = so.clientID

			base := time.Now().UTC().Truncate(time.Second).Add(-6 * time.Hour) // 200 readings a minute apart
			level := func(i int) float64 { return 1 + float64(i)/1000 }
			publish := func(from, to int) {
				for i := from; i < to; i++ {
					pub.Publish(readingsTopic("nianchu-gyantse"), mustJSON(t, map[string]any{"station": "nianchu-gyantse", "samples": []any{
						map[string]any{"time": base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339), "values": map[string]any{"level_m": level(i)}}}}))
				}
			}
			stored := func(from, to int) int64 {
				return in.Count(t, "reading", "level_m", fmt.Sprintf("station = 'nianchu-gyantse' AND time >= %d AND time < %d",
					base.Add(time.Duration(from)*time.Minute).UnixNano(), base.Add(time.Duration(to)*time.Minute).UnixNano()))
			}

			// rivermon's session exists, then rivermon stops; 100 readings
			// are queued for it; the intruder connects with a clean session
			// and leaves.
			startServiceWith(t, b.mq, in, so).stop()
			publish(0, 100)
			c, err := testenv.Dial(t, intruder)
			if err != nil {
				t.Fatalf("the intruder's connect: %v", err)
			}
			c.Disconnect(100)

			// rivermon comes back; a marker reading sent after it is
			// subscribed comes after whatever its session kept.
			svc := startServiceWith(t, b.mq, in, so)
			publish(100, 101)
			testenv.Eventually(t, 15*time.Second, func() bool { return stored(100, 101) == 1 }, "the marker reading was not stored")
			queued := stored(0, 100)
			t.Logf("%d of the 100 readings queued for rivermon arrived", queued)
			if tc.safe {
				testenv.Eventually(t, 15*time.Second, func() bool { return stored(0, 100) == 100 }, "%d of the 100 queued readings arrived", stored(0, 100))
			} else if queued != 0 {
				t.Fatalf("without use_username_as_clientid %d of 100 queued readings arrived: the intruder did not wipe the session; this test proves nothing", queued)
			}

			// The intruder again, rivermon running.
			if svc.metric("rivermon_mqtt_connections_total") != 1 {
				t.Fatal("rivermon reconnected before the intruder came")
			}
			if _, err := testenv.Dial(t, intruder); err != nil {
				t.Fatalf("the intruder's connect: %v", err)
			}
			if !tc.safe {
				testenv.Eventually(t, 15*time.Second, func() bool { return svc.metric("rivermon_mqtt_connections_total") > 1 },
					"without use_username_as_clientid the intruder did not knock rivermon off: this test proves nothing")
				return
			}
			// The broker logs a takeover before it answers the newcomer, and
			// the name the intruder got.
			log, err := os.ReadFile(filepath.Join(b.mq.Dir, "mosquitto.log"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(log), "Client rivermon-1 already connected") || !strings.Contains(string(log), " as yarlung-dazhuka (") {
				t.Errorf("the intruder took rivermon-1's connection, or did not get its own client id:\n%s", log)
			}
			publish(101, 200)
			testenv.Eventually(t, 15*time.Second, func() bool { return stored(101, 200) == 99 }, "the readings sent while the intruder was connected were not stored")
			if n := svc.metric("rivermon_mqtt_connections_total"); n != 1 {
				t.Errorf("rivermon connected %v times: the intruder knocked it off", n)
			}
			ss, err := in.Query("rivermon", "SELECT level_m FROM reading WHERE station = 'nianchu-gyantse'")
			if err != nil || len(ss) != 1 || len(ss[0].Values) != 200 {
				t.Fatalf("readings stored: %v %v, want 200", ss, err)
			}
			for _, row := range ss[0].Values {
				ns, _ := strconv.ParseInt(string(row[0].(json.Number)), 10, 64)
				i := int(time.Unix(0, ns).Sub(base) / time.Minute)
				if got, _ := row[1].(json.Number).Float64(); got != level(i) {
					t.Errorf("reading %d: level_m %v, want %v", i, got, level(i))
				}
			}
		})
	}
}
