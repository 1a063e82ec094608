// Package config loads the service configuration (CONTRACT §2): strict YAML,
// then RIVERMON_<SECTION>_<KEY> environment overrides, then *_file secrets,
// then checks, every problem reported with file and line.
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/rivermon/rivermon/internal/strictyaml"
)

// Config is the service configuration.
type Config struct {
	MQTT     MQTT     `yaml:"mqtt"`
	Influx   Influx   `yaml:"influx"`
	Spool    Spool    `yaml:"spool"`
	HTTP     HTTP     `yaml:"http"`
	Stations string   `yaml:"stations"`
	Rules    string   `yaml:"rules"`
	Alerting Alerting `yaml:"alerting"`
	HJ212    Listener `yaml:"hj212"`
	SL651    Listener `yaml:"sl651"`
	Timezone string   `yaml:"timezone"`

	// Location is Timezone loaded.
	Location *time.Location `yaml:"-"`
	// Warnings are what is allowed but likely a mistake, each with its
	// file and line; `rivermon check` prints them and still passes.
	Warnings strictyaml.Problems `yaml:"-"`
}

// MQTT is the broker connection.
type MQTT struct {
	URL          string   `yaml:"url"`
	URLs         []string `yaml:"urls"`
	ClientID     string   `yaml:"client_id"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	TopicPrefix  string   `yaml:"topic_prefix"`
	TLS          TLS      `yaml:"tls"`
}

// Brokers returns every broker URL, url first.
func (m MQTT) Brokers() []string {
	var out []string
	if m.URL != "" {
		out = append(out, m.URL)
	}
	return append(out, m.URLs...)
}

// TLS names the PEM files of a TLS connection.
type TLS struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Influx is the InfluxDB connection: the first output, and more under
// Outputs. Every output gets every point, each at its own pace (CONTRACT
// §7).
type Influx struct {
	// Name names the first output in metrics, /readyz and the log
	// (default "default").
	Name      string   `yaml:"name"`
	URL       string   `yaml:"url"`
	Token     string   `yaml:"token"`
	TokenFile string   `yaml:"token_file"`
	Org       string   `yaml:"org"`
	Bucket    string   `yaml:"bucket"`
	Outputs   []Output `yaml:"outputs"`
}

// Output is one InfluxDB server rivermon writes every point to.
type Output struct {
	Name      string `yaml:"name"`
	URL       string `yaml:"url"`
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	Org       string `yaml:"org"`
	Bucket    string `yaml:"bucket"` // default rivermon/autogen
}

// All returns every output, the first (influx.url…) first.
func (in Influx) All() []Output {
	first := Output{Name: in.Name, URL: in.URL, Token: in.Token, TokenFile: in.TokenFile, Org: in.Org, Bucket: in.Bucket}
	return append([]Output{first}, in.Outputs...)
}

// Spool is the durable local buffer.
type Spool struct {
	Dir      string `yaml:"dir"`
	MaxBytes int64  `yaml:"max_bytes"`
}

// HTTP is the listener of the metrics, the API and the operations page.
type HTTP struct {
	Listen string `yaml:"listen"`
	// ExternalURL is where people reach the operations page (a phone
	// cannot open 127.0.0.1): the link alerts carry to their station's
	// view. Empty: http:// and the address rivermon listens on.
	ExternalURL string `yaml:"external_url"`
	// AdminTokenFile holds the bearer token of the API calls that change
	// data (corrections, approvals, reprocess: CONTRACT §8, §12); they
	// answer 404 when it is empty.
	AdminTokenFile string `yaml:"admin_token_file"`
	// AdminToken is the file's content, without a trailing newline.
	AdminToken string `yaml:"-"`
}

// Alerting is where alerts go.
type Alerting struct {
	AlertmanagerURLs []string            `yaml:"alertmanager_urls"`
	Webhooks         []string            `yaml:"webhooks"`
	ResendInterval   strictyaml.Duration `yaml:"resend_interval"`
	MaxSampleAge     strictyaml.Duration `yaml:"max_sample_age"`
}

// Listener is a TCP listener of a field protocol (hj212: HJ 212-2017
// analysers; sl651: SL 651-2014 RTUs); off when Listen is empty.
type Listener struct {
	Listen         string              `yaml:"listen"`
	IdleTimeout    strictyaml.Duration `yaml:"idle_timeout"`
	MaxConnections int64               `yaml:"max_connections"`
	// FirstFrameTimeout closes a connection that has sent no valid frame
	// this long after it opened.
	FirstFrameTimeout strictyaml.Duration `yaml:"first_frame_timeout"`
	// MaxConnectionsPerAddress refuses more connections from one address.
	MaxConnectionsPerAddress int64 `yaml:"max_connections_per_address"`
}

func defaultListener() Listener {
	return Listener{IdleTimeout: strictyaml.Duration(10 * time.Minute), MaxConnections: 1000,
		FirstFrameTimeout: strictyaml.Duration(30 * time.Second), MaxConnectionsPerAddress: 200}
}

// Default returns the configuration used for keys a file leaves out.
func Default() Config {
	return Config{
		MQTT:     MQTT{TopicPrefix: "rivermon/v1"},
		Influx:   Influx{Name: "default", Bucket: "rivermon/autogen"},
		Spool:    Spool{Dir: "var/spool", MaxBytes: 1 << 30},
		HTTP:     HTTP{Listen: "127.0.0.1:9464"},
		Stations: "stations.yaml",
		Rules:    "rules.yaml",
		Alerting: Alerting{ResendInterval: strictyaml.Duration(time.Minute), MaxSampleAge: strictyaml.Duration(time.Hour)},
		HJ212:    defaultListener(),
		SL651:    defaultListener(),
		Timezone: "Asia/Shanghai",
	}
}

// LoadFile reads the configuration at path with the process environment.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Load(path, data, os.LookupEnv)
}

// Load parses data (from file) and applies overrides from env, which is
// os.LookupEnv in production. Relative paths (stations, rules, spool dir,
// TLS and secret files) resolve against the folder of file. The error, when
// not nil, is a strictyaml.Problems.
func Load(file string, data []byte, env func(string) (string, bool)) (*Config, error) {
	c := Default()
	root, ps := strictyaml.Decode(file, data, &c)
	if root == nil && len(ps) > 0 {
		return nil, ps.Err()
	}
	applyEnv(reflect.ValueOf(&c).Elem(), "RIVERMON", env, &ps)
	dir := filepath.Dir(file)
	resolve := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for _, p := range []*string{&c.Stations, &c.Rules, &c.Spool.Dir, &c.MQTT.PasswordFile, &c.Influx.TokenFile,
		&c.MQTT.TLS.CAFile, &c.MQTT.TLS.CertFile, &c.MQTT.TLS.KeyFile, &c.HTTP.AdminTokenFile} {
		resolve(p)
	}
	for i := range c.Influx.Outputs {
		resolve(&c.Influx.Outputs[i].TokenFile)
	}
	line := func(path ...string) int {
		n := root
		for _, k := range path[:len(path)-1] {
			n = strictyaml.Lookup(n, k)
		}
		if n == nil {
			return 0
		}
		return strictyaml.Line(n, path[len(path)-1])
	}
	readSecret := func(value *string, secretPath, key string, at int) {
		if secretPath == "" {
			return
		}
		if *value != "" {
			ps.Add(file, at, "%s and %s_file are both set; keep one", key, key)
			return
		}
		b, err := os.ReadFile(secretPath)
		if err != nil {
			ps.Add(file, at, "%s_file: %v", key, err)
			return
		}
		*value = strings.TrimRight(string(b), "\r\n")
	}
	readSecret(&c.MQTT.Password, c.MQTT.PasswordFile, "mqtt.password", line("mqtt", "password_file"))
	readSecret(&c.Influx.Token, c.Influx.TokenFile, "influx.token", line("influx", "token_file"))
	if p := c.HTTP.AdminTokenFile; p != "" {
		at := line("http", "admin_token_file")
		if b, err := os.ReadFile(p); err != nil {
			ps.Add(file, at, "http.admin_token_file: %v", err)
		} else if c.HTTP.AdminToken = strings.TrimSpace(string(b)); c.HTTP.AdminToken == "" {
			ps.Add(file, at, "http.admin_token_file %s is empty", p)
		}
	}
	// outputLine is the line of influx.outputs[i] (of its key, when found).
	outputLine := func(i int, key string) int {
		n := strictyaml.Lookup(strictyaml.Lookup(root, "influx"), "outputs")
		if n == nil || i >= len(n.Content) {
			return line("influx", "outputs")
		}
		if l := strictyaml.Line(n.Content[i], key); l > 0 {
			return l
		}
		return n.Content[i].Line
	}
	for i := range c.Influx.Outputs {
		o := &c.Influx.Outputs[i]
		if o.Bucket == "" {
			o.Bucket = "rivermon/autogen"
		}
		readSecret(&o.Token, o.TokenFile, fmt.Sprintf("influx.outputs[%d].token", i), outputLine(i, "token_file"))
	}

	brokers := c.MQTT.Brokers()
	if len(brokers) == 0 {
		ps.Add(file, line("mqtt", "url"), "mqtt.url is required")
	}
	for _, u := range brokers {
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || !oneOf(pu.Scheme, "tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss") {
			ps.Add(file, line("mqtt", "url"), "mqtt url %q: want tcp://host:port or ssl://host:port", u)
		}
	}
	if c.MQTT.ClientID == "" {
		ps.Add(file, line("mqtt", "client_id"), "mqtt.client_id is required: the persistent session belongs to it")
	}
	if c.MQTT.Username != "" && c.MQTT.ClientID != "" && c.MQTT.Username != c.MQTT.ClientID {
		// A broker that takes the user name as the client id (Mosquitto's
		// use_username_as_clientid, as configs/mosquitto sets it) keys the
		// persistent session by the user name, whatever client_id says.
		c.Warnings.Add(file, line("mqtt", "client_id"), "warning: mqtt.client_id %q differs from mqtt.username %q: "+
			"a broker with use_username_as_clientid (configs/mosquitto) keeps the session under %q; make them equal",
			c.MQTT.ClientID, c.MQTT.Username, c.MQTT.Username)
	}
	if c.MQTT.TopicPrefix == "" || strings.ContainsAny(c.MQTT.TopicPrefix, "+#") || strings.HasSuffix(c.MQTT.TopicPrefix, "/") {
		ps.Add(file, line("mqtt", "topic_prefix"), "mqtt.topic_prefix %q: want topic levels without wildcards or a trailing /", c.MQTT.TopicPrefix)
	}
	if (c.MQTT.TLS.CertFile == "") != (c.MQTT.TLS.KeyFile == "") {
		ps.Add(file, line("mqtt", "tls"), "mqtt.tls: cert_file and key_file go together")
	}
	if u, err := url.Parse(c.Influx.URL); c.Influx.URL == "" || err != nil || !oneOf(u.Scheme, "http", "https") || u.Host == "" {
		ps.Add(file, line("influx", "url"), "influx.url %q: want http://host:port", c.Influx.URL)
	}
	if c.Influx.Bucket == "" {
		ps.Add(file, line("influx", "bucket"), "influx.bucket is required")
	}
	if !validOutputName(c.Influx.Name) {
		ps.Add(file, line("influx", "name"), "influx.name %q: want lower-case letters, digits, - and _ (at most 32)", c.Influx.Name)
	}
	names := map[string]bool{c.Influx.Name: true}
	for i, o := range c.Influx.Outputs {
		key := fmt.Sprintf("influx.outputs[%d]", i)
		switch {
		case o.Name == "":
			ps.Add(file, outputLine(i, "name"), "%s.name is required", key)
		case !validOutputName(o.Name):
			ps.Add(file, outputLine(i, "name"), "%s.name %q: want lower-case letters, digits, - and _ (at most 32)", key, o.Name)
		case names[o.Name]:
			ps.Add(file, outputLine(i, "name"), "%s.name %q: another output has it (the first is influx.name, %q)", key, o.Name, c.Influx.Name)
		}
		names[o.Name] = true
		if u, err := url.Parse(o.URL); o.URL == "" || err != nil || !oneOf(u.Scheme, "http", "https") || u.Host == "" {
			ps.Add(file, outputLine(i, "url"), "%s.url %q: want http://host:port", key, o.URL)
		}
	}
	if c.Spool.Dir == "" {
		ps.Add(file, line("spool", "dir"), "spool.dir is required")
	}
	if c.Spool.MaxBytes < 1<<20 {
		ps.Add(file, line("spool", "max_bytes"), "spool.max_bytes %d is below 1 MiB", c.Spool.MaxBytes)
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		ps.Add(file, line("http", "listen"), "http.listen %q: want host:port", c.HTTP.Listen)
	}
	if u := c.HTTP.ExternalURL; u != "" {
		if pu, err := url.Parse(u); err != nil || !oneOf(pu.Scheme, "http", "https") || pu.Host == "" || pu.RawQuery != "" || pu.Fragment != "" {
			ps.Add(file, line("http", "external_url"), "http.external_url %q: want http(s)://host[:port][/path], without query or fragment", u)
		}
	}
	for _, l := range []struct {
		key string
		l   *Listener
	}{{"hj212", &c.HJ212}, {"sl651", &c.SL651}} {
		if l.l.Listen != "" {
			if _, _, err := net.SplitHostPort(l.l.Listen); err != nil {
				ps.Add(file, line(l.key, "listen"), "%s.listen %q: want host:port", l.key, l.l.Listen)
			}
		}
		if l.l.MaxConnections < 1 {
			ps.Add(file, line(l.key, "max_connections"), "%s.max_connections must be at least 1", l.key)
		}
		if l.l.MaxConnectionsPerAddress < 1 {
			ps.Add(file, line(l.key, "max_connections_per_address"), "%s.max_connections_per_address must be at least 1", l.key)
		}
		if l.l.IdleTimeout <= 0 {
			ps.Add(file, line(l.key, "idle_timeout"), "%s.idle_timeout must be above 0", l.key)
		}
		if l.l.FirstFrameTimeout <= 0 {
			ps.Add(file, line(l.key, "first_frame_timeout"), "%s.first_frame_timeout must be above 0", l.key)
		}
	}
	if c.Stations == "" {
		ps.Add(file, line("stations"), "stations is required")
	}
	if c.Rules == "" {
		ps.Add(file, line("rules"), "rules is required")
	}
	for _, u := range append(append([]string(nil), c.Alerting.AlertmanagerURLs...), c.Alerting.Webhooks...) {
		if pu, err := url.Parse(u); err != nil || !oneOf(pu.Scheme, "http", "https") || pu.Host == "" {
			ps.Add(file, line("alerting", "alertmanager_urls"), "alerting URL %q: want http://host:port", u)
		}
	}
	if c.Alerting.ResendInterval <= 0 {
		ps.Add(file, line("alerting", "resend_interval"), "alerting.resend_interval must be positive")
	}
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		ps.Add(file, line("timezone"), "timezone %q: %v", c.Timezone, err)
	}
	c.Location = loc
	if err := ps.Err(); err != nil {
		return nil, err
	}
	return &c, nil
}

// applyEnv sets every leaf field of v from the variable named prefix_PATH
// (upper case), e.g. RIVERMON_MQTT_URL or RIVERMON_ALERTING_ALERTMANAGER_URLS.
func applyEnv(v reflect.Value, prefix string, env func(string) (string, bool), ps *strictyaml.Problems) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || name == "" || !f.IsExported() {
			continue
		}
		key := prefix + "_" + strings.ToUpper(name)
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			applyEnv(fv, key, env, ps)
			continue
		}
		s, ok := env(key)
		if !ok {
			continue
		}
		if err := setFromString(fv, s); err != nil {
			ps.Add("environment", 0, "%s=%q: %v", key, s, err)
		}
	}
}

func setFromString(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case strictyaml.Duration:
		d, err := strictyaml.ParseDuration(s)
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		v.SetInt(n)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			// A list of sections (influx.outputs) is given as YAML, e.g.
			// RIVERMON_INFLUX_OUTPUTS='[{name: b, url: "http://b:8086"}]'.
			p := reflect.New(v.Type())
			if _, ps := strictyaml.Decode("", []byte(s), p.Interface()); len(ps) > 0 {
				return fmt.Errorf("want a YAML list such as [{name: b, url: \"http://b:8086\"}]: %s", ps[0].Msg)
			}
			v.Set(p.Elem())
			return nil
		}
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// validOutputName: an output's name is a label value and part of a file
// name in the spool folder.
func validOutputName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}
