package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rivermon/rivermon/internal/hydro"
	"github.com/rivermon/rivermon/internal/testenv"
)

const (
	curStation = "nianchu-gyantse"
	curToken   = "s3cret-token"
)

// curT0 is the first point of the hand-made series: 08:00 local time on
// 1 June 2026.
var curT0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func curAt(i int) time.Time { return curT0.Add(time.Duration(i) * 10 * time.Minute) }

// seedSeries writes 8 points of nianchu-gyantse, 10 minutes apart: stage
// with its rated flow, pH, DO on every point, NH3-N on the first and the
// fifth, each flagged 1, class I.
func seedSeries(t *testing.T, in *testenv.Influx) {
	t.Helper()
	st := loadRegistry(t).Station(curStation)
	var lines []string
	for i := range 8 {
		h := 1.0 + 0.01*float64(i)
		q, err := hydro.RatedFlow(st, curAt(i), h)
		if err != nil {
			t.Fatal(err)
		}
		l := fmt.Sprintf("reading,river=nianchu,station=%s level_m=%v,level_m_qc=1i,flow_rated_m3s=%v,flow_rated_m3s_qc=1i,ph=7.5,ph_qc=1i,do_mgl=8,do_mgl_qc=1i,wq_class=1i",
			curStation, h, q)
		if i == 0 || i == 4 {
			l += ",nh3n_mgl=0.1,nh3n_mgl_qc=1i"
		}
		lines = append(lines, fmt.Sprintf("%s %d", l, curAt(i).UnixNano()))
	}
	writeLine(t, in, strings.Join(lines, "\n"))
}

