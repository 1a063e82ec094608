package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Row is one stored `reading` point read back.
type Row struct {
	Station string
	Time    time.Time
	Values  map[string]float64 // every numeric field
}

// History reads the `reading` points stored since since, through the
// InfluxQL /query endpoint (InfluxDB 1.8; 2.x and 3.x with a DBRP mapping).
// rivermon uses it at start-up to rebuild its QC windows and
// ecological-flow days.
func (w *Writer) History(ctx context.Context, since time.Time) ([]Row, error) {
	db, rp, _ := strings.Cut(w.bucket, "/")
	q := url.Values{"db": {db}, "epoch": {"ns"},
		"q": {fmt.Sprintf("SELECT * FROM reading WHERE time > %d GROUP BY station", since.UnixNano())}}
	if rp != "" {
		q.Set("rp", rp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(w.url, "/")+"/query?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	if w.token != "" {
		req.Header.Set("Authorization", "Token "+w.token)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxdb history: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("influxdb history: %s", resp.Status)
	}
	var body struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Tags    map[string]string `json:"tags"`
				Columns []string          `json:"columns"`
				Values  [][]any           `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("influxdb history: %w", err)
	}
	var rows []Row
	for _, res := range body.Results {
		if res.Error != "" {
			return nil, fmt.Errorf("influxdb history: %s", res.Error)
		}
		for _, sr := range res.Series {
			for _, vals := range sr.Values {
				row := Row{Station: sr.Tags["station"], Values: map[string]float64{}}
				for i, col := range sr.Columns {
					n, ok := vals[i].(json.Number)
					if !ok {
						continue
					}
					if col == "time" {
						ns, err := strconv.ParseInt(string(n), 10, 64)
						if err != nil {
							return nil, fmt.Errorf("influxdb history: time %q", n)
						}
						row.Time = time.Unix(0, ns).UTC()
						continue
					}
					if f, err := n.Float64(); err == nil {
						row.Values[col] = f
					}
				}
				rows = append(rows, row)
			}
		}
	}
	return rows, nil
}
