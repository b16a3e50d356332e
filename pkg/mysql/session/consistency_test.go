package session

import (
	"testing"
)

func TestGTIDs(t *testing.T) {
	pos, ok := parseGTIDs("0-1-100, 1-2-7")
	if !ok || pos.String() != "0-1-100,1-2-7" {
		t.Fatalf("parse: %v %v", pos, ok)
	}
	for _, bad := range []string{"0-1", "a-1-2", "0-1-2-3", "0--5"} {
		if _, ok := parseGTIDs(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
	need := gtidSet{}
	need.merge(gtidSet{0: {1, 101}})
	if pos.covers(need) {
		t.Fatal("0-1-100 covers 0-1-101")
	}
	pos.merge(need)
	if !pos.covers(need) || !pos.covers(gtidSet{1: {2, 7}}) || pos.covers(gtidSet{2: {1, 1}}) {
		t.Fatalf("covers after merge: %v", pos)
	}
}

// FuzzParseGTIDs: any last_gtid or gtid_slave_pos value a server reports parses without a
// panic, and what parses prints as a GTID list that parses back to the same position.
func FuzzParseGTIDs(f *testing.F) {
	f.Add("0-1-5")
	f.Add("0-1-5,1-2-7")
	f.Add("0-1-")
	f.Fuzz(func(t *testing.T, value string) {
		got, ok := parseGTIDs(value)
		if !ok {
			return
		}
		back, ok := parseGTIDs(got.String())
		if !ok || back.String() != got.String() {
			t.Fatalf("%v does not round-trip: %v", got, back)
		}
	})
}
