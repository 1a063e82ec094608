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
	const badSL651PW = `r.yaml:14: station one: sl651_password must be 4 hex digits (2 bytes, SL 651-2014 §6.2.3)`
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
		{name: "hj212_mn unique", one: mn1, two: mn2},
		{name: "hj212_mn of another station", one: mn1, two: mn1,
			want: `r.yaml:23: station two: hj212_mn "540200000000000000SGX001" is already station one's`},
		{name: "hj212_mn hex", one: "    hj212_mn: \"010000A8900016F000169DC0\"\n"},
		{name: "hj212_mn 23 characters", one: "    hj212_mn: \"54020000000000000SGX001\"\n",
			want: `r.yaml:13: station one: hj212_mn "54020000000000000SGX001": want 24 letters and digits (HJ 212-2017 Table 3)`},
		{name: "hj212_mn 25 characters", one: "    hj212_mn: \"5402000000000000000SGX001\"\n",
			want: `r.yaml:13: station one: hj212_mn "5402000000000000000SGX001": want 24 letters and digits (HJ 212-2017 Table 3)`},
		{name: "hj212_mn with a dash", one: "    hj212_mn: \"54020000000000000-SGX001\"\n",
			want: `r.yaml:13: station one: hj212_mn "54020000000000000-SGX001": want 24 letters and digits (HJ 212-2017 Table 3)`},
		{name: "sl651_address", one: "    sl651_address: \"0012345678\"\n", two: "    sl651_address: 00123456AB\n"},
		{name: "sl651_address 9 digits", one: "    sl651_address: \"001234567\"\n",
			want: `r.yaml:13: station one: sl651_address "001234567": want 10 hex digits (5 bytes, SL 651-2014 §6.2.3)`},
		{name: "sl651_address 11 digits", one: "    sl651_address: \"00123456789\"\n",
			want: `r.yaml:13: station one: sl651_address "00123456789": want 10 hex digits (5 bytes, SL 651-2014 §6.2.3)`},
		{name: "sl651_address not hex", one: "    sl651_address: \"001234567G\"\n",
			want: `r.yaml:13: station one: sl651_address "001234567G": want 10 hex digits (5 bytes, SL 651-2014 §6.2.3)`},
		{name: "sl651_address of another station in the other case", one: "    sl651_address: \"00123456ab\"\n", two: "    sl651_address: \"00123456AB\"\n",
			want: `r.yaml:23: station two: sl651_address "00123456AB" is already station one's`},
		{name: "sl651_password", one: "    sl651_address: \"0012345678\"\n    sl651_password: \"1a2B\"\n"},
		{name: "sl651_password 3 digits", one: "    sl651_address: \"0012345678\"\n    sl651_password: \"123\"\n", want: badSL651PW},
		{name: "sl651_password 5 digits", one: "    sl651_address: \"0012345678\"\n    sl651_password: \"12345\"\n", want: badSL651PW},
		{name: "sl651_password not hex", one: "    sl651_address: \"0012345678\"\n    sl651_password: \"12G4\"\n", want: badSL651PW},
		{name: "sl651_password without sl651_address", one: "    sl651_password: \"1234\"\n",
			want: `r.yaml:13: station one: sl651_password is set but sl651_address is not`},
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

func TestStationBySL651Address(t *testing.T) {
	r, err := Load("r.yaml", []byte(protocolRegistry("    sl651_address: \"00123456ab\"\n    sl651_password: \"beef\"\n", "")))
	if err != nil {
		t.Fatal(err)
	}
	one := r.Station("one")
	if one.SL651Address != "00123456AB" || one.SL651Password != "BEEF" {
		t.Errorf("stored %q and %q, want upper case", one.SL651Address, one.SL651Password)
	}
	for _, addr := range []string{"00123456AB", "00123456ab", "00123456aB"} {
		if got := r.StationBySL651Address(addr); got != one {
			t.Errorf("StationBySL651Address(%q) = %v, want station one", addr, got)
		}
	}
	if got := r.StationBySL651Address("0012345678"); got != nil {
		t.Errorf("an address of no station: %v", got.ID)
	}
	if got := r.StationBySL651Address(""); got != nil {
		t.Errorf("the empty address: station %s", got.ID)
	}
}
