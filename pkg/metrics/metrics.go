// Package metrics is the Prometheus side of every daemon: one registry per daemon with the Go
// and process collectors, slardar_build_info, the metrics every proxy daemon shares (Proxy)
// and the HTTP endpoint that serves them with /livez, /readyz and, when enabled, pprof.
// Metric names are stable and listed in README; label values are bounded (upstream, server,
// listener, outcome, route: never a client address).
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric.
const Namespace = "slardar"

// NewRegistry is a daemon's registry: Go runtime and process metrics, and
// slardar_build_info{version}.
func NewRegistry(version string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: "build_info",
		Help: "Always 1; the version label is the build's."}, []string{"version"})
	info.WithLabelValues(version).Set(1)
	reg.MustRegister(info)
	return reg
}

// Proxy are the metrics of a proxy daemon (slardar-proxy, mysql-proxy, sni-router): its
// connections, dials, heartbeats, admin commands, scripts and reloads. Server state and open
// connections are read from checkups at scrape time (see daemon.Core).
type Proxy struct {
	Connections       *prometheus.CounterVec   // listener, upstream, server, outcome
	Bytes             *prometheus.CounterVec   // upstream, direction (in: from clients, out: to clients)
	Duration          *prometheus.HistogramVec // upstream
	DialAttempts      *prometheus.CounterVec   // upstream, server, result (ok, error)
	HeartbeatDuration *prometheus.HistogramVec // upstream
	AdminCommands     *prometheus.CounterVec   // method, topic, result (ok, error)
	ScriptRuns        *prometheus.CounterVec   // script, result (ok, exit, error)
	*Reload
}

// Reload are the configuration-load gauges every daemon has (store-sync included).
type Reload struct {
	OK   prometheus.Gauge // slardar_config_last_reload_successful
	Time prometheus.Gauge // slardar_config_last_reload_timestamp_seconds
}

// NewReload registers the reload gauges on reg.
func NewReload(reg prometheus.Registerer) *Reload {
	r := &Reload{
		OK: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "config_last_reload_successful",
			Help: "1 when the last configuration load (start or reload) succeeded."}),
		Time: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: Namespace, Name: "config_last_reload_timestamp_seconds",
			Help: "When the configuration was last loaded (start or reload), successfully or not."}),
	}
	reg.MustRegister(r.OK, r.Time)
	return r
}

// Record sets the gauges for a load at t that ended with err.
func (r *Reload) Record(t time.Time, err error) {
	r.Time.Set(float64(t.UnixNano()) / 1e9)
	if err == nil {
		r.OK.Set(1)
	} else {
		r.OK.Set(0)
	}
}

// NewProxy registers the proxy metrics on reg.
func NewProxy(reg prometheus.Registerer) *Proxy {
	m := &Proxy{
		Connections: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "connections_total",
			Help: "Client connections ended, by listener, upstream, the server they reached and how they ended (the access log's outcome)."},
			[]string{"listener", "upstream", "server", "outcome"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "bytes_total",
			Help: "Bytes relayed, by upstream; direction in is from clients, out is to clients."}, []string{"upstream", "direction"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "connection_duration_seconds",
			Help: "How long client connections lasted, by upstream.", Buckets: []float64{.001, .005, .025, .1, .5, 2.5, 10, 60, 300, 1800, 7200}},
			[]string{"upstream"}),
		DialAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "dial_attempts_total",
			Help: "Connection attempts to upstream servers (and MySQL logins), by result."}, []string{"upstream", "server", "result"}),
		HeartbeatDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "heartbeat_duration_seconds",
			Help: "How long a heartbeat round of an upstream took.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"upstream"}),
		AdminCommands: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "admin_commands_total",
			Help: "Admin protocol commands, by method, topic and result."}, []string{"method", "topic", "result"}),
		ScriptRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "script_runs_total",
			Help: "Lua hook runs, by script and result (ok, exit: ngx.exit, error: a Lua error, timeout or memory limit)."}, []string{"script", "result"}),
		Reload: NewReload(reg),
	}
	reg.MustRegister(m.Connections, m.Bytes, m.Duration, m.DialAttempts, m.HeartbeatDuration, m.AdminCommands, m.ScriptRuns)
	return m
}
