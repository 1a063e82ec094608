package app_test

import (
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/testenv"
)

// TestShippedBrokerConfigAuthenticatesAndConfinesStations runs Mosquitto
// with the shipped configs/mosquitto (paths and ports moved to a temporary
// folder), credentials made by scripts/mqtt-credentials.sh from the shipped
// registry, and a TLS listener; rivermon connects over TLS as user rivermon.
// A station's own readings are stored, and what it sends on its HJ 212 and
// SL 651 topics reaches rivermon; what it publishes as another station never
// does; anonymous and wrong-password clients are refused.
func TestShippedBrokerConfigAuthenticatesAndConfinesStations(t *testing.T) {
	root, _ := testenv.RepoRoot()
	etc := t.TempDir()
	script := exec.Command("bash", filepath.Join(root, "scripts", "mqtt-credentials.sh"), filepath.Join(root, "configs", "stations.yaml"), etc)
	if out, err := script.CombinedOutput(); err != nil {
		t.Fatalf("mqtt-credentials.sh: %v\n%s", err, out)
	}
	creds := readCredentials(t, filepath.Join(etc, "credentials.csv"))
	if len(creds) != 24 {
		t.Fatalf("%d credentials, want rivermon and 23 stations", len(creds))
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
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{Conf: func(dir string, port int) string {
		return strings.NewReplacer(
			"/var/lib/mosquitto/", dir+"/",
			"/etc/mosquitto/rivermon/", etc+"/",
			"listener 1883 127.0.0.1", fmt.Sprintf("listener %d 127.0.0.1", port),
			"listener 8883\n", fmt.Sprintf("listener %d 127.0.0.1\n", tlsPort),
			"log_dest syslog", "log_dest stderr",
		).Replace(string(shipped))
	}})
	in := testenv.StartInflux(t)
	tlsURL := fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort)

	if _, err := testenv.Dial(t, testenv.ClientOptions{URL: mq.URL, ID: "anon"}); err == nil {
		t.Error("an anonymous client was let in")
	}
	if _, err := testenv.Dial(t, testenv.ClientOptions{URL: tlsURL, ID: "liar", Username: "nianchu-gyantse", Password: "wrong", CAFile: certs.CA}); err == nil {
		t.Error("a wrong password was let in")
	}

	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-acl", mqURL: tlsURL, username: "rivermon", password: creds["rivermon"], caFile: certs.CA})
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
