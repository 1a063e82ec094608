package curate

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/rivermon/rivermon/ingest/journal"
	"github.com/rivermon/rivermon/internal/reading"
	"github.com/rivermon/rivermon/internal/registry"
)

// Reprocessor recomputes the derived values of a station over a time
// range (CONTRACT §12: after a rating version or shift is added for the
// past) and says how many points it wrote.
type Reprocessor interface {
	Reprocess(ctx context.Context, station string, from, to time.Time, progress func(done, total int)) (n int, err error)
}

// maxBody bounds a request body of the API.
const maxBody = 64 << 10

// Register adds the API to mux: the export, open to all, and the calls
// that change data behind the bearer token (404 without one configured).
func (c *Curator) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/export", c.export)
	mux.HandleFunc("POST /api/v1/corrections", c.admin(c.postCorrection))
	mux.HandleFunc("DELETE /api/v1/corrections/{id}", c.admin(c.deleteCorrection))
	mux.HandleFunc("POST /api/v1/approvals", c.admin(c.postApproval))
	mux.HandleFunc("POST /api/v1/reprocess", c.admin(c.postReprocess))
}

// admin answers 404 when no token is configured and 401 without the
// right one; else it calls h.
func (c *Curator) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c.o.Token == "" {
			writeError(w, &Error{Status: http.StatusNotFound, Msg: "the data-changing API is off: http.admin_token_file is not set"})
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Constant time: the comparison must not tell how much of a
		// guess was right.
		if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(c.o.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rivermon"`)
			writeError(w, &Error{Status: http.StatusUnauthorized, Msg: "missing or wrong bearer token (Authorization: Bearer <http.admin_token_file>)"})
			return
		}
		h(w, r)
	}
}

// decode reads a JSON body into v, strictly: unknown keys and trailing
// data are errors, and a body over maxBody answers 413.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("body: over %d KiB", maxBody>>10)}
		}
		return badRequest("body: %v", err)
	}
	if dec.More() {
		return badRequest("body: more than one JSON object")
	}
	return nil
}

func (c *Curator) postCorrection(w http.ResponseWriter, r *http.Request) {
	var req Request
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	id, err := c.Correct(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (c *Curator) deleteCorrection(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := c.Undo(r.Context(), id); err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "undone": true})
}

func (c *Curator) postApproval(w http.ResponseWriter, r *http.Request) {
	var req ApprovalRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	days, err := c.Approve(r.Context(), req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"station": req.Station, "level": req.Level, "days": days})
}

