package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// HistoryQuery chooses the stored `reading` points History reads.
type HistoryQuery struct {
	After    time.Time // points after this time
	Through  time.Time // and up to this time; zero: up to the newest
	Fields   []string  // the fields to read (at least one)
	Stations []string  // only these stations; nil: every station
}

// History reads stored `reading` points through the InfluxQL /query
// endpoint (InfluxDB 1.8; 2.x and 3.x with a DBRP mapping), streamed in
// chunks: each is handed to each as it arrives, every station's rows in
// time order. rivermon uses it at start-up to rebuild its QC windows and
// ecological-flow days.
func (w *Writer) History(ctx context.Context, hq HistoryQuery, each func([]Row)) error {
	if len(hq.Fields) == 0 {
		return fmt.Errorf("influxdb history: no fields asked for")
	}
	fields := make([]string, len(hq.Fields))
	for i, f := range hq.Fields {
		fields[i] = strconv.Quote(f)
	}
	stmt := fmt.Sprintf("SELECT %s FROM reading WHERE time > %d", strings.Join(fields, ", "), hq.After.UnixNano())
	if !hq.Through.IsZero() {
		stmt += fmt.Sprintf(" AND time <= %d", hq.Through.UnixNano())
	}
	if hq.Stations != nil {
		if len(hq.Stations) == 0 {
			return nil
		}
		// Station ids are lower-case letters, digits and hyphens: nothing
		// to escape in a regular expression.
		stmt += " AND station =~ /^(" + strings.Join(hq.Stations, "|") + ")$/"
	}
	stmt += " GROUP BY station"
	db, rp, _ := strings.Cut(w.bucket, "/")
	q := url.Values{"db": {db}, "epoch": {"ns"}, "chunked": {"true"}, "chunk_size": {"10000"}, "q": {stmt}}
	if rp != "" {
		q.Set("rp", rp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(w.url, "/")+"/query?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if w.token != "" {
		req.Header.Set("Authorization", "Token "+w.token)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("influxdb history: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("influxdb history: %s", resp.Status)
	}
	// A chunked answer is a run of JSON documents, one per chunk.
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	for {
		var body struct {
			Results []struct {
				Error  string `json:"error"`
				Series []struct {
					Tags    map[string]string `json:"tags"`
					Columns []string          `json:"columns"`
					Values  [][]any           `json:"values"`
				} `json:"series"`
			} `json:"results"`
			Error string `json:"error"`
		}
		if err := dec.Decode(&body); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("influxdb history: %w", err)
		}
		if body.Error != "" {
			return fmt.Errorf("influxdb history: %s", body.Error)
		}
		var rows []Row
		for _, res := range body.Results {
			if res.Error != "" {
				return fmt.Errorf("influxdb history: %s", res.Error)
			}
			for _, sr := range res.Series {
				for _, vals := range sr.Values {
					row := Row{Station: sr.Tags["station"], Values: make(map[string]float64, len(sr.Columns)-1)}
					for i, col := range sr.Columns {
						n, ok := vals[i].(json.Number)
						if !ok {
							continue
						}
						if col == "time" {
							ns, err := strconv.ParseInt(string(n), 10, 64)
							if err != nil {
								return fmt.Errorf("influxdb history: time %q", n)
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
		if len(rows) > 0 {
			each(rows)
		}
	}
}
