package syncer

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the syncer's counters: a Prometheus collector, and the health check's facts.
// One Metrics may outlive a Syncer (store-sync keeps it across SIGHUP).
type Metrics struct {
	mu      sync.Mutex
	targets map[string]*TargetStats
	sources map[string]*SourceStats
}

// TargetStats are one target's counters.
type TargetStats struct {
	changes  atomic.Int64
	errors   atomic.Int64
	lastOK   atomic.Int64 // unix nanoseconds of the last successful sync
	lastGen  atomic.Int64 // snapshot generation last applied
	latestAt atomic.Int64 // when that snapshot was read
}

func (t *TargetStats) synced(s *snapshot) {
	t.lastOK.Store(time.Now().UnixNano())
	t.lastGen.Store(s.gen)
	t.latestAt.Store(s.at.UnixNano())
}

// SourceStats are one store's state.
type SourceStats struct {
	up      atomic.Bool
	seen    atomic.Bool // up or down was set once
	invalid atomic.Int64
}

func (m *Metrics) target(addr string) *TargetStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.targets == nil {
		m.targets = map[string]*TargetStats{}
	}
	if m.targets[addr] == nil {
		m.targets[addr] = &TargetStats{}
	}
	return m.targets[addr]
}

func (m *Metrics) source(name string) *SourceStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sources == nil {
		m.sources = map[string]*SourceStats{}
	}
	if m.sources[name] == nil {
		m.sources[name] = &SourceStats{}
	}
	return m.sources[name]
}

var (
	storeUpDesc = prometheus.NewDesc("slardar_sync_store_up", "Whether the last read of the store succeeded.", []string{"store"}, nil)
	invalidDesc = prometheus.NewDesc("slardar_sync_invalid_keys", "Store values skipped because they are invalid.", []string{"store"}, nil)
	lastOKDesc  = prometheus.NewDesc("slardar_sync_last_success_timestamp_seconds", "When the target was last found or made equal to the store.", []string{"target"}, nil)
	changesDesc = prometheus.NewDesc("slardar_sync_changes_applied_total", "Admin commands applied to the target.", []string{"target"}, nil)
	errorsDesc  = prometheus.NewDesc("slardar_sync_errors_total", "Failed sync attempts.", []string{"target"}, nil)
	lagDesc     = prometheus.NewDesc("slardar_sync_target_lag_seconds", "Age of the store snapshot the target last matched (NaN before the first).", []string{"target"}, nil)
)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{storeUpDesc, invalidDesc, lastOKDesc, changesDesc, errorsDesc, lagDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the stores' and targets' state at scrape time.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range slices.Sorted(maps.Keys(m.sources)) {
		src := m.sources[n]
		ch <- prometheus.MustNewConstMetric(storeUpDesc, prometheus.GaugeValue, float64(b2i(src.up.Load())), n)
		ch <- prometheus.MustNewConstMetric(invalidDesc, prometheus.GaugeValue, float64(src.invalid.Load()), n)
	}
	for _, n := range slices.Sorted(maps.Keys(m.targets)) {
		t := m.targets[n]
		ch <- prometheus.MustNewConstMetric(lastOKDesc, prometheus.GaugeValue, float64(t.lastOK.Load())/1e9, n)
		ch <- prometheus.MustNewConstMetric(changesDesc, prometheus.CounterValue, float64(t.changes.Load()), n)
		ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(t.errors.Load()), n)
		lag := math.NaN()
		if at := t.latestAt.Load(); at != 0 {
			lag = time.Since(time.Unix(0, at)).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, lag, n)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// StoresUp is nil when every store answered its last read, else an error naming those that did
// not (store-sync's /readyz).
func (s *Syncer) StoresUp() error {
	var down []string
	for _, sy := range s.Syncs {
		if !s.Metrics.source(sy.Store.String()).up.Load() {
			down = append(down, sy.Store.String())
		}
	}
	if len(down) > 0 {
		return fmt.Errorf("store not reachable: %s", strings.Join(down, ", "))
	}
	return nil
}

// ServeHealth answers 200 when every store is reachable and every target matched the latest
// snapshot of its source, 503 otherwise, with the details as JSON: invalid_keys counts, per
// store, the values skipped as invalid (still 200: the rest is applied; the keys and errors
// are logged, the count is slardar_sync_invalid_keys).
func (s *Syncer) ServeHealth(w http.ResponseWriter, _ *http.Request) {
	type targetHealth struct {
		Target  string `json:"target"`
		InSync  bool   `json:"in_sync"`
		Changes int64  `json:"changes_applied"`
		Errors  int64  `json:"errors"`
	}
	out := struct {
		OK          bool             `json:"ok"`
		Stores      map[string]bool  `json:"stores"`
		InvalidKeys map[string]int64 `json:"invalid_keys"`
		Targets     []targetHealth   `json:"targets"`
	}{OK: true, Stores: map[string]bool{}, InvalidKeys: map[string]int64{}}
	for _, sy := range s.Syncs {
		src := s.Metrics.source(sy.Store.String())
		up := src.up.Load()
		out.Stores[sy.Store.String()] = up
		out.InvalidKeys[sy.Store.String()] = src.invalid.Load()
		out.OK = out.OK && up
	}
	for _, src := range s.sources() {
		latest := src.latest.Load()
		for _, t := range src.targets {
			in := latest != nil && t.stats.lastGen.Load() == latest.gen
			out.OK = out.OK && in
			out.Targets = append(out.Targets, targetHealth{t.addr, in, t.stats.changes.Load(), t.stats.errors.Load()})
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if !out.OK {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(out)
}
