package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rivermon/rivermon/internal/testenv"
)

// TestCheckReportsProtocolKeys: `rivermon check` reports a bad key of the
// field protocols (CONTRACT §9) in the station registry as FILE:LINE: and
// exits 1. Each case is the shipped registry with some text replaced; the
// problem stands at the line holding the case's marker.
func TestCheckReportsProtocolKeys(t *testing.T) {
	bin := binary(t)
	root, _ := testenv.RepoRoot()
	shipped, err := os.ReadFile(filepath.Join(root, "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// under adds YAML lines under a station's hj212_mn.
	under := func(station string) string {
		i := strings.Index(string(shipped), "  - id: "+station+" ")
		j := strings.Index(string(shipped)[i:], "    hj212_mn: ")
		if i < 0 || j < 0 {
			t.Fatalf("station %s with hj212_mn not in stations.yaml", station)
		}
		end := i + j + strings.Index(string(shipped)[i+j:], "\n") + 1
		return string(shipped)[i+j : end]
	}
	add := func(station, lines string) [2]string {
		mn := under(station)
		return [2]string{mn, mn + lines}
	}
	for _, tc := range []struct {
		name   string
		edits  [][2]string // old, new
		marker string
		want   string
	}{
		{name: "hj212_crc", edits: [][2]string{add("nianchu-gyantse", "    hj212_crc: crc16\n")}, marker: "crc16",
			want: `station nianchu-gyantse: hj212_crc "crc16": want hj212 (the default) or modbus`},
		{name: "hj212_pw", edits: [][2]string{add("yarlung-shigatse", "    hj212_pw: \"pass;word\"\n")}, marker: "pass;word",
			want: `station yarlung-shigatse: hj212_pw must be 1 to 6 printable ASCII characters without space, ';', ',', '=' or '&' (HJ 212-2017 Table 3)`},
		{name: "hj212_mn format", edits: [][2]string{{`"540200000000000000SGX013"`, `"5402-SGX013"`}}, marker: "5402-SGX013",
			want: `station duoxiong-phuntsoling: hj212_mn "5402-SGX013": want 24 letters and digits (HJ 212-2017 Table 3)`},
		{name: "hj212_mn twice", edits: [][2]string{{`"540200000000000000SGX014"`, `"540200000000000000SGX013" # twice`}}, marker: "# twice",
			want: `station xiangqu-namling: hj212_mn "540200000000000000SGX013" is already station duoxiong-phuntsoling's`},
		// Every section has an SL 651 RTU: its keys are changed, not added.
		{name: "sl651_address", edits: [][2]string{{`sl651_address: "0091400211"`, `sl651_address: "54021"`}}, marker: `"54021"`,
			want: `station boqu-nyalam: sl651_address "54021": want 10 hex digits (5 bytes, SL 651-2014 §6.2.3)`},
		{name: "sl651_address twice", edits: [][2]string{
			{`sl651_address: "0091400201"`, `sl651_address: "540200001a"`},
			{`sl651_address: "0091400211"`, `sl651_address: "540200001A"`}}, marker: `"540200001A"`,
			want: `station boqu-nyalam: sl651_address "540200001A" is already station gyirong-town's`},
		{name: "sl651_password", edits: [][2]string{{`sl651_password: "1216"`, `sl651_password: "12345"`}}, marker: `"12345"`,
			want: `station yadong-yadong: sl651_password must be 4 hex digits (2 bytes, SL 651-2014 §6.2.3)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := string(shipped)
			for _, e := range tc.edits {
				if strings.Count(text, e[0]) != 1 {
					t.Fatalf("%q is not once in stations.yaml", e[0])
				}
				text = strings.Replace(text, e[0], e[1], 1)
			}
			line := strings.Count(text[:strings.Index(text, tc.marker)], "\n") + 1
			dir := t.TempDir()
			stations := filepath.Join(dir, "stations.yaml")
			if err := os.WriteFile(stations, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "rivermon.yaml")
			body := fmt.Sprintf("mqtt: {url: tcp://127.0.0.1:1, client_id: x}\ninflux: {url: http://127.0.0.1:1}\nstations: %s\nrules: %s\n",
				stations, filepath.Join(root, "configs", "rules.yaml"))
			if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "check", "-config", cfg)
			out, _ := cmd.CombinedOutput()
			want := fmt.Sprintf("%s:%d: %s", stations, line, tc.want)
			if code := cmd.ProcessState.ExitCode(); code != 1 || strings.TrimSpace(string(out)) != want {
				t.Errorf("exit %d, output:\n%s\nwant exit 1 and exactly:\n%s", code, out, want)
			}
		})
	}
}
