package session

import (
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

// state encodes session state change information with one system variable.
func state(name, value string) []byte {
	data := append(mysql.PutLengthEncodedString([]byte(name)), mysql.PutLengthEncodedString([]byte(value))...)
	return append([]byte{0}, mysql.PutLengthEncodedString(data)...)
}

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
	// A schema change (type 1) and another variable come before last_gtid; the last one wins.
	st := append([]byte{1, 4, 3, 'a', 'b', 'c'}, state("autocommit", "ON")...)
	st = append(st, state("last_gtid", "0-1-101")...)
	if !lastGTIDs(st, need) || need.String() != "0-1-101" {
		t.Fatalf("lastGTIDs: %v", need)
	}
	if pos.covers(need) {
		t.Fatal("0-1-100 covers 0-1-101")
	}
	pos.merge(need)
	if !pos.covers(need) || !pos.covers(gtidSet{1: {2, 7}}) || pos.covers(gtidSet{2: {1, 1}}) {
		t.Fatalf("covers after merge: %v", pos)
	}
	if lastGTIDs(state("last_gtid", ""), gtidSet{}) {
		t.Fatal("an empty last_gtid (a read) is a GTID")
	}
}

// FuzzLastGTIDs: session state from a server never panics the reader, and what it finds
// prints as a GTID list that parses back to the same position.
func FuzzLastGTIDs(f *testing.F) {
	f.Add(state("last_gtid", "0-1-5"))
	f.Add([]byte{0, 0xfc, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		got := gtidSet{}
		if !lastGTIDs(data, got) {
			return
		}
		back, ok := parseGTIDs(got.String())
		if !ok || back.String() != got.String() {
			t.Fatalf("%v does not round-trip: %v", got, back)
		}
	})
}
