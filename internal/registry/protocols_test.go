package registry

import (
	"testing"

	"github.com/rivermon/rivermon/internal/strictyaml"
)

// protocolRegistry is a registry of two stations, one and two, with extra
// keys under each (YAML lines indented by four). Station one's extra lines
// start at line 13, station two's at line 22 plus the number of one's.
func protocolRegistry(one, two string) string {
	station := func(id, extra string) string {
		return "  - id: " + id + "\n    name: 站\n    name_en: Station\n    river: nianchu\n    lat: 29.0\n    lon: 89.0\n" +
			"    elevation_m: 3900\n    params: [ph]\n    interval: 5m\n" + extra
	}
	return "rivers:\n  - {id: nianchu, name: 年楚河, name_en: Nianchu}\nstations:\n" + station("one", one) + station("two", two)
}

// TestProtocolKeys: each key of the field protocols, good and bad; a bad one
// is reported at its line, naming the station and the key.
func TestProtocolKeys(t *testing.T) {
	const mn1, mn2 = "    hj212_mn: \"540200000000000000SGX001\"\n", "    hj212_mn: \"540200000000000000SGX002\"\n"
	const badPW = `r.yaml:14: station one: hj212_pw must be 1 to 6 printable ASCII characters without space, ';', ',', '=' or '&' (HJ 212-2017 Table 3)`
	for _, tc := range []struct {
		name     string
		one, two string
		want     string // a problem; "" when the registry loads
	}{
		{name: "hj212_crc default", one: mn1},
		{name: "hj212_crc hj212", one: mn1 + "    hj212_crc: hj212\n"},
		{name: "hj212_crc modbus", one: mn1 + "    hj212_crc: modbus\n"},
		{name: "hj212_crc unknown", one: mn1 + "    hj212_crc: crc32\n",
			want: `r.yaml:14: station one: hj212_crc "crc32": want hj212 (the default) or modbus`},
		{name: "hj212_crc without hj212_mn", one: "    hj212_crc: modbus\n",
			want: `r.yaml:13: station one: hj212_crc is set but hj212_mn is not`},
		{name: "hj212_pw", one: mn1 + "    hj212_pw: \"123456\"\n"},
		{name: "hj212_pw one character", one: mn1 + "    hj212_pw: x\n"},
		{name: "hj212_pw punctuation", one: mn1 + "    hj212_pw: \"a#b!c~\"\n"},
		{name: "hj212_pw too long", one: mn1 + "    hj212_pw: \"1234567\"\n", want: badPW},
		{name: "hj212_pw empty string", one: mn1 + "    hj212_pw: \"\"\n"}, // not set
		{name: "hj212_pw with ;", one: mn1 + "    hj212_pw: \"12;456\"\n", want: badPW},
		{name: "hj212_pw with ,", one: mn1 + "    hj212_pw: \"12,456\"\n", want: badPW},
		{name: "hj212_pw with =", one: mn1 + "    hj212_pw: \"12=456\"\n", want: badPW},
		{name: "hj212_pw with &", one: mn1 + "    hj212_pw: \"12&456\"\n", want: badPW},
		{name: "hj212_pw with a space", one: mn1 + "    hj212_pw: \"12 456\"\n", want: badPW},
		{name: "hj212_pw not ASCII", one: mn1 + "    hj212_pw: \"密码\"\n", want: badPW},
		{name: "hj212_pw without hj212_mn", one: "    hj212_pw: \"123456\"\n",
			want: `r.yaml:13: station one: hj212_pw is set but hj212_mn is not`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("r.yaml", []byte(protocolRegistry(tc.one, tc.two)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("does not load: %v", err)
			case tc.want == "":
				return
			case err == nil:
				t.Fatalf("loads; want %q", tc.want)
			}
			ps := strictyaml.AsProblems("r.yaml", err)
			if len(ps) != 1 || ps[0].String() != tc.want {
				t.Errorf("problems:\n%v\nwant exactly\n%s", err, tc.want)
			}
		})
	}
}

func TestHJ212CRCDefault(t *testing.T) {
	r, err := Load("r.yaml", []byte(protocolRegistry("    hj212_mn: \"540200000000000000SGX001\"\n", "")))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Station("one").HJ212CRC; got != "hj212" {
		t.Errorf("hj212_crc not set: %q, want hj212", got)
	}
	if r.Station("two").HJ212CRC != "hj212" {
		t.Errorf("a station without an analyser: hj212_crc %q", r.Station("two").HJ212CRC)
	}
}
