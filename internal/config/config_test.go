package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func noEnv(string) (string, bool) { return "", false }

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestShippedConfigLoads(t *testing.T) {
	path := filepath.Join("..", "..", "configs", "rivermon.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, data, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.ClientID != "rivermon-1" || c.Influx.Bucket != "rivermon/autogen" || c.Location.String() != "Asia/Shanghai" ||
		time.Duration(c.Alerting.ResendInterval) != time.Minute || c.Stations != filepath.Join("..", "..", "configs", "stations.yaml") {
		t.Errorf("config %+v", c)
	}
}

func TestEnvironmentOverridesEveryKey(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "token")
	if err := os.WriteFile(secret, []byte("admin:s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(filepath.Join(dir, "rivermon.yaml"), []byte("mqtt: {url: tcp://a:1883, client_id: x}\ninflux: {url: http://a:8086}\n"), envOf(map[string]string{
		"RIVERMON_MQTT_URL":                   "ssl://broker:8883",
		"RIVERMON_MQTT_CLIENT_ID":             "rivermon-2",
		"RIVERMON_MQTT_TLS_CA_FILE":           "/etc/ca.pem",
		"RIVERMON_INFLUX_URL":                 "http://influx:8086",
		"RIVERMON_INFLUX_BUCKET":              "river/autogen",
		"RIVERMON_INFLUX_TOKEN_FILE":          secret,
		"RIVERMON_SPOOL_DIR":                  "/var/lib/rivermon",
		"RIVERMON_SPOOL_MAX_BYTES":            "2097152",
		"RIVERMON_HTTP_LISTEN":                "0.0.0.0:9464",
		"RIVERMON_HTTP_EXTERNAL_URL":          "https://ops.example.org/rivermon/",
		"RIVERMON_ALERTING_ALERTMANAGER_URLS": "http://am1:9093, http://am2:9093",
		"RIVERMON_ALERTING_RESEND_INTERVAL":   "30s",
		"RIVERMON_TIMEZONE":                   "UTC",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.URL != "ssl://broker:8883" || c.MQTT.ClientID != "rivermon-2" || c.MQTT.TLS.CAFile != "/etc/ca.pem" ||
		c.Influx.URL != "http://influx:8086" || c.Influx.Bucket != "river/autogen" || c.Influx.Token != "admin:s3cret" ||
		c.Spool.Dir != "/var/lib/rivermon" || c.Spool.MaxBytes != 2097152 || c.HTTP.Listen != "0.0.0.0:9464" ||
		c.HTTP.ExternalURL != "https://ops.example.org/rivermon/" ||
		strings.Join(c.Alerting.AlertmanagerURLs, " ") != "http://am1:9093 http://am2:9093" ||
		time.Duration(c.Alerting.ResendInterval) != 30*time.Second || c.Location != time.UTC {
		t.Errorf("overrides not applied: %+v", c)
	}
	if c.Stations != filepath.Join(dir, "stations.yaml") {
		t.Errorf("stations %q does not resolve against the config folder", c.Stations)
	}
}

func TestEveryProblemReportedWithItsLine(t *testing.T) {
	yml := `mqtt:
  url: http://broker
  client_id: ""
  qos: 2
influx:
  url: nowhere
  bucket: ""
spool: {dir: x, max_bytes: 10}
http: {listen: "9464", external_url: "ops.example.org"}
timezone: Mars/Olympus
alerting: {resend_interval: 0}
`
	_, err := Load("rivermon.yaml", []byte(yml), envOf(map[string]string{"RIVERMON_SPOOL_MAX_BYTES": "lots"}))
	if err == nil {
		t.Fatal("loaded")
	}
	got := err.Error()
	for _, want := range []string{
		`rivermon.yaml:4: unknown key "mqtt.qos"`,
		`rivermon.yaml:2: mqtt url "http://broker": want tcp://host:port or ssl://host:port`,
		`rivermon.yaml:3: mqtt.client_id is required`,
		`rivermon.yaml:6: influx.url "nowhere"`,
		`rivermon.yaml:7: influx.bucket is required`,
		`rivermon.yaml:9: http.listen "9464": want host:port`,
		`rivermon.yaml:9: http.external_url "ops.example.org": want http(s)://host[:port][/path]`,
		`rivermon.yaml:10: timezone "Mars/Olympus"`,
		`rivermon.yaml:11: alerting.resend_interval must be positive`,
		`environment: RIVERMON_SPOOL_MAX_BYTES="lots": not an integer`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestSecretGivenTwice(t *testing.T) {
	_, err := Load("c.yaml", []byte("mqtt: {url: tcp://a:1, client_id: x, password: p, password_file: /nonexistent}\ninflux: {url: http://a:1}\n"), noEnv)
	if err == nil || !strings.Contains(err.Error(), "c.yaml:1: mqtt.password and mqtt.password_file are both set") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte("mqtt: {url: tcp://a:1883, client_id: x}\ninflux: {url: http://a:8086}\n"))
	f.Add([]byte("mqtt:\n  urls: [tcp://a:1]\n  tls: {cert_file: a}\n"))
	f.Add([]byte("mqtt: {url: tcp://a:1883, client_id: x}\ninflux: {url: http://a:8086, name: a, outputs: [{name: b, url: http://b:1}, {}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Load("f.yaml", data, noEnv)
		if (c == nil) == (err == nil) {
			t.Fatalf("config %v and error %v", c, err)
		}
	})
}

// influx.outputs: more InfluxDB servers, each named, in the file or in
// RIVERMON_INFLUX_OUTPUTS as YAML; the first output is influx.url under
// influx.name ("default").
func TestInfluxOutputs(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "b-token"), []byte("tok-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yml := `mqtt: {url: tcp://a:1883, client_id: x}
influx:
  url: http://a:8086
  outputs:
    - {name: b, url: "http://b:8086", token_file: b-token, org: o}
    - name: c
      url: https://c:8086
      bucket: river
`
	c, err := Load(filepath.Join(dir, "rivermon.yaml"), []byte(yml), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	all := c.Influx.All()
	if len(all) != 3 || all[0].Name != "default" || all[0].URL != "http://a:8086" ||
		all[1] != (Output{Name: "b", URL: "http://b:8086", Token: "tok-b", TokenFile: filepath.Join(dir, "b-token"), Org: "o", Bucket: "rivermon/autogen"}) ||
		all[2] != (Output{Name: "c", URL: "https://c:8086", Bucket: "river"}) {
		t.Errorf("outputs %+v", all)
	}

	c, err = Load(filepath.Join(dir, "rivermon.yaml"), []byte("mqtt: {url: tcp://a:1883, client_id: x}\ninflux: {url: http://a:8086}\n"), envOf(map[string]string{
		"RIVERMON_INFLUX_NAME":    "main",
		"RIVERMON_INFLUX_OUTPUTS": `[{name: second, url: "http://127.0.0.1:18097"}]`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if all := c.Influx.All(); len(all) != 2 || all[0].Name != "main" || all[1].Name != "second" || all[1].URL != "http://127.0.0.1:18097" || all[1].Bucket != "rivermon/autogen" {
		t.Errorf("outputs from the environment: %+v", all)
	}

	bad := `mqtt: {url: tcp://a:1883, client_id: x}
influx:
  url: http://a:8086
  outputs:
    - {url: "http://b:8086"}
    - {name: default, url: "http://c:8086"}
    - {name: "D E", url: "http://d:8086"}
    - name: e
      url: "e:8086"
      tokn: x
`
	_, err = Load("rivermon.yaml", []byte(bad), envOf(map[string]string{"RIVERMON_INFLUX_OUTPUTS": "[{name: x, ur: y}]"}))
	if err == nil {
		t.Fatal("loaded")
	}
	for _, want := range []string{
		`rivermon.yaml:5: influx.outputs[0].name is required`,
		`rivermon.yaml:6: influx.outputs[1].name "default": another output has it`,
		`rivermon.yaml:7: influx.outputs[2].name "D E": want lower-case letters`,
		`rivermon.yaml:9: influx.outputs[3].url "e:8086": want http://host:port`,
		`rivermon.yaml:10: unknown key "influx.outputs[3].tokn"`,
		`environment: RIVERMON_INFLUX_OUTPUTS="[{name: x, ur: y}]": want a YAML list`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%s", want, err)
		}
	}
}

// http.admin_token_file: read at load, a problem naming the key when the
// file cannot be read or holds nothing.
func TestAdminTokenFile(t *testing.T) {
	dir := t.TempDir()
	good, empty := filepath.Join(dir, "admin-token"), filepath.Join(dir, "empty")
	if err := os.WriteFile(good, []byte("  t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "mqtt: {url: tcp://a:1883, client_id: x}\ninflux: {url: http://a:8086}\n"
	c, err := Load(filepath.Join(dir, "c.yaml"), []byte(base+"http: {admin_token_file: admin-token}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.AdminToken != "t0ken" || c.HTTP.AdminTokenFile != good {
		t.Errorf("token %q from %q", c.HTTP.AdminToken, c.HTTP.AdminTokenFile)
	}
	if c, err := Load(filepath.Join(dir, "c.yaml"), []byte(base), noEnv); err != nil || c.HTTP.AdminToken != "" {
		t.Errorf("without the key: token %q, err %v", c.HTTP.AdminToken, err)
	}
	for file, want := range map[string]string{
		"empty":   "c.yaml:3: http.admin_token_file " + empty + " is empty",
		"missing": "c.yaml:3: http.admin_token_file: open " + filepath.Join(dir, "missing"),
	} {
		_, err := Load(filepath.Join(dir, "c.yaml"), []byte(base+"http: {admin_token_file: "+file+"}\n"), noEnv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", file, err, want)
		}
	}
}
