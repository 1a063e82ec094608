package testenv

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Metric returns the value of one series of the Prometheus text exposition
// at url (rivermon's /metrics), written as it appears there, labels in name
// order: `rivermon_rejected_total{reason="bad_json"}`. A series that is
// not there fails the test, naming the series of that metric that are:
// reading 0 for it would let a renamed metric or label pass every
// assertion that nothing was counted. rivermon creates the series of its
// closed-enum labels at start-up, so such a counter reads 0 before anything
// is counted, and `== 0` asserts that it is there and nothing was.
func Metric(t testing.TB, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("metric %s: %v", series, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metric %s: GET %s: %s", series, url, resp.Status)
	}
	name, _, _ := strings.Cut(series, "{")
	var same []string // the series of the metric name
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			v, _, _ = strings.Cut(v, " ") // a timestamp may follow the value
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			same = append(same, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("metric %s: reading %s: %v", series, url, err)
	}
	if len(same) == 0 {
		t.Fatalf("metric %s: no series of %s at %s", series, name, url)
	}
	t.Fatalf("metric %s: no such series at %s; those of %s are:\n%s", series, url, name, strings.Join(same, "\n"))
	return 0
}
