package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Exec runs an InfluxQL statement that changes data (DELETE) on the
// output's database through POST /query (InfluxDB 1.8; 2.x with a DBRP
// mapping), which refuses such statements by GET.
func (w *Writer) Exec(ctx context.Context, stmt string) error {
	db, rp, _ := strings.Cut(w.bucket, "/")
	q := url.Values{"db": {db}, "q": {stmt}}
	if rp != "" {
		q.Set("rp", rp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(w.url, "/")+"/query",
		strings.NewReader(q.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w.token != "" {
		req.Header.Set("Authorization", "Token "+w.token)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("influxdb exec: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Results []struct {
			Error string `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	derr := json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		if body.Error != "" {
			return fmt.Errorf("influxdb exec: %s: %s", resp.Status, body.Error)
		}
		return fmt.Errorf("influxdb exec: %s", resp.Status)
	}
	if derr != nil {
		return fmt.Errorf("influxdb exec: %w", derr)
	}
	if body.Error != "" {
		return fmt.Errorf("influxdb exec: %s", body.Error)
	}
	for _, r := range body.Results {
		if r.Error != "" {
			return fmt.Errorf("influxdb exec: %s", r.Error)
		}
	}
	return nil
}
