// Package syncer is store-sync's engine: it watches Consul, etcd or a directory and keeps every
// target proxy's upstreams, code and routes equal to the store, level-triggered.
package syncer

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/backoff"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/reconcile"
	"github.com/slardar-go/slardar/pkg/store"
)

// Defaults of the syncer.
const (
	DefaultResync      = 30 * time.Second
	DefaultDebounceMin = 50 * time.Millisecond
	DefaultDebounceMax = time.Second
	dialTimeout        = 5 * time.Second
)

// Sync is one source feeding a set of targets.
type Sync struct {
	Store   store.Store
	Prefix  string
	Targets []string // admin addresses
	Token   string   // admin token of the targets
	Prune   bool     // delete what the store does not have, not only what it had
}

// Syncer runs Syncs until its context ends.
type Syncer struct {
	Syncs       []Sync
	Log         *slog.Logger
	Resync      time.Duration // full resync of every target; default DefaultResync
	DebounceMin time.Duration // quiet time after a change before applying; default 50ms
	DebounceMax time.Duration // longest delay under a burst of changes; default 1s

	Metrics *Metrics // nil: Run makes one

	mu      sync.Mutex
	running []*source
}

func (s *Syncer) sources() []*source {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*source(nil), s.running...)
}

// snapshot is one generation of the store's content. It is parsed once, when a target first
// needs it: under a burst of writes most generations are never parsed at all.
type snapshot struct {
	gen   int64
	at    time.Time
	kv    map[string][]byte
	src   *source
	once  sync.Once
	state reconcile.Desired
}

// desired parses the snapshot (once), reports invalid values and records the names as owned.
func (sn *snapshot) desired(log *slog.Logger) reconcile.Desired {
	sn.once.Do(func() {
		sn.state = reconcile.ParseSnapshot(sn.src.sync.Prefix, sn.kv, config.NormalizeUser)
		for _, p := range sn.state.Problems {
			log.Error("invalid value in the store, skipped", "key", p.Key, "err", p.Err)
		}
		sn.src.stats.invalid.Store(int64(len(sn.state.Problems)))
		sn.src.mu.Lock()
		sn.src.owned.Add(sn.state)
		sn.src.mu.Unlock()
	})
	return sn.state
}

// source is a running Sync: its latest snapshot and its targets.
type source struct {
	sync    Sync
	latest  atomic.Pointer[snapshot]
	mu      sync.Mutex
	owned   reconcile.Owned
	gen     int64
	targets []*target
	stats   *SourceStats
}

type target struct {
	addr     string
	trigger  chan struct{}
	stats    *TargetStats
	instance string // the target's instance_id when last polled
}

// Run watches every source and drives every target until ctx is done.
func (s *Syncer) Run(ctx context.Context) {
	if s.Metrics == nil {
		s.Metrics = &Metrics{}
	}
	var wg sync.WaitGroup
	for _, sy := range s.Syncs {
		src := &source{sync: sy, owned: reconcile.Owned{}}
		for _, addr := range sy.Targets {
			t := &target{addr: addr, trigger: make(chan struct{}, 1), stats: s.Metrics.target(addr)}
			src.targets = append(src.targets, t)
			wg.Add(1)
			go func() { defer wg.Done(); s.drive(ctx, src, t) }()
		}
		s.mu.Lock()
		s.running = append(s.running, src)
		s.mu.Unlock()
		src.stats = s.Metrics.source(sy.Store.String())
		wg.Add(1)
		go func() { defer wg.Done(); s.watch(ctx, src) }()
	}
	wg.Wait()
}

// Bounds of the store's health probe.
const (
	probeInterval = time.Second
	probeTimeout  = time.Second
)

// watch runs the store's watch with a probe beside it. A watch may not notice that its store
// went away (etcd's client waits for the server to come back), so a cheap read every second
// tells: a store that does not answer is marked down (health, metric, one log line) and its
// watch is stopped; once the store answers again the watch starts over from a full read, so a
// change made after an outage arrives within seconds.
func (s *Syncer) watch(ctx context.Context, src *source) {
	st := src.sync.Store
	for ctx.Err() == nil {
		wctx, stop := context.WithCancel(ctx)
		lost := make(chan struct{})
		go func() {
			t := time.NewTicker(probeInterval)
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-t.C:
				}
				if err := ping(wctx, st); err != nil && wctx.Err() == nil {
					s.storeDown(src, err)
					close(lost)
					stop()
					return
				}
			}
		}()
		st.Watch(wctx, src.sync.Prefix, func(kv map[string][]byte) {
			s.storeUp(src)
			src.update(kv)
		}, func(err error) { s.storeDown(src, err) })
		stop()
		select {
		case <-lost:
		default:
			continue
		}
		for ctx.Err() == nil && ping(ctx, st) != nil {
			backoff.Sleep(ctx, probeInterval)
		}
	}
}

func ping(ctx context.Context, st store.Store) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return st.Ping(ctx)
}

// storeDown marks a store unreachable, logging the change once.
func (s *Syncer) storeDown(src *source, err error) {
	if src.stats.up.Swap(false) || !src.stats.seen.Swap(true) {
		s.log().Warn("store unreachable: proxies keep their configuration", "store", src.sync.Store.String(), "err", err)
	}
}

