package lineproto

import "testing"

func TestEscaping(t *testing.T) {
	b := AppendSeries(nil, "reading", "a b", "c,d=e")
	if string(b) != `reading,river=c\,d\=e,station=a\ b ` {
		t.Errorf("tags: %s", b)
	}
	if b := AppendStringField(nil, "summary", `say "hi" \ bye`); string(b) != `,summary="say \"hi\" \\ bye"` {
		t.Errorf("string field: %s", b)
	}
}
