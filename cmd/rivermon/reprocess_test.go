package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/curate"
	"github.com/rivermon/rivermon/internal/registry"
)

// storedDays answers a reprocess's queries with a stage every hour of the
// range asked, rated with nothing yet.
type storedDays struct{}

func (storedDays) Query(_ context.Context, stmt string, each func([]influx.Series)) error {
	var from, to int64
	if _, err := fmt.Sscanf(stmt[strings.Index(stmt, "time >= "):], "time >= %d AND time < %d", &from, &to); err != nil {
		return err
	}
	s := influx.Series{Name: "reading", Tags: map[string]string{"river": "yarlung"}, Columns: []string{"time", "level_m", "level_m_qc"}}
	for t := from; t < to; t += int64(time.Hour) {
		s.Values = append(s.Values, []any{json.Number(fmt.Sprint(t)), json.Number("2.5"), json.Number("1")})
	}
	each([]influx.Series{s})
	return nil
}

// journalled takes every record.
type journalled struct{ n int }

func (j *journalled) Add(rec *journal.Record) error { j.n += len(rec.Entries); return nil }
func (j *journalled) Bytes() int64                  { return 0 }

// TestReprocessCommand: rivermon reprocess posts its request with the
// bearer token and prints the service's progress and result, or its
// message with status 1.
func TestReprocessCommand(t *testing.T) {
	reg, err := registry.LoadFile(filepath.Join("..", "..", "configs", "stations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rp := curate.NewReprocessor(curate.ReprocessorOptions{Registry: reg, Store: storedDays{}, Journal: &journalled{}, Logger: slog.New(slog.DiscardHandler)})
	const token = "s3cret"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/reprocess" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, `{"error": "missing or wrong bearer token"}`, http.StatusUnauthorized)
			return
		}
		rp.Handler().ServeHTTP(w, r)
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"reprocess", "-url", srv.URL, "-token-file", tokenFile}
	for _, tc := range []struct {
		name           string
		args           []string
		code           int
		stdout, stderr []string
	}{
		{"a year", append(base, "-station", "yarlung-dazhuka", "-from", "2025-01-01T00:00:00+08:00", "-to", "2025-12-31T23:55:00+08:00"), 0,
			[]string{"reprocessed yarlung-dazhuka from 2025-01-01T00:00:00+08:00 to 2025-12-31T23:55:00+08:00: 8760 points rewritten in "},
			[]string{"reprocess yarlung-dazhuka: 1 of 365 days", "reprocess yarlung-dazhuka: 365 of 365 days"}},
		{"unknown station", append(base, "-station", "nowhere", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-02T00:00:00Z"), 1,
			nil, []string{`rivermon reprocess: 400 Bad Request: reprocess: unknown station "nowhere"`}},
		{"backwards", append(base, "-station", "yarlung-dazhuka", "-from", "2025-01-02T00:00:00Z", "-to", "2025-01-01T00:00:00Z"), 1,
			nil, []string{"400 Bad Request: reprocess: to 2025-01-01T00:00:00Z is before from 2025-01-02T00:00:00Z"}},
		{"no token", []string{"reprocess", "-url", srv.URL, "-station", "yarlung-dazhuka", "-from", "2025-01-01T00:00:00Z", "-to", "2025-01-02T00:00:00Z"}, 1,
			nil, []string{"401 Unauthorized: missing or wrong bearer token"}},
		{"missing flag", []string{"reprocess", "-station", "yarlung-dazhuka"}, 2, nil, []string{"-from and -to are required", "Usage: rivermon reprocess"}},
		{"bad time", []string{"reprocess", "-station", "x", "-from", "yesterday", "-to", "2025-01-02T00:00:00Z"}, 2, nil, []string{`-from "yesterday": want an RFC 3339 time`}},
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
