package session

import (
	"time"

	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/digest"
	"github.com/slardar-go/slardar/pkg/mysql/sqlclass"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// recordDigest counts a statement that ran (or could not: c nil) in the query digests, with
// its digest's text and id: how long it took from start, what it sent and changed, whether it
// failed, and where it ran — a replica, the primary, or the primary for a read a replica should
// have served (a fallback).
func (s *Session) recordDigest(c *backend.Conn, r route, class sqlclass.Class, start time.Time, res wire.Result, err error, text string, id uint64) {
	where := digest.Primary
	switch {
	case c == nil:
		where = digest.Nowhere
	case c == s.replica:
		where = digest.Replica
	case r == routeRead && s.tx == nil && !s.pinned:
		where = digest.Fallback
	}
	s.cfg.Digests.Record(digest.Sample{
		Key:  digest.Key{ID: id, User: s.cl.User.Name, Schema: s.st.schema, Upstream: s.write},
		Text: text, Took: time.Since(start), Rows: res.Rows, Affected: res.Affected,
		Err: err != nil || res.Err != nil || c == nil, Where: where,
	})
}

// recordStmtDigest is recordDigest for an execution of a prepared statement, whose digest is
// computed once, at its first execution.
func (s *Session) recordStmtDigest(st *stmt, c *backend.Conn, r route, start time.Time, res wire.Result, err error) {
	if s.cfg.Digests == nil {
		return
	}
	if st.digest == "" {
		st.digest, st.digestID = sqlclass.Digest(string(st.sql[1:]), s.mode())
	}
	s.recordDigest(c, r, st.class, start, res, err, st.digest, st.digestID)
}