// storeUp marks a store reachable, logging a recovery.
func (s *Syncer) storeUp(src *source) {
	if !src.stats.up.Swap(true) && src.stats.seen.Swap(true) {
		s.log().Info("store reachable again", "store", src.sync.Store.String())
	}
}

func (s *Syncer) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// update publishes a new snapshot and wakes the targets.
func (src *source) update(kv map[string][]byte) {
	src.mu.Lock()
	src.gen++
	src.latest.Store(&snapshot{gen: src.gen, at: time.Now(), kv: kv, src: src})
	src.mu.Unlock()
	for _, t := range src.targets {
		select {
		case t.trigger <- struct{}{}:
		default:
		}
	}
}

func (src *source) ownedCopy() reconcile.Owned {
	src.mu.Lock()
	defer src.mu.Unlock()
	return src.owned.Clone()
}

// drive keeps one target in step: on a new snapshot (debounced), on the periodic resync, and
// on retries after failures (capped exponential backoff with jitter), each target on its own so
// a dead one holds back nobody.
func (s *Syncer) drive(ctx context.Context, src *source, t *target) {
	resync := s.Resync
	if resync <= 0 {
		resync = DefaultResync
	}
	tick := time.NewTicker(resync)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	poll := time.NewTicker(targetPoll)
	defer poll.Stop()
	b := backoff.Backoff{Base: 200 * time.Millisecond, Max: 6400 * time.Millisecond}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.trigger:
			if !s.debounce(ctx, t) {
				return
			}
		case <-tick.C:
		case <-retry.C:
		case <-poll.C:
			if !s.pollTarget(ctx, src, t) {
				continue
			}
		}
		snap := src.latest.Load()
		if snap == nil {
			continue // no snapshot yet: nothing to compare with
		}
		err := s.syncOnce(ctx, src, t, snap)
		if err == nil {
			b.Reset()
			retry.Stop()
			continue
		}
		d := b.Next()
		s.log().Warn("target not in sync, retrying", "target", t.addr, "in", d.String(), "err", err)
		retry.Reset(d)
	}
}

// targetPoll is how often a target is asked who it is (GET upstream status): a proxy restarted
// empty is refilled within this, not at the next resync.
const targetPoll = 2 * time.Second

// pollTarget asks the target for its instance and reports whether to sync it now: it restarted
// (a new instance), or it answers again while not in sync. A target that does not answer is no
// longer in sync (health says so) until a sync succeeds.
func (s *Syncer) pollTarget(ctx context.Context, src *source, t *target) bool {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	r, err := admin.Do(ctx, t.addr, src.sync.Token, "GET", "upstream", "status", nil)
	var id string
	if err == nil {
		id, err = reconcile.Instance(r.Data)
	}
	if err != nil {
		t.stats.lastGen.Store(0)
		return false
	}
	if t.stats.lastGen.Load() != 0 && id == t.instance {
		return false
	}
	if t.instance != "" && id != t.instance {
		s.log().Info("target restarted: syncing it now", "target", t.addr)
	}
	return true
}

// debounce waits until changes pause for DebounceMin, at most DebounceMax in all.
func (s *Syncer) debounce(ctx context.Context, t *target) bool {
	quiet, longest := s.DebounceMin, s.DebounceMax
	if quiet <= 0 {
		quiet = DefaultDebounceMin
	}
	if longest <= 0 {
		longest = DefaultDebounceMax
	}
	deadline := time.NewTimer(longest)
	defer deadline.Stop()
	for {
		q := time.NewTimer(quiet)
		select {
		case <-ctx.Done():
			q.Stop()
			return false
		case <-t.trigger:
			q.Stop()
		case <-q.C:
			return true
		case <-deadline.C:
			q.Stop()
			return true
		}
	}
}

// syncOnce brings the target in line with the snapshot and counts what happened.
func (s *Syncer) syncOnce(ctx context.Context, src *source, t *target, snap *snapshot) error {
	_, n, instance, err := src.sync.reconcile(ctx, t.addr, snap.desired(s.log()), src.ownedCopy(), false)
	if instance != "" {
		t.instance = instance
	}
	t.stats.changes.Add(int64(n))
	if n > 0 {
		s.log().Info("target synced", "target", t.addr, "changes", n, "generation", snap.gen)
	}
	if err != nil {
		t.stats.errors.Add(1)
		return err
	}
	t.stats.synced(snap)
	return nil
}

// reconcile is the one sync step of store-sync, for the syncer and for --once: dial the target,
// read its state back, plan the difference from desired and, unless dry, apply it. It returns
// the plan and how many of its changes were applied.
// It also returns which life of the target it read (reconcile.Actual.Instance).
func (sy Sync) reconcile(ctx context.Context, addr string, desired reconcile.Desired, owned reconcile.Owned, dry bool) ([]reconcile.Change, int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout+30*time.Second)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
	c, err := admin.Dial(dctx, addr, sy.Token)
	dcancel()
	if err != nil {
		return nil, 0, "", err
	}
	defer c.Close()
	actual, err := reconcile.ReadActual(ctx, c)
	if err != nil {
		return nil, 0, "", fmt.Errorf("reading %s: %w", addr, err)
	}
	changes := reconcile.Plan(desired, actual, owned, sy.Prune)
	if dry {
		reconcile.Explain(desired, actual, changes)
		return changes, 0, actual.Instance, nil
	}
	n, err := reconcile.Apply(ctx, c, desired, changes)
	return changes, n, actual.Instance, err
}
