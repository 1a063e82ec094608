package alerts

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

type savedInstance struct {
	Rule    string `json:"rule"`
	Station string `json:"station"`
	Param   string `json:"param,omitempty"`
	instance
}

type savedState struct {
	Instances []savedInstance      `json:"instances"`
	Heard     map[string]time.Time `json:"heard"`
}

// Save writes the state of every alert that is not inactive, and when each
// station was last heard from, to path atomically (write, fsync,
// rename), so that firing alerts survive a restart.
func (e *Evaluator) Save(path string) error {
	e.mu.Lock()
	st := savedState{Heard: map[string]time.Time{}}
	for _, in := range e.ordered {
		if in.State == StateInactive {
			continue
		}
		st.Instances = append(st.Instances, savedInstance{Rule: in.rule.Name, Station: in.station.ID, Param: in.param, instance: *in})
	}
	for k, v := range e.heard {
		st.Heard[k] = v
	}
	e.mu.Unlock()
	b, err := json.MarshalIndent(st, "", " ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("alert state: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("alert state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("alert state: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("alert state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("alert state: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Load restores what Save wrote. Instances of rules or stations that no
// longer exist are dropped. A missing file is no error.
func (e *Evaluator) Load(path string) (restored int, err error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("alert state: %w", err)
	}
	var st savedState
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("alert state %s: %w", path, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, v := range st.Heard {
		e.heard[k] = v
	}
	for _, si := range st.Instances {
		in := e.instances[key(si.Rule, si.Station, si.Param)]
		if in == nil {
			continue
		}
		rule, station, param := in.rule, in.station, in.param
		*in = si.instance
		in.bind(rule, station, param)
		if in.Announced && in.Posted.IsZero() {
			in.Posted = in.StartsAt // a state saved before Posted: it was
		}
		restored++
	}
	return restored, nil
}
