package reading

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
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
	if numParams != len(params) {
		t.Fatalf("numParams is %d, there are %d parameters", numParams, len(params))
	}
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
