package curate

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/ingest/influx"
)

// parseBound reads an export bound: an RFC 3339 time, or a local day
// (YYYY-MM-DD: its start for from, its end for to).
func (c *Curator) parseBound(key, s string, end bool) (time.Time, error) {
	if len(s) == len(dayLayout) {
		d, err := c.parseDay(key, s)
		if err != nil {
			return d, err
		}
		if end {
			d = d.AddDate(0, 0, 1).Add(-time.Nanosecond)
		}
		return d.UTC(), nil
	}
	// An RFC 3339 time has no space: one is the '+' of an offset that
	// the query string decoded ("+08:00" not written %2B08:00).
	return parseTime(key, strings.ReplaceAll(s, " ", "+"))
}

// export answers GET /api/v1/export?station=&param=&from=&to=&format=csv:
// the station's values of param in [from, to] as CSV, streamed as
// InfluxDB answers in chunks.
func (c *Curator) export(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	st, err := c.station(q.Get("station"), q.Get("param"))
	if err == nil && q.Get("param") == "" {
		err = badRequest("param is required")
	}
	if err != nil {
		writeError(w, err)
		return
	}
	if f := q.Get("format"); f != "" && f != "csv" {
		writeError(w, badRequest("unknown format %q: want csv", f))
		return
	}
	from, err := c.parseBound("from", q.Get("from"), false)
	if err != nil {
		writeError(w, err)
		return
	}
	to, err := c.parseBound("to", q.Get("to"), true)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := checkRange(from, to); err != nil {
		writeError(w, err)
		return
	}
	param := q.Get("param")
	approved := c.approvedSet(st.ID)
	stmt := fmt.Sprintf("SELECT %q, %q, %q FROM reading WHERE station = '%s' AND time >= %d AND time <= %d",
		param, param+"_qc", param+"_raw", st.ID, from.UnixNano(), to.UnixNano())
	cw := csv.NewWriter(w)
	started := false
	start := func() {
		if started {
			return
		}
		started = true
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", st.ID+"_"+param+".csv"))
		w.WriteHeader(http.StatusOK)
		_ = cw.Write([]string{"time", "value", "qc", "raw", "approval"})
	}
	rec := make([]string, 5)
	err = c.o.Outputs[0].Store.Query(r.Context(), stmt, func(series []influx.Series) {
		start()
		for _, sr := range series {
			iv, iq, ir := sr.Column(param), sr.Column(param+"_qc"), sr.Column(param+"_raw")
			for _, vals := range sr.Values {
				v, ok := sr.Float(vals, iv)
				if !ok {
					continue
				}
				t := sr.Time(vals)
				rec[0] = t.Format(time.RFC3339Nano)
				rec[1] = strconv.FormatFloat(v, 'f', -1, 64)
				rec[2], rec[3] = "", ""
				if fl, ok := sr.Float(vals, iq); ok {
					rec[2] = strconv.FormatInt(int64(fl), 10)
				}
				if raw, ok := sr.Float(vals, ir); ok {
					rec[3] = strconv.FormatFloat(raw, 'f', -1, 64)
				}
				rec[4] = Provisional
				if approved[t.In(c.o.Location).Format(dayLayout)] {
					rec[4] = Approved
				}
				_ = cw.Write(rec)
			}
		}
		cw.Flush()
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	})
	if err != nil && !started {
		writeError(w, &Error{Status: http.StatusBadGateway, Msg: "reading InfluxDB: " + err.Error()})
		return
	}
	if err != nil {
		c.o.Logger.Error("export cut short", "station", st.ID, "param", param, "err", err)
		return
	}
	start()
	cw.Flush()
}
