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
// exits 1. Each case is the shipped registry with lines added under one
// station's hj212_mn; the problem stands at the added line of the case.
func TestCheckReportsProtocolKeys(t *testing.T) {
	bin := binary(t)
	root, _ := testenv.RepoRoot()
	shipped, err := os.ReadFile(filepath.Join(root, "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		station string
		add     string // YAML lines added under the station's hj212_mn
		at      int    // the line of add where the problem stands, from 0
		want    string
	}{
		{name: "hj212_crc", station: "nianchu-gyantse", add: "    hj212_crc: crc16\n",
			want: `station nianchu-gyantse: hj212_crc "crc16": want hj212 (the default) or modbus`},
		{name: "hj212_pw", station: "yarlung-shigatse", add: "    hj212_pw: \"pass;word\"\n",
			want: `station yarlung-shigatse: hj212_pw must be 1 to 6 printable ASCII characters without space, ';', ',', '=' or '&' (HJ 212-2017 Table 3)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := string(shipped)
			i := strings.Index(text, "  - id: "+tc.station+" ")
			j := strings.Index(text[i:], "    hj212_mn: ")
			if i < 0 || j < 0 {
				t.Fatalf("station %s with hj212_mn not in stations.yaml", tc.station)
			}
			cut := i + j + strings.Index(text[i+j:], "\n") + 1
			line := strings.Count(text[:cut], "\n") + 1 + tc.at
			dir := t.TempDir()
			stations := filepath.Join(dir, "stations.yaml")
			if err := os.WriteFile(stations, []byte(text[:cut]+tc.add+text[cut:]), 0o644); err != nil {
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
