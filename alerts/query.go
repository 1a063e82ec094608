package alerts

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Active returns the alerts to send to Alertmanager at now: firing ones
// with recent evidence (a sample within max_sample_age, or a wall-clock
// rule), with endsAt = now + validFor, which marks them announced; and
// announced ones resolved within the retention, with their endsAt.
func (e *Evaluator) Active(now time.Time, validFor time.Duration) []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	for _, in := range e.ordered {
		switch {
		case in.State == StateFiring && !in.Evidence.IsZero() && (e.o.MaxSampleAge <= 0 || now.Sub(in.Evidence) <= e.o.MaxSampleAge):
			in.Announced = true
			if in.Posted.IsZero() {
				in.Posted = now
			}
			out = append(out, e.alertOf(in, StateFiring, now.Add(validFor)))
		case in.State == StateResolved && in.Announced && now.Sub(in.Resolved) <= e.o.ResolvedRetention:
			out = append(out, e.alertOf(in, StateResolved, time.Time{}))
		}
	}
	return out
}

// Firing returns every firing alert (for /api/v1/alerts).
func (e *Evaluator) Firing() []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []Alert{}
	for _, in := range e.ordered {
		if in.State == StateFiring {
			out = append(out, e.alertOf(in, StateFiring, time.Time{}))
		}
	}
	return out
}

// StationURL is the link to a station's view on the operations page; empty
// without Options.PageURL. Station ids are lower-case letters, digits and
// hyphens: nothing to escape.
func (e *Evaluator) StationURL(station string) string {
	if e.o.PageURL == "" {
		return ""
	}
	return e.o.PageURL + "#/station/" + station
}

// SilentStations returns the stations with a firing silent_for alert.
func (e *Evaluator) SilentStations() map[string]bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]bool{}
	for _, in := range e.silent {
		if in.State == StateFiring {
			out[in.station.ID] = true
		}
	}
	return out
}

// WorstLevel is the severity of the worst firing alert of a station: 0
// none, 1 info, 2 warning, 3 critical (for dashboards).
func (e *Evaluator) WorstLevel(station string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	level := 0
	for _, in := range e.byStation[station] {
		if in.State != StateFiring {
			continue
		}
		l := map[string]int{"info": 1, "warning": 2, "critical": 3}[in.rule.Severity]
		level = max(level, l)
	}
	return level
}

// CountFiring counts firing alerts by severity.
func (e *Evaluator) CountFiring() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[string]int{}
	for _, s := range Severities {
		out[s] = 0
	}
	for _, in := range e.instances {
		if in.State == StateFiring {
			out[in.rule.Severity]++
		}
	}
	return out
}

func (e *Evaluator) labelsOf(in *instance) map[string]string {
	r := in.rule
	labels := map[string]string{"alertname": r.Name, "station": in.station.ID, "river": in.station.River, "severity": r.Severity}
	if in.param != "" {
		labels["param"] = in.param
	}
	for k, v := range r.Labels {
		labels[k] = v
	}
	return labels
}

func (e *Evaluator) alertOf(in *instance, state string, endsAt time.Time) Alert {
	r := in.rule
	labels := e.labelsOf(in)
	data := map[string]any{
		"Station": in.station.ID, "StationName": in.station.NameEN, "StationNameZH": in.station.Name, "River": in.station.River,
		"Param": in.param, "Severity": r.Severity, "Value": format(in.LastValue), "Threshold": format(in.Threshold), "Labels": labels,
	}
	ann := map[string]string{"value": format(in.LastValue), "threshold": format(in.Threshold)}
	for _, k := range []string{"summary", "description"} {
		if t := e.templates[r.Name+"/"+k]; t != nil {
			var b bytes.Buffer
			if err := t.Execute(&b, data); err == nil {
				ann[k] = b.String()
			} else {
				ann[k] = fmt.Sprintf("template error: %v", err)
			}
		}
	}
	if ann["summary"] == "" && r.SilentFor > 0 {
		ann["summary"] = fmt.Sprintf("%s (%s): no data for %s", in.station.NameEN, in.station.ID, (time.Duration(in.LastValue) * time.Second).Round(time.Second))
	}
	if ann["summary"] == "" {
		ann["summary"] = fmt.Sprintf("%s at %s (%s): %s %s", r.Name, in.station.NameEN, in.station.ID, in.param, format(in.LastValue))
	}
	if ann["description"] == "" {
		ann["description"] = fmt.Sprintf("%s: %s = %s, threshold %s (%s, %s)", r.Name, nonEmpty(in.param, "value"), format(in.LastValue), format(in.Threshold), in.station.Name, in.station.River)
	}
	a := Alert{Status: state, Labels: labels, Annotations: ann, StartsAt: in.StartsAt, Fingerprint: Fingerprint(labels), GeneratorURL: e.StationURL(in.station.ID)}
	switch {
	case state == StateResolved:
		a.EndsAt = in.EndsAt
	case !endsAt.IsZero():
		a.EndsAt = endsAt
	}
	return a
}

func nonEmpty(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func format(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strings.TrimRight(strings.TrimRight(strconv.FormatFloat(v, 'f', 3, 64), "0"), ".")
}

// Unposted returns, as firing, the alerts that resolved before they were
// ever posted to Alertmanager firing (a replayed backlog fires and
// resolves an alert within moments), and marks them posted. Posted before
// the active set, they let Alertmanager notify the firing before it learns
// of the resolution; otherwise it would never notify either.
func (e *Evaluator) Unposted(now time.Time, validFor time.Duration) []Alert {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Alert
	for _, in := range e.ordered {
		if in.State != StateResolved || !in.Announced || !in.Posted.IsZero() || now.Sub(in.Resolved) > e.o.ResolvedRetention {
			continue
		}
		in.Posted = now
		out = append(out, e.alertOf(in, StateFiring, now.Add(validFor)))
	}
	return out
}

// PostedWithin is how long to wait before posting the active set so that
// no alert goes to Alertmanager resolved less than pause after it was
// first posted firing: a resolution that arrives before Alertmanager
// flushes the alert's group cancels the firing unseen.
func (e *Evaluator) PostedWithin(now time.Time, pause time.Duration) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var wait time.Duration
	for _, in := range e.ordered {
		if in.State == StateResolved && in.Announced && !in.Posted.IsZero() {
			wait = max(wait, pause-now.Sub(in.Posted))
		}
	}
	return wait
}
