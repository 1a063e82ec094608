package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// reprocessRequest is the body of POST /api/v1/reprocess (CONTRACT §12):
// times in RFC 3339, both ends inclusive.
type reprocessRequest struct {
	Station string `json:"station"`
	From    string `json:"from"`
	To      string `json:"to"`
}

// reprocessAnswer is what rivermon reprocess reads of the answer: one
// JSON object, {"points": n} (the points rewritten, with "seconds" when
// the service says how long it took), or {"error": "..."} with a status
// other than 200. A service may send progress first, objects of
// {"done": d, "total": t} (days), one a line, each as soon as it is known,
// and then the result, or an error when it stopped midway.
type reprocessAnswer struct {
	Done    int      `json:"done"`
	Total   int      `json:"total"`
	Points  *int     `json:"points"`
	Seconds *float64 `json:"seconds"`
	Error   string   `json:"error"`
}

// reprocessOptions are the flags of rivermon reprocess.
type reprocessOptions struct {
	station, from, to, url, tokenFile string
}

func reprocessFlags(o *reprocessOptions, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rivermon reprocess", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	fs.StringVar(&o.station, "station", "", "station `id` (required)")
	fs.StringVar(&o.from, "from", "", "start of the range, RFC 3339 `time` (required), e.g. 2026-06-01T00:00:00+08:00")
	fs.StringVar(&o.to, "to", "", "end of the range, RFC 3339 `time` (required; inclusive)")
	fs.StringVar(&o.url, "url", "http://127.0.0.1:9464", "rivermon's HTTP `address` (http.listen)")
	fs.StringVar(&o.tokenFile, "token-file", "", "`file` holding the bearer token (http.admin_token_file of the service)")
	return fs
}

func reprocessUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: rivermon reprocess -station ID -from TIME -to TIME [-url URL] [-token-file FILE]

Ask the running service to recompute the derived values of a station over a time
range (flow_rated_m3s from the stored stages with the registry's current rating
versions and shifts, then the ecological-flow days and statistics), after a rating
version or shift was added for the past: POST /api/v1/reprocess. Progress goes to
stderr, the result to stdout; on a refusal or failure the service's message is
printed and the exit status is 1.

Flags:
`)
	var o reprocessOptions
	fs := reprocessFlags(&o, w)
	fs.PrintDefaults()
}

// reprocessCommand runs rivermon reprocess with its arguments (after the
// command word) and returns the exit status.
func reprocessCommand(args []string, stdout, stderr io.Writer) int {
	var o reprocessOptions
	fs := reprocessFlags(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			reprocessUsage(stdout)
			return 0
		}
		fmt.Fprintln(stderr)
		reprocessUsage(stderr)
		return 2
	}
	mistake := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "rivermon reprocess: "+format+"\n\n", args...)
		reprocessUsage(stderr)
		return 2
	}
	if fs.NArg() > 0 {
		return mistake("unexpected argument %q", fs.Arg(0))
	}
	if o.station == "" || o.from == "" || o.to == "" {
		return mistake("-station, -from and -to are required")
	}
	req := reprocessRequest{Station: o.station, From: o.from, To: o.to}
	for _, f := range []struct{ name, v string }{{"-from", o.from}, {"-to", o.to}} {
		if _, err := time.Parse(time.RFC3339Nano, f.v); err != nil {
			return mistake("%s %q: want an RFC 3339 time such as 2026-06-01T00:00:00+08:00", f.name, f.v)
		}
	}
	token := ""
	if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "rivermon reprocess: -token-file: %v\n", err)
			return 1
		}
		token = strings.TrimSpace(string(b))
	}
	// Interrupted, the request ends and the service stops the reprocess
	// (what it rewrote stays; running it again is harmless).
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := postReprocess(ctx, strings.TrimRight(o.url, "/")+"/api/v1/reprocess", token, req, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "rivermon reprocess: %v\n", err)
		return 1
	}
	return 0
}

// postReprocess sends the request and follows the answer (see
// reprocessAnswer): progress to stderr, the result to stdout.
func postReprocess(ctx context.Context, url, token string, req reprocessRequest, stdout, stderr io.Writer) error {
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/x-ndjson, application/json") // progress as it goes
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	// No overall timeout: a reprocess of years takes minutes.
	started := time.Now()
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		var a reprocessAnswer
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &a) == nil && a.Error != "" {
			msg = a.Error
		}
		if msg == "" {
			msg = "(no message)"
		}
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	dec := json.NewDecoder(resp.Body)
	shown := -1 // the last tenth shown
	for {
		var a reprocessAnswer
		if err := dec.Decode(&a); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("the answer ended before the result: %w", err)
		}
		switch {
		case a.Error != "":
			if a.Points != nil {
				return fmt.Errorf("%s (%d points rewritten before it stopped; running it again is harmless)", a.Error, *a.Points)
			}
			return errors.New(a.Error)
		case a.Points != nil:
			secs := time.Since(started).Seconds()
			if a.Seconds != nil {
				secs = *a.Seconds
			}
			fmt.Fprintf(stdout, "reprocessed %s from %s to %s: %d points rewritten in %.1f s\n", req.Station,
				req.From, req.To, *a.Points, secs)
			return nil
		case a.Total > 0:
			// A line per tenth of the way: a year is 365 batches.
			if tenth := 10 * a.Done / a.Total; tenth > shown {
				shown = tenth
				fmt.Fprintf(stderr, "reprocess %s: %d of %d days\n", req.Station, a.Done, a.Total)
			}
		}
	}
}