// snapshot is every stored reading point of the station, whole: each
// point's time and fields. (SELECT * lists every field key the series ever
// had, as null where a point has none: those are left out.)
func snapshot(t *testing.T, in *testenv.Influx) string {
	t.Helper()
	ss, err := in.Query("rivermon", fmt.Sprintf("SELECT * FROM reading WHERE station = '%s' GROUP BY *", curStation))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%v\n", s.Tags)
		for _, row := range s.Values {
			for j, v := range row {
				if v != nil {
					fmt.Fprintf(&b, "%s=%v ", s.Columns[j], v)
				}
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// curField returns a field of the point at t, nil when absent.
func curField(t *testing.T, in *testenv.Influx, key string, at time.Time) any {
	t.Helper()
	ss, err := in.Query("rivermon", fmt.Sprintf("SELECT %q FROM reading WHERE station = '%s' AND time = %d", key, curStation, at.UnixNano()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) == 0 || len(ss[0].Values) == 0 {
		return nil
	}
	return ss[0].Values[0][1]
}

// num is a stored number as a float64.
func num(v any) float64 {
	n, ok := v.(json.Number)
	if !ok {
		return -1e300
	}
	f, _ := n.Float64()
	return f
}

// call makes an API call and returns its status and decoded JSON body.
func (s *service) call(method, path, token string, body any) (int, map[string]any) {
	s.t.Helper()
	var rd io.Reader
	if raw, ok := body.(json.RawMessage); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// correct makes a correction and returns its id.
func (s *service) correct(body map[string]any) string {
	s.t.Helper()
	body["author"], body["reason"] = "tester", "test"
	code, out := s.call("POST", "/api/v1/corrections", curToken, body)
	if code != http.StatusCreated {
		s.t.Fatalf("correction %v: %d %v", body, code, out)
	}
	return out["id"].(string)
}

func (s *service) undo(id string) {
	s.t.Helper()
	if code, out := s.call("DELETE", "/api/v1/corrections/"+id, curToken, nil); code != http.StatusOK {
		s.t.Fatalf("undo %s: %d %v", id, code, out)
	}
}

func rfc(t time.Time) string { return t.Format(time.RFC3339) }

// Every op changes exactly what it should, with the raw value kept and the
// derived values following, and its undo, after a restart of rivermon,
// puts back every stored point exactly as it was, `_raw` fields that were
// absent included. A correction under a later one that overlaps it is not
// undone before that one.
func TestCorrectionsUndoneExactlyAfterARestart(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in, in2 := testenv.StartInflux(t), testenv.StartInflux(t)
	seedSeries(t, in)
	seedSeries(t, in2)
	original := snapshot(t, in)
	spool := t.TempDir()
	// A second InfluxDB output gets every correction and undo too.
	so := serviceOptions{clientID: "rivermon-cur", spoolDir: spool, adminToken: curToken,
		outputs: fmt.Sprintf(`[{name: b, url: %q}]`, in2.URL)}
	svc := startServiceWith(t, mq, in, so)

	drift := svc.correct(map[string]any{"station": curStation, "param": "level_m", "op": "drift", "from": rfc(curAt(1)), "to": rfc(curAt(5)), "value": 0.4})
	set := svc.correct(map[string]any{"station": curStation, "param": "nh3n_mgl", "op": "set", "from": rfc(curAt(4)), "to": rfc(curAt(4)), "value": 2.5})
	offset := svc.correct(map[string]any{"station": curStation, "param": "ph", "op": "offset", "from": rfc(curAt(2)), "to": rfc(curAt(3)), "value": 0.3})
	del := svc.correct(map[string]any{"station": curStation, "param": "do_mgl", "op": "delete", "from": rfc(curAt(6)), "to": rfc(curAt(7))})

	st := loadRegistry(t).Station(curStation)
	testenv.Eventually(t, 10*time.Second, func() bool {
		return curField(t, in, "do_mgl_qc", curAt(7)) != nil && num(curField(t, in, "do_mgl_qc", curAt(7))) == 4
	},
		"the corrections did not reach InfluxDB")
	for i := range 8 {
		h := 1.0 + 0.01*float64(i)
		at := curAt(i)
		if i >= 1 && i <= 5 {
			want := h + 0.4*(float64(at.Sub(curAt(1)))/float64(curAt(5).Sub(curAt(1))))
			q, _ := hydro.RatedFlow(st, at, want)
			if got := num(curField(t, in, "level_m", at)); got != want {
				t.Errorf("point %d: level_m %v, want %v", i, got, want)
			}
			if got := num(curField(t, in, "level_m_raw", at)); got != h {
				t.Errorf("point %d: level_m_raw %v, want %v", i, got, h)
			}
			if got := num(curField(t, in, "level_m_qc", at)); got != 1 {
				t.Errorf("point %d: level_m_qc %v, want 1", i, got)
			}
			if got := num(curField(t, in, "flow_rated_m3s", at)); got != q {
				t.Errorf("point %d: flow_rated_m3s %v, want %v (rated from the corrected stage)", i, got, q)
			}
		} else if curField(t, in, "level_m_raw", at) != nil {
			t.Errorf("point %d outside the drift has level_m_raw", i)
		}
		wantClass := 1.0
		if i >= 4 {
			wantClass = 6 // NH3-N 2.5 mg/L stands for the samples of the next 4 h
		}
		if got := num(curField(t, in, "wq_class", at)); got != wantClass {
			t.Errorf("point %d: wq_class %v, want %v", i, got, wantClass)
		}
		wantPH := 7.5
		if i == 2 || i == 3 {
			wantPH = 7.5 + 0.3
		}
		if got := num(curField(t, in, "ph", at)); got != wantPH {
			t.Errorf("point %d: ph %v, want %v", i, got, wantPH)
		}
		if i >= 6 {
			if got, raw := num(curField(t, in, "do_mgl", at)), num(curField(t, in, "do_mgl_raw", at)); got != 8 || raw != 8 {
				t.Errorf("point %d: deleted do_mgl %v raw %v, want the value kept, 8 and 8", i, got, raw)
			}
		}
	}
	if got := num(curField(t, in, "nh3n_mgl", curAt(4))); got != 2.5 {
		t.Errorf("nh3n_mgl %v, want 2.5", got)
	}
	if n := in.Count(t, "correction", "id", ""); n != 4 {
		t.Errorf("%d correction points, want 4", n)
	}

	testenv.Eventually(t, 10*time.Second, func() bool { return snapshot(t, in2) == snapshot(t, in) }, "output b differs from the first")

	// Restart: the log is read back.
	svc.stop()
	svc = startServiceWith(t, mq, in, so)

	svc.undo(drift)
	code, out := svc.call("DELETE", "/api/v1/corrections/"+set, curToken, nil)
	if msg, _ := out["error"].(string); code != http.StatusConflict || !strings.Contains(msg, offset) || !strings.Contains(msg, del) {
		t.Errorf("undo of %s under later corrections: %d %v, want 409 naming %s and %s", set, code, out, offset, del)
	}
	svc.undo(del)
	svc.undo(offset)
	svc.undo(set)
	if code, _ := svc.call("DELETE", "/api/v1/corrections/"+set, curToken, nil); code != http.StatusConflict {
		t.Errorf("undo twice: %d, want 409", code)
	}
	awaitSnapshot(t, in, original, "after the undos")
	awaitSnapshot(t, in2, original, "after the undos, on output b,")

	// Stacked: the first raw stays raw.
	off := svc.correct(map[string]any{"station": curStation, "param": "level_m", "op": "offset", "from": rfc(curAt(0)), "to": rfc(curAt(1)), "value": 0.1})
	to2 := svc.correct(map[string]any{"station": curStation, "param": "level_m", "op": "set", "from": rfc(curAt(1)), "to": rfc(curAt(2)), "value": 2})
	testenv.Eventually(t, 10*time.Second, func() bool { return num(curField(t, in, "level_m", curAt(2))) == 2 }, "set not stored")
	if got, raw := num(curField(t, in, "level_m", curAt(1))), num(curField(t, in, "level_m_raw", curAt(1))); got != 2 || raw != 1.01 {
		t.Errorf("stacked: level_m %v raw %v, want 2 and the first raw 1.01", got, raw)
	}
	if got, raw := num(curField(t, in, "level_m", curAt(0))), num(curField(t, in, "level_m_raw", curAt(0))); got != 1.0+0.1 || raw != 1 {
		t.Errorf("offset: level_m %v raw %v, want 1.1 and 1", got, raw)
	}
	if code, out := svc.call("DELETE", "/api/v1/corrections/"+off, curToken, nil); code != http.StatusConflict || !strings.Contains(fmt.Sprint(out), to2) {
		t.Errorf("undo under a later set: %d %v, want 409 naming %s", code, out, to2)
	}
	svc.undo(to2)
	testenv.Eventually(t, 10*time.Second, func() bool { return num(curField(t, in, "level_m", curAt(1))) == 1.01+0.1 }, "set not undone")
	if raw := num(curField(t, in, "level_m_raw", curAt(1))); raw != 1.01 {
		t.Errorf("after undoing the set: level_m_raw %v, want 1.01", raw)
	}
	svc.undo(off)
	awaitSnapshot(t, in, original, "after undoing stacked corrections")
	awaitSnapshot(t, in2, original, "after undoing stacked corrections, on output b,")
	testenv.Eventually(t, 10*time.Second, func() bool { return in.Count(t, "correction", "id", "undone = true") == 6 },
		"not every correction point says undone")
}

// awaitSnapshot waits for the station's points to be want.
func awaitSnapshot(t *testing.T, in *testenv.Influx, want, when string) {
	t.Helper()
	var got string
	deadline := time.Now().Add(10 * time.Second)
	for got = snapshot(t, in); got != want && time.Now().Before(deadline); got = snapshot(t, in) {
		time.Sleep(50 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("%s the points differ from before the corrections:\n%s\nwant\n%s", when, got, want)
	}
}

// The calls that change data answer 404 without http.admin_token_file and
// 401 without its token; bad input answers 400 naming what is wrong, and
// changes nothing.
func TestCurationRefusals(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	seedSeries(t, in)
	original := snapshot(t, in)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-cur", adminToken: curToken})
	off := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-off"})

	good := func(edit func(m map[string]any)) json.RawMessage {
		m := map[string]any{"station": curStation, "param": "level_m", "op": "set", "from": rfc(curAt(1)), "to": rfc(curAt(2)),
			"value": 2.0, "author": "tester", "reason": "test"}
		if edit != nil {
			edit(m)
		}
		b, _ := json.Marshal(m)
		return b
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	approval := `{"station": "` + curStation + `", "from": "2026-06-01", "to": "2026-06-02", "level": "approved", "author": "a", "reason": "r"}`
	for _, c := range []struct {
		name         string
		svc          *service
		method, path string
		token        string
		body         json.RawMessage
		status       int
		msg          string
	}{
		{"off: correction", off, "POST", "/api/v1/corrections", curToken, good(nil), 404, "admin_token_file is not set"},
		{"off: undo", off, "DELETE", "/api/v1/corrections/c-1", curToken, nil, 404, "admin_token_file"},
		{"off: approval", off, "POST", "/api/v1/approvals", curToken, raw(approval), 404, "admin_token_file"},
		{"off: reprocess", off, "POST", "/api/v1/reprocess", curToken, raw(`{}`), 404, "admin_token_file"},
		{"no token", svc, "POST", "/api/v1/corrections", "", good(nil), 401, "bearer token"},
		{"wrong token", svc, "POST", "/api/v1/corrections", "s3cret-tokem", good(nil), 401, "bearer token"},
		{"undo without token", svc, "DELETE", "/api/v1/corrections/c-1", "", nil, 401, "bearer token"},
		{"approval without token", svc, "POST", "/api/v1/approvals", "", raw(approval), 401, "bearer token"},
		{"reprocess without token", svc, "POST", "/api/v1/reprocess", "x", raw(`{}`), 401, "bearer token"},
		{"unknown station", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["station"] = "nowhere" }), 400, `unknown station "nowhere"`},
		{"unknown param", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["param"] = "stage" }), 400, `unknown param "stage"`},
		{"param not reported", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["param"] = "rain_mm" }), 400, `does not report "rain_mm"`},
		{"from after to", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["from"] = rfc(curAt(3)) }), 400, "is after to"},
		{"over a year", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["from"] = "2025-05-31T00:00:00Z" }), 400, "over a year"},
		{"unknown op", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["op"] = "scale" }), 400, `unknown op "scale"`},
		{"NaN", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["value"] = "NaN" }), 400, "value"},
		{"Inf", svc, "POST", "/api/v1/corrections", curToken, raw(strings.Replace(string(good(nil)), `"value":2`, `"value":1e999`, 1)), 400, "value"},
		{"no value", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { delete(m, "value") }), 400, "value is required"},
		{"no author", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["author"] = " " }), 400, "author is required"},
		{"no reason", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { delete(m, "reason") }), 400, "reason is required"},
		{"bad time", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["to"] = "2026-06-01 00:20" }), 400, `to "2026-06-01 00:20" is not an RFC 3339 time`},
		{"unknown key", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["values"] = 1 }), 400, `unknown field "values"`},
		{"not JSON", svc, "POST", "/api/v1/corrections", curToken, raw(`station=x`), 400, "body"},
		{"no values in range", svc, "POST", "/api/v1/corrections", curToken, good(func(m map[string]any) { m["from"], m["to"] = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z" }), 400, "nothing to correct"},
		{"undo unknown", svc, "DELETE", "/api/v1/corrections/c-nope", curToken, nil, 404, `no correction "c-nope"`},
		{"bad day", svc, "POST", "/api/v1/approvals", curToken, raw(strings.Replace(approval, "2026-06-02", "2026-6-2", 1)), 400, `to "2026-6-2" is not a day`},
		{"days reversed", svc, "POST", "/api/v1/approvals", curToken, raw(strings.Replace(approval, "2026-06-02", "2026-05-02", 1)), 400, "is after to"},
		{"days over a year", svc, "POST", "/api/v1/approvals", curToken, raw(strings.Replace(approval, "2026-06-02", "2027-06-02", 1)), 400, "over a year"},
		{"unknown level", svc, "POST", "/api/v1/approvals", curToken, raw(strings.Replace(approval, `"approved"`, `"final"`, 1)), 400, `unknown level "final"`},
		{"approval without author", svc, "POST", "/api/v1/approvals", curToken, raw(strings.Replace(approval, `"author": "a"`, `"author": ""`, 1)), 400, "author is required"},
		{"reprocess: bad station", svc, "POST", "/api/v1/reprocess", curToken, raw(`{"station": "x", "from": "2026-06-01T00:00:00Z", "to": "2026-06-02T00:00:00Z"}`), 400, `unknown station "x"`},
		{"reprocess: reversed", svc, "POST", "/api/v1/reprocess", curToken, raw(`{"station": "` + curStation + `", "from": "2026-06-02T00:00:00Z", "to": "2026-06-01T00:00:00Z"}`), 400, "is after to"},
		{"export: unknown station", svc, "GET", "/api/v1/export?station=x&param=level_m&from=2026-06-01&to=2026-06-01", "", nil, 400, `unknown station "x"`},
		{"export: param not reported", svc, "GET", "/api/v1/export?station=" + curStation + "&param=rain_mm&from=2026-06-01&to=2026-06-01", "", nil, 400, "does not report"},
		{"export: bad from", svc, "GET", "/api/v1/export?station=" + curStation + "&param=level_m&from=yesterday&to=2026-06-01", "", nil, 400, `from "yesterday"`},
		{"export: reversed", svc, "GET", "/api/v1/export?station=" + curStation + "&param=level_m&from=2026-06-02&to=2026-06-01", "", nil, 400, "is after to"},
		{"export: format", svc, "GET", "/api/v1/export?station=" + curStation + "&param=level_m&from=2026-06-01&to=2026-06-01&format=xlsx", "", nil, 400, `unknown format "xlsx"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != nil {
				body = c.body
			}
			code, out := c.svc.call(c.method, c.path, c.token, body)
			msg, _ := out["error"].(string)
			if code != c.status || !strings.Contains(msg, c.msg) {
				t.Errorf("%s %s: %d %q, want %d with %q", c.method, c.path, code, msg, c.status, c.msg)
			}
		})
	}
	if got := snapshot(t, in); got != original {
		t.Errorf("refused calls changed the points:\n%s\nwant\n%s", got, original)
	}
	if n := in.Count(t, "correction", "id", "") + in.Count(t, "approval", "level", ""); n != 0 {
		t.Errorf("refused calls wrote %d correction or approval points", n)
	}
}

// An approved day refuses a correction without force (409) and is reopened
// by one with force; the export shows values, flags, raw values and the
// approval of each point's day.
func TestApprovalAndExport(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	seedSeries(t, in)
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-cur", adminToken: curToken})
	export := func(from, to string) string {
		t.Helper()
		code, body := svc.get("/api/v1/export?station=" + curStation + "&param=level_m&from=" + from + "&to=" + to + "&format=csv")
		if code != http.StatusOK {
			t.Fatalf("export: %d %s", code, body)
		}
		return body
	}
	want := "time,value,qc,raw,approval\n" +
		"2026-06-01T00:00:00Z,1,1,,provisional\n" +
		"2026-06-01T00:10:00Z,1.01,1,,provisional\n" +
		"2026-06-01T00:20:00Z,1.02,1,,provisional\n"
	if got := export("2026-06-01T00:00:00Z", "2026-06-01T00:20:00Z"); got != want {
		t.Errorf("export:\n%s\nwant\n%s", got, want)
	}

	code, out := svc.call("POST", "/api/v1/approvals", curToken, map[string]any{"station": curStation, "from": "2026-06-01", "to": "2026-06-01",
		"level": "approved", "author": "chief", "reason": "checked"})
	if code != http.StatusOK {
		t.Fatalf("approval: %d %v", code, out)
	}
	dayStart := time.Date(2026, 6, 1, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	level := func() string {
		ss, err := in.Query("rivermon", fmt.Sprintf("SELECT level, reason FROM approval WHERE station = '%s' AND time = %d", curStation, dayStart.UnixNano()))
		if err != nil || len(ss) == 0 || len(ss[0].Values) == 0 {
			return ""
		}
		return fmt.Sprint(ss[0].Values[0][1], " ", ss[0].Values[0][2])
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return level() == "approved checked" }, "approval point not stored")
	if got := export("2026-06-01T00:10:00Z", "2026-06-01T00:10:00Z"); got != "time,value,qc,raw,approval\n2026-06-01T00:10:00Z,1.01,1,,approved\n" {
		t.Errorf("export of an approved day:\n%s", got)
	}

	body := map[string]any{"station": curStation, "param": "level_m", "op": "set", "from": rfc(curAt(1)), "to": rfc(curAt(1)),
		"value": 2.0, "author": "tester", "reason": "gauge reset"}
	code, out = svc.call("POST", "/api/v1/corrections", curToken, body)
	if msg, _ := out["error"].(string); code != http.StatusConflict || !strings.Contains(msg, "2026-06-01") || !strings.Contains(msg, "force") {
		t.Errorf("correction of an approved day without force: %d %v, want 409 naming the day and force", code, out)
	}
	if v := num(curField(t, in, "level_m", curAt(1))); v != 1.01 {
		t.Errorf("a refused correction changed the value to %v", v)
	}
	body["force"] = true
	code, out = svc.call("POST", "/api/v1/corrections", curToken, body)
	if code != http.StatusCreated {
		t.Fatalf("forced correction: %d %v", code, out)
	}
	id := out["id"].(string)
	testenv.Eventually(t, 10*time.Second, func() bool { return level() == "provisional reopened by correction "+id }, "day not reopened: %q", level())
	testenv.Eventually(t, 10*time.Second, func() bool { return num(curField(t, in, "level_m", curAt(1))) == 2 }, "correction not stored")
	// The statistics follow: the hour is computed again from what is
	// stored, the corrected value in it (the stage that does so reads the
	// corrected points from the journal).
	testenv.Eventually(t, 10*time.Second, func() bool {
		ss, err := in.Query("rivermon", fmt.Sprintf("SELECT max, \"count\" FROM stats_hourly WHERE station = '%s' AND param = 'level_m' AND time = %d",
			curStation, curT0.UnixNano()))
		return err == nil && len(ss) > 0 && len(ss[0].Values) > 0 && num(ss[0].Values[0][1]) == 2 && num(ss[0].Values[0][2]) == 6
	}, "stats_hourly of the corrected hour not recomputed")
	want = "time,value,qc,raw,approval\n" +
		"2026-06-01T00:00:00Z,1,1,,provisional\n" +
		"2026-06-01T00:10:00Z,2,1,1.01,provisional\n" +
		"2026-06-01T00:20:00Z,1.02,1,,provisional\n" +
		"2026-06-01T00:30:00Z,1.03,1,,provisional\n" +
		"2026-06-01T00:40:00Z,1.04,1,,provisional\n" +
		"2026-06-01T00:50:00Z,1.05,1,,provisional\n" +
		"2026-06-01T01:00:00Z,1.06,1,,provisional\n" +
		"2026-06-01T01:10:00Z,1.07,1,,provisional\n"
	if got := export("2026-06-01", "2026-06-01"); got != want {
		t.Errorf("export of the local day after the correction:\n%s\nwant\n%s", got, want)
	}
}

// POST /api/v1/reprocess rates the stored stages again: a rated flow that
// does not match the rating is written again, one that does is left.
func TestReprocessThroughTheAPI(t *testing.T) {
	mq := testenv.StartMosquitto(t, testenv.MosquittoOptions{})
	in := testenv.StartInflux(t)
	seedSeries(t, in)
	want := num(curField(t, in, "flow_rated_m3s", curAt(3)))
	writeLine(t, in, fmt.Sprintf("reading,river=nianchu,station=%s flow_rated_m3s=1 %d", curStation, curAt(3).UnixNano()))
	spool := filepath.Join(t.TempDir(), "spool")
	svc := startServiceWith(t, mq, in, serviceOptions{clientID: "rivermon-cur", adminToken: curToken, spoolDir: spool})
	body := map[string]any{"station": curStation, "from": rfc(curAt(0)), "to": rfc(curAt(7))}
	code, out := svc.call("POST", "/api/v1/reprocess", curToken, body)
	if code != http.StatusOK || num(json.Number(fmt.Sprint(out["points"]))) < 1 {
		t.Fatalf("reprocess: %d %v, want 200 and the point rewritten", code, out)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return num(curField(t, in, "flow_rated_m3s", curAt(3))) == want },
		"flow_rated_m3s not rated again: %v, want %v", curField(t, in, "flow_rated_m3s", curAt(3)), want)
	// Recorded as every change of data is: a correction point (op
	// reprocess) and a line of the curation log, which a restart reads.
	id, _ := out["id"].(string)
	if !strings.HasPrefix(id, "r-") {
		t.Fatalf("reprocess id %q, want r-…", id)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		return in.Count(t, "correction", "id", fmt.Sprintf(`"op" = 'reprocess' AND "id" = '%s' AND "param" = 'flow_rated_m3s'`, id)) == 1
	}, "no correction point of the reprocess %s", id)
	b, err := os.ReadFile(filepath.Join(spool, "curation.log"))
	if err != nil || !strings.Contains(string(b), `"type":"reprocess"`) || !strings.Contains(string(b), id) {
		t.Fatalf("curation log (%v):\n%s", err, b)
	}

	// rivermon reprocess asks for NDJSON: the progress a day at a time,
	// then the result.
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", svc.base+"/api/v1/reprocess", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+curToken)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines, rerr := io.ReadAll(resp.Body)
	if rerr != nil {
		t.Fatalf("reading the NDJSON answer: %v (%q)", rerr, lines)
	}
	ls := strings.Split(strings.TrimSpace(string(lines)), "\n")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" || len(ls) < 2 ||
		!strings.HasPrefix(ls[0], `{"done":1,"total":`) || !strings.Contains(ls[len(ls)-1], `"points":0`) {
		t.Fatalf("NDJSON answer %d %s:\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), lines)
	}
}
