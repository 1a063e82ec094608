package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// correctFlags are the flags of rivermon correct.
type correctFlags struct {
	url, tokenFile, undo                                string
	station, param, op, from, to, value, author, reason string
	force                                               bool
}

func (c *correctFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "http://127.0.0.1:9464", "rivermon's HTTP `address` (http.listen)")
	fs.StringVar(&c.tokenFile, "token-file", "", "`file` holding the bearer token (http.admin_token_file); default $RIVERMON_ADMIN_TOKEN")
	fs.StringVar(&c.undo, "undo", "", "undo the correction with this `id`")
	fs.StringVar(&c.station, "station", "", "station `id`")
	fs.StringVar(&c.param, "param", "", "parameter `code`, e.g. level_m")
	fs.StringVar(&c.op, "op", "", "`op`: delete, set, offset or drift")
	fs.StringVar(&c.from, "from", "", "first `time` of the range, RFC 3339")
	fs.StringVar(&c.to, "to", "", "last `time` of the range, RFC 3339 (inclusive)")
	fs.StringVar(&c.value, "value", "", "the `number` of set, offset or drift")
	fs.StringVar(&c.author, "author", "", "who makes the correction")
	fs.StringVar(&c.reason, "reason", "", "why")
	fs.BoolVar(&c.force, "force", false, "correct approved days too, reopening them")
}

// correct calls POST /api/v1/corrections, or DELETE
// /api/v1/corrections/{id} with -undo, and prints the id or the server's
// error.
func correct(c correctFlags, stdout, stderr io.Writer) int {
	token := os.Getenv("RIVERMON_ADMIN_TOKEN")
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			fmt.Fprintf(stderr, "rivermon correct: -token-file: %v\n", err)
			return 1
		}
		token = strings.TrimSpace(string(b))
	}
	base := strings.TrimRight(c.url, "/")
	var req *http.Request
	var err error
	if c.undo != "" {
		req, err = http.NewRequest(http.MethodDelete, base+"/api/v1/corrections/"+url.PathEscape(c.undo), nil)
	} else {
		body := map[string]any{"station": c.station, "param": c.param, "op": c.op, "from": c.from, "to": c.to,
			"author": c.author, "reason": c.reason, "force": c.force}
		if c.value != "" {
			v, perr := strconv.ParseFloat(c.value, 64)
			if perr != nil {
				fmt.Fprintf(stderr, "rivermon correct: -value %q is not a number\n", c.value)
				return 1
			}
			body["value"] = v
		}
		b, _ := json.Marshal(body)
		req, err = http.NewRequest(http.MethodPost, base+"/api/v1/corrections", bytes.NewReader(b))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "rivermon correct: %v\n", err)
		return 1
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	// A correction of a year of 5-minute values reads and writes some
	// 100,000 points.
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "rivermon correct: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	var out struct {
		ID    string `json:"id"`
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_ = json.Unmarshal(b, &out)
	if resp.StatusCode/100 != 2 {
		msg := out.Error
		if msg == "" {
			msg = strings.TrimSpace(string(b))
		}
		fmt.Fprintf(stderr, "rivermon correct: %s: %s\n", resp.Status, msg)
		return 1
	}
	if c.undo != "" {
		fmt.Fprintln(stdout, "undone", c.undo)
		return 0
	}
	fmt.Fprintln(stdout, out.ID)
	return 0
}
