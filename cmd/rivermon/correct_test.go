package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rivermon correct sends the correction with the token and prints the id;
// -undo sends the DELETE; the server's error is printed with exit 1.
func TestCorrectCommand(t *testing.T) {
	var got struct {
		method, path, auth string
		body               map[string]any
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.auth = r.Method, r.URL.Path, r.Header.Get("Authorization")
		got.body = nil
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got.body)
		switch {
		case r.Method == "POST" && got.body["op"] == "scale":
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"error": "unknown op \"scale\": want delete, set, offset or drift"}`)
		case r.Method == "POST":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"id": "c-abc"}`)
		default:
			io.WriteString(w, `{"id": "c-abc", "undone": true}`)
		}
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"correct", "-url", srv.URL, "-token-file", tokenFile}
	var stdout, stderr bytes.Buffer
	code := run(append(common, "-station", "s", "-param", "level_m", "-op", "offset", "-from", "2026-06-01T00:00:00Z",
		"-to", "2026-06-01T01:00:00Z", "-value", "-0.05", "-author", "a", "-reason", "r", "-force"), &stdout, &stderr)
	if code != 0 || stdout.String() != "c-abc\n" {
		t.Errorf("correct: exit %d, stdout %q, stderr %q", code, &stdout, &stderr)
	}
	if got.method != "POST" || got.path != "/api/v1/corrections" || got.auth != "Bearer tok" ||
		got.body["value"] != -0.05 || got.body["force"] != true || got.body["station"] != "s" || got.body["to"] != "2026-06-01T01:00:00Z" {
		t.Errorf("request %+v", got)
	}
	stdout.Reset()
	if code := run(append(common, "-undo", "c-abc"), &stdout, &stderr); code != 0 || got.method != "DELETE" || got.path != "/api/v1/corrections/c-abc" {
		t.Errorf("undo: exit %d, %s %s", code, got.method, got.path)
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(append(common, "-station", "s", "-op", "scale"), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), `400 Bad Request: unknown op "scale"`) {
		t.Errorf("error: exit %d, stderr %q", code, &stderr)
	}
	stderr.Reset()
	if code := run(append(common, "-value", "x"), &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), `-value "x" is not a number`) {
		t.Errorf("bad value: exit %d, stderr %q", code, &stderr)
	}
}
