package curate

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func apiMux(t *testing.T) *http.ServeMux {
	t.Helper()
	s := newMemStore()
	seedLevels(t, testStation(t), s, 300)
	c := testCurator(t, filepath.Join(t.TempDir(), "curation.log"), &deliveringJournal{stores: []*memStore{s}}, "tok", s)
	t.Cleanup(func() { c.Close() })
	mux := http.NewServeMux()
	c.Register(mux)
	return mux
}

// An export bound with a UTC offset written as is in the query string
// ("+08:00", whose '+' the query decodes as a space) is read as meant.
func TestExportBoundWithAnOffsetUnescaped(t *testing.T) {
	mux := apiMux(t)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/export?station=s&param=level_m&from=2026-06-01T08:00:00+08:00&to=2026-06-01T08:20:00+08:00", nil))
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n"); len(lines) != 4 || !strings.HasPrefix(lines[1], "2026-06-01T00:00:00Z,") {
		t.Errorf("export:\n%s", w.Body)
	}
}

// A body over the API's bound answers 413 saying so.
func TestBodyOverTheBound(t *testing.T) {
	mux := apiMux(t)
	req := httptest.NewRequest("POST", "/api/v1/approvals", strings.NewReader(`{"reason": "`+strings.Repeat("x", maxBody)+`"}`))
	req.Header.Set("Authorization", "Bearer tok")
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	var out struct{ Error string }
	_ = json.Unmarshal(w.Body.Bytes(), &out)
	if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(out.Error, "64 KiB") {
		t.Errorf("%d %q, want 413 naming the bound", w.Code, out.Error)
	}
}
