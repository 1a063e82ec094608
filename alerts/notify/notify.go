// Package notify delivers alerts: to every Alertmanager through its v2 API
// (POST /api/v2/alerts), and to webhooks in the Alertmanager webhook format
// (version 4), retrying with backoff.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/rivermon/rivermon/alerts"
)

// Counter counts a delivery result for a receiver kind.
type Counter func(receiver, result string)

// Alertmanager posts alerts to every configured Alertmanager; HA pairs of
// Alertmanager deduplicate them (peers.md §4.3: send to all, do not load
// balance).
type Alertmanager struct {
	URLs   []string
	Client *http.Client
	Log    *slog.Logger
	Count  Counter
	// Attempts per URL and send (default 3).
	Attempts int
}

type postable struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Send posts alerts to each Alertmanager; the error lists those that failed
// after every attempt.
func (a *Alertmanager) Send(ctx context.Context, as []alerts.Alert) error {
	if len(as) == 0 || len(a.URLs) == 0 {
		return nil
	}
	body := make([]postable, len(as))
	for i, x := range as {
		body[i] = postable{Labels: x.Labels, Annotations: x.Annotations, StartsAt: x.StartsAt, GeneratorURL: x.GeneratorURL}
		if !x.EndsAt.IsZero() {
			body[i].EndsAt = x.EndsAt
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return deliver(ctx, a.Client, "alertmanager", a.URLs, func(u string) string { return strings.TrimRight(u, "/") + "/api/v2/alerts" },
		b, a.Attempts, a.Count, func(u string, err error) {
			a.Log.Warn("alertmanager did not take the alerts; they are sent again at the next resend", "url", u, "err", err)
		})
}

// deliver posts body to every URL (as endpoint makes it) and counts each
// result under receiver.
func deliver(ctx context.Context, client *http.Client, receiver string, urls []string, endpoint func(string) string,
	body []byte, attempts int, count Counter, logFailure func(string, error)) error {
	var failed []string
	for _, u := range urls {
		if err := post(ctx, client, endpoint(u), body, attempts); err != nil {
			count(receiver, "failure")
			logFailure(u, err)
			failed = append(failed, u)
			continue
		}
		count(receiver, "success")
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s %s: not delivered", receiver, strings.Join(failed, ", "))
	}
	return nil
}

// Webhook posts transitions in the Alertmanager webhook format.
type Webhook struct {
	URLs     []string
	Client   *http.Client
	Log      *slog.Logger
	Count    Counter
	Attempts int // default 5
}

// Body is the Alertmanager webhook payload (version 4).
type Body struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []alerts.Alert    `json:"alerts"`
}

// NewBody builds the webhook body of alerts.
func NewBody(as []alerts.Alert) Body {
	b := Body{Version: "4", Status: alerts.StateResolved, Receiver: "rivermon", GroupLabels: map[string]string{},
		CommonLabels:      common(as, func(a alerts.Alert) map[string]string { return a.Labels }),
		CommonAnnotations: common(as, func(a alerts.Alert) map[string]string { return a.Annotations }),
		Alerts:            as}
	for _, a := range as {
		if a.Status == alerts.StateFiring {
			b.Status = alerts.StateFiring
		}
	}
	keys := make([]string, 0, len(as))
	for _, a := range as {
		keys = append(keys, a.Fingerprint)
	}
	b.GroupKey = "{}:{fingerprints=\"" + strings.Join(keys, ",") + "\"}"
	return b
}

func common(as []alerts.Alert, get func(alerts.Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(as) == 0 {
		return out
	}
	for k, v := range get(as[0]) {
		same := true
		for _, a := range as[1:] {
			if get(a)[k] != v {
				same = false
				break
			}
		}
		if same {
			out[k] = v
		}
	}
	return out
}

// Send posts the alerts to every webhook.
func (w *Webhook) Send(ctx context.Context, as []alerts.Alert) error {
	if len(as) == 0 || len(w.URLs) == 0 {
		return nil
	}
	b, err := json.Marshal(NewBody(as))
	if err != nil {
		return err
	}
	attempts := w.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	return deliver(ctx, w.Client, "webhook", w.URLs, func(u string) string { return u }, b, attempts, w.Count,
		func(u string, err error) {
			w.Log.Error("webhook did not take the alert notification", "url", u, "err", err)
		})
}

// post sends body to url, retrying transport errors and 5xx/429 answers
// with backoff (0.5 s, 1 s, 2 s …).
func post(ctx context.Context, client *http.Client, url string, body []byte, attempts int) error {
	if attempts <= 0 {
		attempts = 3
	}
	var last error
	for i := range attempts {
		if i > 0 {
			t := time.NewTimer(500 * time.Millisecond << (i - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
			return last // the receiver refuses this body: retrying will not help
		}
	}
	return last
}
