package daemon

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/l4"
	"github.com/slardar-go/slardar/pkg/metrics"
	"github.com/slardar-go/slardar/pkg/version"
)

// observe connects the core's parts to its metrics: connections and dials as they end,
// heartbeat rounds, admin commands (with an audit line for each change); server state and open
// connections are read from checkups at each scrape.
func (c *Core) observe() {
	c.Prom = metrics.NewRegistry(version.Version)
	c.Metrics = metrics.NewProxy(c.Prom)
	m := c.Metrics
	c.Proxy.Observe = func(listener string, cx *l4.Conn, outcome string) {
		server := cx.Server
		if cx.Target != "" {
			server = "target" // a template target (sni-router): its addresses are not a bounded set
		}
		m.Connections.WithLabelValues(listener, cx.Upstream, server, outcome).Inc()
		m.Bytes.WithLabelValues(cx.Upstream, "in").Add(float64(cx.BytesIn))
		m.Bytes.WithLabelValues(cx.Upstream, "out").Add(float64(cx.BytesOut))
		m.Duration.WithLabelValues(cx.Upstream).Observe(time.Since(cx.Start).Seconds())
	}
	c.Reg.OnDial = func(upstream, server string, err error) {
		m.DialAttempts.WithLabelValues(upstream, server, okOrError(err)).Inc()
	}
	c.Reg.OnHeartbeat = func(upstream string, d time.Duration) {
		m.HeartbeatDuration.WithLabelValues(upstream).Observe(d.Seconds())
	}
	c.Prom.MustRegister(&serverCollector{reg: c.Reg})
	c.RecordReload(nil) // the configuration was loaded and validated before the core was built
}

// OnCommand counts an admin command and writes the audit line of a change: method, topic,
// name, peer, result, and the md5 of a code body (never the body: it may hold secrets).
func (c *Core) OnCommand(ctx context.Context, cmd admin.Command, body []byte, reply admin.Reply) {
	result := "ok"
	if reply.Type == admin.TypeError {
		result = "error"
	}
	c.Metrics.AdminCommands.WithLabelValues(cmd.Method, cmd.Topic, result).Inc()
	if cmd.Method == "GET" {
		return
	}
	attrs := []any{"method", cmd.Method, "topic", cmd.Topic, "name", cmd.Name, "peer", admin.Peer(ctx), "result", result}
	if result == "error" {
		attrs = append(attrs, "error", string(reply.Data))
	}
	if body != nil && cmd.Topic == "code" {
		sum := md5.Sum(body)
		attrs = append(attrs, "body_md5", hex.EncodeToString(sum[:]))
	}
	c.Log.Info("admin change", attrs...)
}

func okOrError(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Reload is the last configuration load's outcome, in GET upstream status and the metrics.
type Reload struct {
	Time  time.Time
	OK    bool
	Error string
}

// RecordReload records a configuration load (start or reload).
func (c *Core) RecordReload(err error) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	c.lastReload = Reload{Time: time.Now(), OK: err == nil}
	if err != nil {
		c.lastReload.Error = err.Error()
	}
	c.Metrics.Reload.Record(c.lastReload.Time, err)
}

// LastReload is the last configuration load's outcome.
func (c *Core) LastReload() Reload {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	return c.lastReload
}

// serverCollector reads every server's state from checkups at scrape time:
// slardar_server_up, slardar_server_state (health), slardar_server_operator_state,
// slardar_server_replication_lag_seconds and slardar_active_connections.
type serverCollector struct{ reg *checkups.Registry }

var (
	serverUpDesc = prometheus.NewDesc(metrics.Namespace+"_server_up",
		"1 when the server may be chosen (health, lag and the operator's state allow it), else 0.", []string{"upstream", "server"}, nil)
	serverStateDesc = prometheus.NewDesc(metrics.Namespace+"_server_state",
		"1 for the server's health, as its heartbeat found it: ok, err, unstable, lagging, unchecked (no heartbeat), "+
			"maint (heartbeats paused by the operator's maint); drain leaves it visible.",
		[]string{"upstream", "server", "state"}, nil)
	operatorStateDesc = prometheus.NewDesc(metrics.Namespace+"_server_operator_state",
		"1 for the state the operator set (PUT server, slardarctl server): ready, drain or maint.", []string{"upstream", "server", "state"}, nil)
	lagDesc = prometheus.NewDesc(metrics.Namespace+"_server_replication_lag_seconds",
		"A replica's Seconds_Behind_Master at its last heartbeat (typ mysql); absent while it is unknown (a replication thread stopped).",
		[]string{"upstream", "server"}, nil)
	activeDesc = prometheus.NewDesc(metrics.Namespace+"_active_connections",
		"Open connections to the server (client connections, or pooled MySQL connections in use).", []string{"upstream", "server"}, nil)
)

// healthStates and operatorStates are every value slardar_server_state and
// slardar_server_operator_state take, all exported for each server.
var (
	healthStates   = []checkups.Status{checkups.StatusOK, checkups.StatusErr, checkups.StatusUnstable, checkups.StatusLagging, checkups.StatusUnchecked, checkups.StatusMaint}
	operatorStates = []string{checkups.StateReady, checkups.StateDrain, checkups.StateMaint}
)

func (s *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{serverUpDesc, serverStateDesc, operatorStateDesc, lagDesc, activeDesc} {
		ch <- d
	}
}

func (s *serverCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	one := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	s.reg.EachServer(func(st checkups.ServerStatus) {
		up := st.State == checkups.StateReady && st.Passive == checkups.StatusOK &&
			st.Status != checkups.StatusErr && st.Status != checkups.StatusLagging
		gauge(serverUpDesc, one(up), st.Upstream, st.Addr)
		for _, v := range healthStates {
			gauge(serverStateDesc, one(v == st.Status), st.Upstream, st.Addr, string(v))
		}
		for _, v := range operatorStates {
			gauge(operatorStateDesc, one(v == st.State), st.Upstream, st.Addr, v)
		}
		if lag, ok := replicationLag(st.Replication); ok {
			gauge(lagDesc, lag, st.Upstream, st.Addr)
		}
		gauge(activeDesc, float64(st.ActiveConns), st.Upstream, st.Addr)
	})
}

// replicationLag is the lag a heartbeat recorded under "replication", when it knows one.
func replicationLag(repl map[string]any) (float64, bool) {
	switch v := repl["lag"].(type) {
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case float64:
		return v, true
	}
	return 0, false
}
