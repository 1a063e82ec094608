package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Influx is a running InfluxDB 1.8 server.
type Influx struct {
	*Process
	URL string
}

// StartInflux starts influxd 1.8 with its data in a temporary folder and
// creates the database rivermon.
func StartInflux(t testing.TB) *Influx {
	t.Helper()
	bin := FindBinary(t, "influxd", "RIVERMON_INFLUXD")
	dir := t.TempDir()
	port, rpcPort := FreePort(t), FreePort(t)
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[http]
  bind-address = "127.0.0.1:%d"
  log-enabled = false
  flux-enabled = false
[logging]
  level = "warn"
`, rpcPort, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), port)
	confPath := filepath.Join(dir, "influxdb.conf")
	writeFile(t, confPath, conf)
	p := startProcess(t, "influxd", bin, port, filepath.Join(dir, "influxd.log"), "-config", confPath)
	in := &Influx{Process: p, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	in.Exec(t, "CREATE DATABASE rivermon")
	return in
}

// Series is one series of an InfluxQL answer.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Rows returns the series' rows as maps from column to value.
func (s Series) Rows() []map[string]any {
	out := make([]map[string]any, len(s.Values))
	for i, v := range s.Values {
		row := map[string]any{}
		for j, c := range s.Columns {
			row[c] = v[j]
		}
		for k, tv := range s.Tags {
			row[k] = tv
		}
		out[i] = row
	}
	return out
}

// Exec runs a statement that returns no data (CREATE, DROP).
func (in *Influx) Exec(t testing.TB, q string) {
	t.Helper()
	resp, err := http.PostForm(in.URL+"/query", url.Values{"q": {q}})
	if err != nil {
		t.Fatalf("influx %q: %v", q, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.Contains(string(b), `"error"`) {
		t.Fatalf("influx %q: %s %s", q, resp.Status, b)
	}
}

// Query runs an InfluxQL query against db with epoch-nanosecond times and
// returns the series of its single statement. Numbers come back as
// json.Number.
func (in *Influx) Query(db, q string) ([]Series, error) {
	u := in.URL + "/query?" + url.Values{"db": {db}, "q": {q}, "epoch": {"ns"}}.Encode()
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Series []Series `json:"series"`
			Error  string   `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("decode answer to %q: %w", q, err)
	}
	if out.Error != "" {
		return nil, fmt.Errorf("%q: %s", q, out.Error)
	}
	if len(out.Results) != 1 {
		return nil, fmt.Errorf("%q: %d results", q, len(out.Results))
	}
	if out.Results[0].Error != "" {
		return nil, fmt.Errorf("%q: %s", q, out.Results[0].Error)
	}
	return out.Results[0].Series, nil
}

// Count returns the number of points of field in measurement, 0 when there
// are none.
func (in *Influx) Count(t testing.TB, measurement, field, where string) int64 {
	t.Helper()
	q := fmt.Sprintf("SELECT count(%q) FROM %q", field, measurement)
	if where != "" {
		q += " WHERE " + where
	}
	ss, err := in.Query("rivermon", q)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) == 0 || len(ss[0].Values) == 0 {
		return 0
	}
	n, err := strconv.ParseInt(string(ss[0].Values[0][1].(json.Number)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Eventually polls cond every 50 ms until it holds or timeout passes, then
// fails the test with msg.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
