package sqlclass_test

import (
	"testing"

	"github.com/slardar-go/slardar/internal/sqlcorpus"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
)

// TestRoutingCorpus reads the corpus with the classifier alone: a case that must run on a
// replica (or that lies: only the replica's read-only session catches it) is a read whose
// stored functions are the read-only ones; every other is not.
func TestRoutingCorpus(t *testing.T) {
	readOnly := map[string]bool{sqlcorpus.FReads: true, "upyun." + sqlcorpus.FReads: true, sqlcorpus.FLies: true}
	for _, tc := range sqlcorpus.Routing {
		charset := tc.Charset
		if charset == "" {
			charset = "utf8mb4"
		}
		c := sqlclass.Classify(tc.SQL, sqlclass.ModeOf(tc.SQLMode, tc.SQLMode != "", charset))
		replica := c.Read
		for _, f := range c.Funcs {
			replica = replica && readOnly[f]
		}
		if want := tc.Where == sqlcorpus.Replica || tc.Lies; replica != want {
			t.Errorf("%s: %q is %+v: a read for a replica %v; want %v", tc.Name, tc.SQL, c, replica, want)
		}
	}
}
