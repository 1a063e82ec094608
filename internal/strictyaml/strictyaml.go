// Package strictyaml decodes YAML configuration strictly: unknown keys and type
// mismatches are reported, all at once, with the file and line where they
// stand, so that `rivermon check` can point an operator at every mistake in
// one run (the habit of prometheus model/rulefmt).
package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Problem is one mistake in a configuration file.
type Problem struct {
	File string
	Line int
	Msg  string
}

// String renders the problem on one line as FILE:LINE: message; a line
// break inside the message (a quoted multi-line value) is written as \n.
func (p Problem) String() string {
	msg := strings.ReplaceAll(p.Msg, "\n", `\n`)
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, msg)
	}
	return fmt.Sprintf("%s: %s", p.File, msg)
}

// Problems is every mistake found in one or more files; it is an error when
// not empty.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error, or nil when there are none.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].File != ps[j].File {
			return ps[i].File < ps[j].File
		}
		return ps[i].Line < ps[j].Line
	})
	return ps
}

// Add appends a problem at line.
func (ps *Problems) Add(file string, line int, format string, args ...any) {
	*ps = append(*ps, Problem{File: file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// AsProblems returns the problems behind err, or one problem naming file when
// err is some other error.
func AsProblems(file string, err error) Problems {
	if err == nil {
		return nil
	}
	var ps Problems
	if errors.As(err, &ps) {
		return ps
	}
	return Problems{{File: file, Msg: err.Error()}}
}

// Decode parses data (read from file) into v, a pointer to a struct. Keys that
// v has no field for are problems, as are values of the wrong type. The root
// node is returned so that callers can find lines for their own checks; it is
// nil when the document could not be parsed at all.
func Decode(file string, data []byte, v any) (*yaml.Node, Problems) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, Problems{parseProblem(file, err)}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, Problems{{File: file, Line: 1, Msg: "file is empty"}}
	}
	root := doc.Content[0]
	var ps Problems
	checkKeys(file, root, reflect.TypeOf(v).Elem(), "", &ps)
	if err := root.Decode(v); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, msg := range te.Errors {
				ps = append(ps, parseProblem(file, errors.New(msg)))
			}
		} else {
			ps = append(ps, parseProblem(file, err))
		}
	}
	return root, ps
}

var lineRE = regexp.MustCompile(`(?s)^(?:yaml: )?line (\d+): (.*)$`)

// parseProblem turns a yaml.v3 error such as "yaml: line 4: did not find
// expected key" into a Problem at that line.
func parseProblem(file string, err error) Problem {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: n, Msg: m[2]}
	}
	return Problem{File: file, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// checkKeys walks node beside type t and reports mapping keys that t has no
// field for. It follows structs, maps, slices and pointers.
func checkKeys(file string, node *yaml.Node, t reflect.Type, path string, ps *Problems) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode {
		return
	}
	if reflect.PointerTo(t).Implements(reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return
		}
		// Keys given twice are reported by yaml.v3 itself.
		fields := yamlFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, val := node.Content[i], node.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				ps.Add(file, k.Line, "unknown key %q", join(path, k.Value))
				continue
			}
			checkKeys(file, val, ft, join(path, k.Value), ps)
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			checkKeys(file, node.Content[i+1], t.Elem(), join(path, node.Content[i].Value), ps)
		}
	case reflect.Slice, reflect.Array:
		if node.Kind != yaml.SequenceNode {
			return
		}
		for i, el := range node.Content {
			checkKeys(file, el, t.Elem(), fmt.Sprintf("%s[%d]", path, i), ps)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the YAML key of each field of struct type t to its type.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// Lookup returns the value node under key in mapping node m, or nil.
func Lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// Line returns the line of key in mapping node m, else the line of m itself.
func Line(m *yaml.Node, key string) int {
	if m == nil {
		return 0
	}
	if m.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(m.Content); i += 2 {
			if m.Content[i].Value == key {
				return m.Content[i].Line
			}
		}
	}
	return m.Line
}

// Duration is a time.Duration written in YAML as Go duration text ("90s",
// "5m", "1h30m").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return TypeError(n, "a duration must be text such as 5m, not a %s", kindName(n.Kind))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return TypeError(n, "%v", err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ParseDuration parses Go duration text; a bare 0 is allowed.
func ParseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (want e.g. 30s, 5m, 1h)", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("negative duration %q", s)
	}
	return v, nil
}

// TypeError builds the error a yaml.Unmarshaler returns so that decoding goes
// on and the problem is reported with the others at n's line (yaml.v3 aborts
// the whole document on any other error type).
func TypeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %s", n.Line, fmt.Sprintf(format, args...))}}
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	default:
		return "value"
	}
}