// ReprocessRequest asks for a station's derived values to be recomputed.
type ReprocessRequest struct {
	Station string `json:"station"`
	From    string `json:"from"`
	To      string `json:"to"`
	// Author and Reason are recorded with it (optional).
	Author string `json:"author,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (c *Curator) postReprocess(w http.ResponseWriter, r *http.Request) {
	var req ReprocessRequest
	if err := decode(w, r, &req); err != nil {
		writeError(w, err)
		return
	}
	st, err := c.station(req.Station, "")
	if err != nil {
		writeError(w, err)
		return
	}
	from, err := parseTime("from", req.From)
	if err != nil {
		writeError(w, err)
		return
	}
	to, err := parseTime("to", req.To)
	if err != nil {
		writeError(w, err)
		return
	}
	if from.After(to) {
		writeError(w, badRequest("from %s is after to %s", req.From, req.To))
		return
	}
	if c.o.Reprocessor == nil {
		writeError(w, &Error{Status: http.StatusNotImplemented, Msg: "reprocessing is not available in this build"})
		return
	}
	// One at a time, and never while a correction of any station is
	// under way (c.mu): a correction made before is delivered before the
	// reprocess reads (its AwaitDelivered), and those of the station
	// wait for it to end.
	c.mu.Lock()
	if err := c.open(); err != nil {
		c.mu.Unlock()
		writeError(w, err)
		return
	}
	if c.reprocessing != "" {
		c.mu.Unlock()
		writeError(w, conflict("%v", ErrReprocessRunning))
		return
	}
	c.reprocessing = st.ID
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.reprocessing = ""
		c.mu.Unlock()
	}()
	// The range is the Reprocessor's to bound: a rating revised for the
	// past can reach back years.
	start := c.o.Now()
	// A client that accepts NDJSON (rivermon reprocess) is sent the
	// progress as it goes, {"done", "total"} days a line, then the result
	// or the error as the last line; the status, 200, is then sent with
	// the first progress. Others get one answer at the end.
	stream := &progressStream{w: w, on: strings.Contains(r.Header.Get("Accept"), "application/x-ndjson")}
	n, err := c.o.Reprocessor.Reprocess(r.Context(), st.ID, from, to, stream.progress)
	result := map[string]any{"station": st.ID, "points": n, "seconds": c.o.Now().Sub(start).Seconds()}
	if err == nil || n > 0 {
		c.o.Logger.Info("reprocess", "station", st.ID, "from", from, "to", to, "points", n, "err", err)
		id, rerr := c.recordReprocess(st, from, to, n, req.Author, req.Reason)
		result["id"] = id
		if err == nil {
			err = rerr
		}
	}
	switch {
	case stream.started && err != nil:
		result["error"] = err.Error()
		stream.line(result)
	case stream.started:
		stream.line(result)
	case errors.Is(err, ErrReprocessRequest):
		writeError(w, badRequest("%v", err))
	case errors.Is(err, ErrReprocessRunning):
		writeError(w, conflict("%v", err))
	case err != nil:
		writeError(w, err)
	default:
		writeJSON(w, http.StatusOK, result)
	}
}

// progressStream sends a reprocess's progress as lines of JSON.
type progressStream struct {
	w       http.ResponseWriter
	on      bool
	mu      sync.Mutex
	started bool
}

func (s *progressStream) progress(done, total int) {
	if !s.on {
		return
	}
	s.line(map[string]int{"done": done, "total": total})
}

// line writes one line, the status and headers before the first.
func (s *progressStream) line(v any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.w.Header().Set("Content-Type", "application/x-ndjson")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	enc := json.NewEncoder(s.w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// recordReprocess puts a reprocess done in the log (type "reprocess") and
// in the `correction` measurement (op "reprocess", param flow_rated_m3s,
// value the points rewritten), as every change of data is (CONTRACT §8).
// It cannot be undone by id: the curve in force decides, so its undo is
// the registry as it was and a reprocess.
func (c *Curator) recordReprocess(st *registry.Station, from, to time.Time, points int, author, reason string) (string, error) {
	if strings.TrimSpace(author) == "" {
		author = "rivermon reprocess"
	}
	if strings.TrimSpace(reason) == "" {
		reason = "rating curves or shifts of the registry applied again"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.open(); err != nil {
		return "", err
	}
	now := c.o.Now().UTC()
	k := &Correction{ID: "r" + strings.TrimPrefix(c.newID(now), "c"), Station: st.ID, River: st.River, Param: reading.FieldFlowRated,
		Op: OpReprocess, From: from, To: to, Value: float64(points), Author: author, Reason: reason, Made: now}
	if err := c.log.append(&logRecord{Type: "reprocess", At: now, Correction: k}); err != nil {
		return "", &Error{Status: 500, Msg: err.Error()}
	}
	if err := c.add([]journal.Entry{correctionEntry(k)}); err != nil {
		return k.ID, unavailable("the reprocess is done and recorded but its correction point could not be queued for InfluxDB (a start queues it): %v", err)
	}
	if err := c.log.append(&logRecord{Type: "queued", At: now}); err != nil {
		c.o.Logger.Error("the reprocess is recorded but not marked queued in the curation log; a start queues its record again", "err", err)
	}
	return k.ID, nil
}

// writeError answers err as {"error": "..."} with its status (500 when it
// is not an *Error).
func writeError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var e *Error
	if errors.As(err, &e) {
		status = e.Status
	}
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages quote "<http.admin_token_file>" and the like as they read
	_ = enc.Encode(v)
}
