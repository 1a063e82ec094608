package reading

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzFastPath: wherever the one-pass decoder answers, the general decoder,
// which defines the rules, keeps the same message and rejects nothing.
func FuzzFastPath(f *testing.F) {
	files, _ := filepath.Glob("testdata/readings/*.json")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	for _, s := range []string{
		`{"station":"a","seq":-0,"samples":[{"time":-1,"values":{"ph":-0}}]}`,
		`{"station":"a","seq":0,"samples":[{"time":"2026-07-15T06:00:00.5+08:00","values":{"ph":7E0,"do_mgl":1e-3}}]}`,
		` {"samples":[{"values":{"level_m":1.5},"time":1784095200000,"x":[1,{"y":null}]}],"station":"b-2","extra":{"a":[true,false]}} `,
		`{"station":"a","station":"b","samples":[{"time":1,"values":{"ph":7}}]}`,
		`{"station":"a","samples":[{"time":1,"values":{"ph":7,"ph":8}}]}`,
		`{"station":"a","samples":[{"time":1,"values":{"ph":1e400}}]}`,
		`{"station":"a","samples":[{"time":1.0,"values":{"ph":7}}]}`,
		`{"station":"a","samples":[{"time":1,"values":{"p\u0068":7}}]}`,
		`{"station":"a","seq":null,"samples":[{"time":253402300799999,"values":{"tn_mgl":0.01}}]}`,
		`{"station":"a","seq":9223372036854775808,"samples":[{"time":1,"values":{"ph":7}}]}`,
		`{"Station":"a","samples":[{"time":1,"values":{"ph":7}}]}`,
		`{"station":"a","samples":[{"time":1,"values":{"ph":7}}]}x`,
		`{"station":"a","samples":[{"time":1,"values":{}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		fast, ok := decodeFast(payload, now)
		slow, rejs := decodeGeneral(payload, now)
		if !ok {
			return
		}
		if len(rejs) != 0 {
			t.Fatalf("fast path kept %s; the general path rejects %v", payload, rejs)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s:\nfast    %+v\ngeneral %+v", payload, fast, slow)
		}
	})
}

// The fast path has to take what stations and the simulator actually send,
// or it is no use.
func TestFastPathTakesCommonPayloads(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "readings", "single.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeFast(b, now); !ok {
		t.Error("single.json goes the slow way")
	}
	if _, ok := decodeFast(benchPayload(100), now.Add(24*time.Hour)); !ok {
		t.Error("a 100-sample backlog goes the slow way")
	}
	m := Message{Station: "sagya-sagya", Seq: 3, HasSeq: true, Samples: []Sample{
		{Time: now.Add(-time.Minute).Add(123 * time.Microsecond), Values: []Value{{"level_m", 0.412}, {"flow_m3s", 2.5e-7}, {"water_temp_c", math.Copysign(0, -1)}}},
	}}
	b, err = m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeFast(b, now); !ok {
		t.Errorf("Encode's output %s goes the slow way", b)
	}
}

func TestNumParams(t *testing.T) {
	if NumParams != len(params) {
		t.Fatalf("NumParams is %d, there are %d parameters", NumParams, len(params))
	}
}

func TestParamOf(t *testing.T) {
	for i, p := range params {
		if got := paramOf([]byte(p.Code)); got != i {
			t.Errorf("paramOf(%q) = %d, want %d", p.Code, got, i)
		}
	}
	for _, c := range []string{"", "level", "level_m ", "LEVEL_M", "flow_rated_m3s", "wq_class"} {
		if got := paramOf([]byte(c)); got != -1 {
			t.Errorf("paramOf(%q) = %d, want -1", c, got)
		}
	}
}

// checkNumber fails unless parseFloat agrees with strconv.ParseFloat on a
// JSON number, to the bit, and refuses what is not finite.
func checkNumber(t *testing.T, text string) {
	t.Helper()
	want, err := strconv.ParseFloat(text, 64)
	wantOK := err == nil && !math.IsInf(want, 0)
	got, ok := parseFloat([]byte(text))
	if ok != wantOK || (ok && math.Float64bits(got) != math.Float64bits(want)) {
		t.Fatalf("parseFloat(%q) = %v, %v; strconv: %v, %v", text, got, ok, want, err)
	}
}

func TestParseFloat(t *testing.T) {
	for _, s := range []string{"0", "-0", "3.42", "-18.5", "0.000105", "12.25", "1e3", "1E-7", "-2.5e+2",
		"9007199254740993", "9007199254740992", "123456789012345678901234", "0.1e-22", "1e22", "1e23",
		"4.9e-324", "1e-400", "1.7976931348623157e308", "1e309", "0.30000000000000004", "1e0000000000001"} {
		checkNumber(t, s)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		var b []byte
		if r.IntN(4) == 0 {
			b = append(b, '-')
		}
		b = strconv.AppendUint(b, r.Uint64()>>r.IntN(64), 10)
		if r.IntN(2) == 0 {
			b = append(b, '.')
			b = strconv.AppendUint(b, r.Uint64()>>r.IntN(64), 10)
		}
		if r.IntN(3) == 0 {
			b = append(b, 'e')
			b = strconv.AppendInt(b, int64(r.IntN(60)-30), 10)
		}
		checkNumber(t, string(b))
	}
}

// FuzzParseFloat holds parseFloat to strconv.ParseFloat on every JSON
// number.
func FuzzParseFloat(f *testing.F) {
	f.Add("3.42")
	f.Add("-0.000105e-3")
	f.Fuzz(func(t *testing.T, text string) {
		s := scanner{b: []byte(text)}
		if num, _, ok := s.num(); !ok || len(num) != len(text) {
			return // not a JSON number
		}
		checkNumber(t, text)
	})
}

var stationIDRE = regexp.MustCompile(`^[a-z0-9]+(?:-[a-z0-9]+)*$`)

// FuzzValidStationID holds the hand-written check to the pattern the
// contract states.
func FuzzValidStationID(f *testing.F) {
	for _, s := range []string{"nianchu-gyantse", "a", "", "-a", "a-", "a--b", "A", "a_b", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := len(id) <= 64 && stationIDRE.MatchString(id)
		if ValidStationID(id) != want {
			t.Fatalf("ValidStationID(%q) = %v", id, !want)
		}
	})
}
