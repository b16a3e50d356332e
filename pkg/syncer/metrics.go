package syncer

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Metrics are the syncer's counters, served as Prometheus text and as the health check.
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

// ServeMetrics writes the Prometheus text exposition.
func (m *Metrics) ServeMetrics(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintln(w, "# HELP slardar_sync_store_up Whether the last read of the store succeeded.\n# TYPE slardar_sync_store_up gauge")
	for _, n := range slices.Sorted(maps.Keys(m.sources)) {
		fmt.Fprintf(w, "slardar_sync_store_up{store=%q} %d\n", n, b2i(m.sources[n].up.Load()))
	}
	fmt.Fprintln(w, "# HELP slardar_sync_invalid_keys Store values skipped because they are invalid.\n# TYPE slardar_sync_invalid_keys gauge")
	for _, n := range slices.Sorted(maps.Keys(m.sources)) {
		fmt.Fprintf(w, "slardar_sync_invalid_keys{store=%q} %d\n", n, m.sources[n].invalid.Load())
	}
	for _, metric := range []struct {
		name, help, typ string
		value           func(*TargetStats) string
	}{
		{"slardar_sync_last_success_timestamp_seconds", "When the target was last found or made equal to the store.", "gauge",
			func(t *TargetStats) string { return fmt.Sprintf("%.3f", float64(t.lastOK.Load())/1e9) }},
		{"slardar_sync_changes_applied_total", "Admin commands applied to the target.", "counter",
			func(t *TargetStats) string { return fmt.Sprint(t.changes.Load()) }},
		{"slardar_sync_errors_total", "Failed sync attempts.", "counter",
			func(t *TargetStats) string { return fmt.Sprint(t.errors.Load()) }},
		{"slardar_sync_target_lag_seconds", "Age of the store snapshot the target last matched.", "gauge",
			func(t *TargetStats) string {
				if t.latestAt.Load() == 0 {
					return "NaN"
				}
				return fmt.Sprintf("%.3f", time.Since(time.Unix(0, t.latestAt.Load())).Seconds())
			}},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", metric.name, metric.help, metric.name, metric.typ)
		for _, n := range slices.Sorted(maps.Keys(m.targets)) {
			fmt.Fprintf(w, "%s{target=%q} %s\n", metric.name, n, metric.value(m.targets[n]))
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ServeHealth answers 200 when every store is reachable and every target matched the latest
// snapshot of its source, 503 otherwise, with the details as JSON.
func (s *Syncer) ServeHealth(w http.ResponseWriter, _ *http.Request) {
	type targetHealth struct {
		Target  string `json:"target"`
		InSync  bool   `json:"in_sync"`
		Changes int64  `json:"changes_applied"`
		Errors  int64  `json:"errors"`
	}
	out := struct {
		OK      bool            `json:"ok"`
		Stores  map[string]bool `json:"stores"`
		Targets []targetHealth  `json:"targets"`
	}{OK: true, Stores: map[string]bool{}}
	for _, sy := range s.Syncs {
		up := s.Metrics.source(sy.Store.String()).up.Load()
		out.Stores[sy.Store.String()] = up
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
