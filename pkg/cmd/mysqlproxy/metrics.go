package mysqlproxy

import (
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slardar-go/slardar/pkg/metrics"
	"github.com/slardar-go/slardar/pkg/mysql/digest"
	"github.com/slardar-go/slardar/pkg/mysql/session"
)

// counters are the listeners' session counters by upstream; they outlive reloads.
type counters struct {
	mu sync.Mutex
	m  map[string]*session.Counters
}

func (c *counters) get(upstream string) *session.Counters {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*session.Counters)
	}
	if c.m[upstream] == nil {
		c.m[upstream] = &session.Counters{}
	}
	return c.m[upstream]
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metrics.Namespace+"_mysql_"+name, help, labels, nil)
}

var (
	queriesDesc = desc("queries_total", "Statements by where they ran: read (a replica), write (the primary), "+
		"primary_read (a read the primary served: no usable replica, consistency, a transaction, a pin or a /*master*/ hint).", "upstream", "route")
	refusalsDesc = desc("replica_refusals_total", "Statements routed to a replica as reads that its read-only session refused as writes "+
		"(each ran on the primary if the client had got nothing yet): a classifier bug, to be reported.", "upstream")
	sessionsDesc     = desc("sessions", "Client sessions open now.", "upstream")
	sessionsDoneDesc = desc("sessions_total", "Client sessions ended.", "upstream")
	gtidDesc         = desc("consistency_reads_total", "Reads that needed read-after-write care: gtid_wait (a replica after MASTER_GTID_WAIT), "+
		"gtid_fallback (the primary after the wait timed out), window (the primary inside the window after a write).", "kind")
	poolDesc       = desc("pool_connections_total", "Backend connections: opened (logins), reused (from the pool), reset (COM_RESET_CONNECTION before reuse), closed.", "event")
	poolIdleDesc   = desc("pool_idle_connections", "Backend connections idle in the pool now.")
	serverConnDesc = desc("pool_server_connections", "Backend connections to a server now: open (in use, idle or logging in) and idle.", "server", "state")
	serverLimDesc  = desc("pool_server_limit", "The connections mysql-proxy may open to a server (0: not known yet).", "server")
	waitingDesc    = desc("pool_waiting_sessions", "Sessions waiting for a connection to a server at its limit.", "server")
	waitsDesc      = desc("pool_waits_total", "Sessions that waited for a connection to a server at its limit.", "server")
	waitTimeDesc   = desc("pool_wait_seconds_total", "Time sessions waited for a connection to a server at its limit.", "server")
	digestLabels   = []string{"digest", "upstream", "user", "schema", "query"}
	digestSecDesc  = desc("digest_seconds_total", "Time statements of a query digest took; only the mysql.digests.top digests by total time "+
		"have series (query: the digest's text, cut at 100 bytes).", digestLabels...)
	digestCallsDesc  = desc("digest_calls_total", "Statements of a query digest (the top ones by total time).", digestLabels...)
	digestErrorsDesc = desc("digest_errors_total", "Statements of a query digest that failed (the top ones by total time).", digestLabels...)
	ruleHitsDesc     = desc("rule_hits_total", "Statements a query rule matched (its counter survives changes of the rule).", "rule")
	mirrorDesc       = desc("mirror_statements_total", "Statements rules mirrored: sent, dropped (every mirror slot busy), failed.", "result")
)

// Describe implements prometheus.Collector.
func (d *Daemon) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range []*prometheus.Desc{queriesDesc, refusalsDesc, sessionsDesc, sessionsDoneDesc, gtidDesc, poolDesc, poolIdleDesc,
		serverConnDesc, serverLimDesc, waitingDesc, waitsDesc, waitTimeDesc, digestSecDesc, digestCallsDesc, digestErrorsDesc, ruleHitsDesc, mirrorDesc} {
		ch <- x
	}
}

// Collect implements prometheus.Collector: mysql-proxy's own metrics, read at scrape time.
func (d *Daemon) Collect(ch chan<- prometheus.Metric) {
	d.counters.mu.Lock()
	byUpstream := maps.Clone(d.counters.m)
	d.counters.mu.Unlock()
	counter := func(desc *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	for _, up := range slices.Sorted(maps.Keys(byUpstream)) {
		c := byUpstream[up]
		counter(queriesDesc, c.Reads.Load(), up, "read")
		counter(queriesDesc, c.Writes.Load(), up, "write")
		counter(queriesDesc, c.PrimaryReads.Load(), up, "primary_read")
		counter(refusalsDesc, c.ReplicaRefusals.Load(), up)
		ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(c.Sessions.Load()), up)
		counter(sessionsDoneDesc, c.SessionsDone.Load(), up)
	}
	counter(gtidDesc, d.pos.Waits.Load(), "gtid_wait")
	counter(gtidDesc, d.pos.WaitFallbacks.Load(), "gtid_fallback")
	counter(gtidDesc, d.pos.WindowReads.Load(), "window")
	counter(poolDesc, d.pool.Opened.Load(), "opened")
	counter(poolDesc, d.pool.Reused.Load(), "reused")
	counter(poolDesc, d.pool.Resets.Load(), "reset")
	counter(poolDesc, d.pool.Closed.Load(), "closed")
	ch <- prometheus.MustNewConstMetric(poolIdleDesc, prometheus.GaugeValue, float64(d.pool.Idle()))
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	stats := d.pool.Stats()
	for _, addr := range slices.Sorted(maps.Keys(stats)) {
		st := stats[addr]
		gauge(serverConnDesc, float64(st.Open), addr, "open")
		gauge(serverConnDesc, float64(st.Idle), addr, "idle")
		gauge(serverLimDesc, float64(st.Limit), addr)
		gauge(waitingDesc, float64(st.Waiting), addr)
		counter(waitsDesc, st.Waits, addr)
		ch <- prometheus.MustNewConstMetric(waitTimeDesc, prometheus.CounterValue, st.Waited.Seconds(), addr)
	}
	for _, r := range d.rules.set.Load().Infos(func(string) string { return "" }) {
		counter(ruleHitsDesc, r.Hits, r.Name)
	}
	counter(mirrorDesc, d.mirrors.Sent.Load(), "sent")
	counter(mirrorDesc, d.mirrors.Dropped.Load(), "dropped")
	counter(mirrorDesc, d.mirrors.Failed.Load(), "failed")
	if top := int(d.digestTop.Load()); top > 0 && d.digestsOn.Load() {
		rows, _ := d.digests.Rows(digest.SortTotal, top)
		for _, r := range rows {
			query := r.Text
			if len(query) > 100 {
				query = query[:100]
			}
			labels := []string{r.Digest, r.Upstream, r.User, r.Schema, strings.ToValidUTF8(query, "?")}
			ch <- prometheus.MustNewConstMetric(digestSecDesc, prometheus.CounterValue, r.Total, labels...)
			counter(digestCallsDesc, int64(r.Count), labels...)
			counter(digestErrorsDesc, int64(r.Errors), labels...)
		}
	}
}
