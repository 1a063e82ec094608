package hj212

import (
	"bytes"
	"testing"
)

func TestIsDataUpload(t *testing.T) {
	for cn, want := range map[string]bool{"2011": true, "2051": true, "2061": true, "2031": true,
		"1011": false, "1013": false, "2021": false, "2041": false, "9014": false, "": false} {
		if got := IsDataUpload(cn); got != want {
			t.Errorf("IsDataUpload(%q) = %v", cn, got)
		}
	}
}

func TestRequestAnswerAndExecutionResult(t *testing.T) {
	p := &Packet{QN: "20240715083000123", ST: "21", CN: "1013", PW: "123456", MN: "5402230000000000000000A1", Flag: 5, CRC: CRCVariantModbus}
	for _, tc := range []struct {
		got     *Packet
		segment string
	}{
		{p.RequestAnswer(QnRtnBadPW), "QN=20240715083000123;ST=91;CN=9011;PW=123456;MN=5402230000000000000000A1;Flag=4;CP=&&QnRtn=3&&"},
		{p.ExecutionResult(ExeRtnSuccess), "QN=20240715083000123;ST=91;CN=9012;PW=123456;MN=5402230000000000000000A1;Flag=4;CP=&&ExeRtn=1&&"},
	} {
		if seg := tc.got.Segment(); seg != tc.segment {
			t.Errorf("segment\n%s\nwant\n%s", seg, tc.segment)
		}
		back, err := Decode(tc.got.Encode())
		if err != nil || back.CRC != CRCVariantModbus {
			t.Errorf("%s: %v, CRC %q; want an answer framed as the packet, with CRC-16/MODBUS", tc.segment, err, back.CRC)
		}
	}
}

func TestAnswers(t *testing.T) {
	data, err := Decode([]byte(rtd)) // 2011, Flag 5
	if err != nil {
		t.Fatal(err)
	}
	cmd := *data
	cmd.CN, cmd.CP = "1013", ""
	quiet := *data
	quiet.Flag = 4 // no answer wanted
	mb := *data
	mb.CRC = CRCVariantModbus

	for _, tc := range []struct {
		name string
		p    *Packet
		v    Verdict
		want []string // CN and CP of each answer
	}{
		{"data upload taken", data, Taken, []string{"9014 "}},
		{"data upload rejected", data, Rejected, []string{"9014 "}},
		{"data upload with a wrong PW", data, BadPW, []string{"9014 "}},
		{"command taken", &cmd, Taken, []string{"9011 QnRtn=1", "9012 ExeRtn=1"}},
		{"command not taken", &cmd, Rejected, []string{"9011 QnRtn=2"}},
		{"command with a wrong PW", &cmd, BadPW, []string{"9011 QnRtn=3"}},
		{"command with a wrong MN", &cmd, BadMN, []string{"9011 QnRtn=4"}},
		{"no answer wanted", &quiet, Taken, nil},
		{"MODBUS data upload", &mb, Taken, []string{"9014 "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames := Answers(tc.p, tc.v)
			if len(frames) != len(tc.want) {
				t.Fatalf("%d answers, want %d: %q", len(frames), len(tc.want), frames)
			}
			for i, f := range frames {
				a, err := Decode(f)
				if err != nil {
					t.Fatalf("answer %d %q: %v", i, f, err)
				}
				if got := a.CN + " " + a.CP; got != tc.want[i] {
					t.Errorf("answer %d: %q, want %q", i, got, tc.want[i])
				}
				if a.QN != tc.p.QN || a.PW != tc.p.PW || a.MN != tc.p.MN || a.ST != "91" || a.Flag != 4 || a.CRC != tc.p.CRC {
					t.Errorf("answer %d %+v does not echo QN, PW and MN with ST 91, Flag 4 and CRC %s", i, a, tc.p.CRC)
				}
			}
		})
	}
	// The standard's worked example (domain.md §3.11 b).
	if got := Answers(data, Taken); !bytes.Equal(got[0], []byte(ack)) {
		t.Errorf("9014 %q, want %q", got[0], ack)
	}
}
