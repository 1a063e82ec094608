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
	return w.Query(ctx, stmt, func(series []Series) {
		var rows []Row
		for _, sr := range series {
			for _, vals := range sr.Values {
				row := Row{Station: sr.Tags["station"], Time: sr.Time(vals), Values: make(map[string]float64, len(sr.Columns)-1)}
				for i, col := range sr.Columns {
					if f, ok := sr.Float(vals, i); ok && col != "time" {
						row.Values[col] = f
					}
				}
				rows = append(rows, row)
			}
		}
		if len(rows) > 0 {
			each(rows)
		}
	})
}

// Series is a part of an InfluxQL answer: one measurement and set of tags
// (by GROUP BY), its columns, and rows of values in the columns' order;
// time is the first column, in Unix nanoseconds.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Time is the time of a row.
func (s *Series) Time(row []any) time.Time {
	if len(row) == 0 {
		return time.Time{}
	}
	n, _ := row[0].(json.Number)
	ns, _ := strconv.ParseInt(string(n), 10, 64)
	return time.Unix(0, ns).UTC()
}

// Float is the number in column i of a row; false when it holds none.
func (s *Series) Float(row []any, i int) (float64, bool) {
	if i < 0 || i >= len(row) {
		return 0, false
	}
	n, ok := row[i].(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

// Column is the index of the column named name, or -1.
func (s *Series) Column(name string) int {
	for i, c := range s.Columns {
		if c == name {
			return i
		}
	}
	return -1
}

// Query runs an InfluxQL statement on the output's database through the
// /query endpoint (InfluxDB 1.8; 2.x and 3.x with a DBRP mapping), with
// times in nanoseconds and numbers exact, and hands each chunk of the
// answer to each as it arrives.
func (w *Writer) Query(ctx context.Context, stmt string, each func([]Series)) error {
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
		return fmt.Errorf("influxdb query: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("influxdb query: %s", resp.Status)
	}
	// A chunked answer is a run of JSON documents, one per chunk.
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	for {
		var body struct {
			Results []struct {
				Error  string   `json:"error"`
				Series []Series `json:"series"`
			} `json:"results"`
			Error string `json:"error"`
		}
		if err := dec.Decode(&body); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("influxdb query: %w", err)
		}
		if body.Error != "" {
			return fmt.Errorf("influxdb query: %s", body.Error)
		}
		var series []Series
		for _, res := range body.Results {
			if res.Error != "" {
				return fmt.Errorf("influxdb query: %s", res.Error)
			}
			series = append(series, res.Series...)
		}
		if len(series) > 0 {
			each(series)
		}
	}
}
