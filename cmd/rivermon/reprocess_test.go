package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reprocessAPI stands for the service's POST /api/v1/reprocess: the bearer
// token, then {"station", "from", "to"} answered {"station", "points"}, or
// {"error"} with a 4xx; with stream, one progress line a day first, and
// the time taken.
func reprocessAPI(t *testing.T, token string, stream bool) *httptest.Server {
	fail := func(w http.ResponseWriter, status int, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": msg})
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/reprocess" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			fail(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		var req map[string]string
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req) != 3 {
			fail(w, http.StatusBadRequest, fmt.Sprintf("want {station, from, to}: %v %v", req, err))
			return
		}
		if req["station"] != "yarlung-dazhuka" {
			fail(w, http.StatusBadRequest, fmt.Sprintf("unknown station %q", req["station"]))
			return
		}
		from, _ := time.Parse(time.RFC3339, req["from"])
		to, _ := time.Parse(time.RFC3339, req["to"])
		days := int(to.Sub(from)/(24*time.Hour)) + 1
		points := 288 * days
		if !stream {
			json.NewEncoder(w).Encode(map[string]any{"station": req["station"], "points": points})
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for d := 1; d <= days; d++ {
			enc.Encode(map[string]int{"done": d, "total": days})
		}
		if req["to"] == "2025-01-31T00:00:00Z" {
			enc.Encode(map[string]any{"error": "influxdb query: 503 Service Unavailable", "points": 576})
			return
		}
		enc.Encode(map[string]any{"station": req["station"], "points": points, "seconds": 2.5})
	}))
}

// TestReprocessCommand: rivermon reprocess posts its request with the
// bearer token and prints the service's progress and result, or its
// message with status 1.
func TestReprocessCommand(t *testing.T) {
	const token = "s3cret"
	plain, streamed := reprocessAPI(t, token, false), reprocessAPI(t, token, true)
	defer plain.Close()
	defer streamed.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := func(srv *httptest.Server, args ...string) []string {
		return append([]string{"reprocess", "-url", srv.URL + "/", "-token-file", tokenFile}, args...)
	}
	year := []string{"-station", "yarlung-dazhuka", "-from", "2025-01-01T00:00:00+08:00", "-to", "2025-12-31T23:55:00+08:00"}
	for _, tc := range []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
	}{
		{"a year", cmd(plain, year...), 0,
			[]string{"reprocessed yarlung-dazhuka from 2025-01-01T00:00:00+08:00 to 2025-12-31T23:55:00+08:00: 105120 points rewritten in "}, nil},
		{"a year, with progress", cmd(streamed, year...), 0,
			[]string{"reprocessed yarlung-dazhuka from 2025-01-01T00:00:00+08:00 to 2025-12-31T23:55:00+08:00: 105120 points rewritten in 2.5 s\n"},
			[]string{"reprocess yarlung-dazhuka: 1 of 365 days\n", "reprocess yarlung-dazhuka: 37 of 365 days\n", "reprocess yarlung-dazhuka: 365 of 365 days\n"}},
		{"stopped midway", cmd(streamed, "-station", "yarlung-dazhuka", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-31T00:00:00Z"), 1,
			nil, []string{"rivermon reprocess: influxdb query: 503 Service Unavailable (576 points rewritten before it stopped; running it again is harmless)"}},
		{"unknown station", cmd(plain, "-station", "nowhere", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-02T00:00:00Z"), 1,
			nil, []string{`rivermon reprocess: 400 Bad Request: unknown station "nowhere"`}},
		{"no token", []string{"reprocess", "-url", plain.URL, "-station", "yarlung-dazhuka", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-02T00:00:00Z"}, 1,
			nil, []string{"rivermon reprocess: 401 Unauthorized: missing or wrong bearer token"}},
		{"not served", []string{"reprocess", "-url", plain.URL + "/elsewhere", "-token-file", tokenFile, "-station", "x", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-02T00:00:00Z"}, 1,
			nil, []string{"rivermon reprocess: 404 Not Found: 404 page not found"}},
		{"no token file", []string{"reprocess", "-token-file", filepath.Join(t.TempDir(), "none"), "-station", "x", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-02T00:00:00Z"}, 1,
			nil, []string{"rivermon reprocess: -token-file: open "}},
		{"missing flag", []string{"reprocess", "-station", "yarlung-dazhuka"}, 2, nil, []string{"-from and -to are required", "Usage: rivermon reprocess"}},
		{"bad time", []string{"reprocess", "-station", "x", "-from", "yesterday", "-to", "2025-01-02T00:00:00Z"}, 2, nil, []string{`-from "yesterday": want an RFC 3339 time`}},
		{"stray argument", []string{"reprocess", "-station", "x", "now"}, 2, nil, []string{`unexpected argument "now"`}},
		{"help", []string{"help", "reprocess"}, 0, []string{"Usage: rivermon reprocess", "-token-file", "POST /api/v1/reprocess"}, nil},
		{"-h", []string{"reprocess", "-h"}, 0, []string{"Usage: rivermon reprocess"}, nil},
		{"listed", []string{"help"}, 0, []string{"\n  reprocess "}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, &stdout, &stderr)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout has no %q:\n%s", w, &stdout)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr has no %q:\n%s", w, &stderr)
				}
			}
		})
	}
}
