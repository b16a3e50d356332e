package checkups

import (
	"context"
	"sort"
	"sync"
	"time"
)

// DefaultInterval is checkups' checkup_timer_interval.
const DefaultInterval = 5 * time.Second

// maxConcurrentChecks bounds the heartbeats of one upstream in flight at once.
const maxConcurrentChecks = 64

type heartbeatInfo struct {
	mu        sync.Mutex
	interval  time.Duration
	lastRound time.Time // end of the last completed round
	started   time.Time
	// checking holds a slot per server address: a server in several upstreams is checked
	// over at most one connection at a time.
	checking map[string]chan struct{}
}

// slot waits for the server's check slot; the returned func gives it back (nil: ctx ended).
func (h *heartbeatInfo) slot(ctx context.Context, addr string) func() {
	h.mu.Lock()
	if h.checking == nil {
		h.checking = make(map[string]chan struct{})
	}
	ch := h.checking[addr]
	if ch == nil {
		ch = make(chan struct{}, 1)
		h.checking[addr] = ch
	}
	h.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }
	case <-ctx.Done():
		return nil
	}
}

// Heartbeat runs active health checks every interval until ctx is done. Each upstream's round
// runs on its own and its verdicts apply as soon as its own checks are done, so one slow
// upstream (servers that black-hole the checks until their timeout) neither delays another's
// verdicts nor its next round: an upstream whose round is still running skips a tick. Within an
// upstream, servers are checked concurrently (at most 64 at a time), each check bounded by the
// upstream's timeout, so one hung server cannot stall a round (checkups #40).
func (r *Registry) Heartbeat(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	r.hb.mu.Lock()
	r.hb.interval, r.hb.started = interval, r.now()
	r.hb.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	running := make(map[string]bool)
	for {
		for _, p := range r.heartbeatPools() {
			mu.Lock()
			busy := running[p.name]
			running[p.name] = true
			mu.Unlock()
			if busy {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.checkPool(ctx, p)
				mu.Lock()
				delete(running, p.name)
				mu.Unlock()
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// heartbeatAlive is checkups' checkup_timer_alive: a round completed within the overtime.
func (r *Registry) heartbeatAlive(now time.Time) (bool, time.Time) {
	r.hb.mu.Lock()
	defer r.hb.mu.Unlock()
	if r.hb.lastRound.IsZero() {
		return false, time.Time{}
	}
	overtime := max(60*time.Second, 3*r.hb.interval)
	return now.Sub(r.hb.lastRound) < overtime, r.hb.lastRound
}

// heartbeatPools are the upstreams with active checks on.
func (r *Registry) heartbeatPools() []*pool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	pools := make([]*pool, 0, len(r.pools))
	for _, p := range r.pools {
		if p.heartbeatEnabled() {
			pools = append(pools, p)
		}
	}
	return pools
}

// CheckOnce runs one round of active checks of every upstream and returns when all are done.
func (r *Registry) CheckOnce(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range r.heartbeatPools() {
		wg.Add(1)
		go func() { defer wg.Done(); r.checkPool(ctx, p) }()
	}
	wg.Wait()
}

// checkPool runs one round of one upstream's checks and applies its verdicts.
func (r *Registry) checkPool(ctx context.Context, p *pool) {
	start := time.Now()
	sem := make(chan struct{}, maxConcurrentChecks)
	var wg sync.WaitGroup
	results := make([]heartbeatResult, len(p.all))
	for j, pe := range p.all {
		if pe.state.adminState() == StateMaint {
			results[j] = heartbeatResult{status: statusSkipped}
			continue // paused: its state stays as it was
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[j] = heartbeatResult{status: StatusErr, msg: ctx.Err().Error()}
				return
			}
			defer func() { <-sem }()
			release := r.hb.slot(ctx, pe.srv.Addr())
			if release == nil {
				results[j] = heartbeatResult{status: StatusErr, msg: ctx.Err().Error()}
				return
			}
			defer release()
			results[j] = check(ctx, p.up, r.roleOf(p), pe.srv)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	if r.OnHeartbeat != nil {
		r.OnHeartbeat(p.name, time.Since(start))
	}
	now := r.now()
	r.apply(p, results, now)
	r.hb.mu.Lock()
	if now.After(r.hb.lastRound) {
		r.hb.lastRound = now
	}
	r.hb.mu.Unlock()
}

// apply writes one upstream's results as checkups' cluster_heartbeat does: failures before the
// first ok server are held back; once an ok server is seen they are written with unstable
// downgraded to err; if every server failed, held-back servers are written unstable-first and,
// when the upstream is protected, the first of them is kept usable as unstable.
func (r *Registry) apply(p *pool, res []heartbeatResult, now time.Time) {
	type item struct {
		pe *peer
		r  heartbeatResult
	}
	var held []item
	seenOK := false
	write := func(it item) {
		if it.r.status == StatusUnstable && seenOK {
			it.r.status = StatusErr
		}
		if it.r.status == StatusOK && it.r.msg != "" && it.r.msg != it.pe.state.message() {
			r.logger().Warn("peer flagged", "upstream", p.name, "server", it.pe.srv.Addr(), "msg", it.r.msg)
		}
		if it.pe.state.recordHeartbeat(it.r, p.up.sensibility(), p.up.rise(), now) {
			if it.r.status == StatusOK {
				r.logger().Info("peer up", "upstream", p.name, "server", it.pe.srv.Addr())
			} else {
				r.logger().Info("peer down", "upstream", p.name, "server", it.pe.srv.Addr(), "status", string(it.r.status), "msg", it.r.msg)
			}
		}
	}
	for j, pe := range p.all {
		it := item{pe: pe, r: res[j]}
		switch {
		case it.r.status == statusSkipped:
		case it.r.status == StatusLagging:
			write(it) // a verdict of its own: never held back nor kept usable as the last server
		case it.r.status == StatusOK:
			if !seenOK {
				seenOK = true
				for _, h := range held {
					write(h)
				}
				held = nil
			}
			write(it)
		case seenOK:
			write(it)
		default:
			held = append(held, it)
		}
	}
	if seenOK || len(held) == 0 {
		return
	}
	sort.SliceStable(held, func(a, b int) bool {
		return held[a].r.status == StatusUnstable && held[b].r.status != StatusUnstable
	})
	if p.up.protected() && r.roleOf(p) != RoleReplica {
		// Not for replicas: a read their primary can serve is better than one sent to a
		// server that fails its checks (a frozen replica would hold every read).
		held[0].r.status = StatusUnstable
	}
	for _, h := range held {
		write(h)
	}
}

// statusSkipped is the result of a server in maintenance: nothing is recorded.
const statusSkipped Status = "skipped"

// check runs one heartbeat of the upstream's type against a server.
func check(ctx context.Context, up *Upstream, role string, srv Server) heartbeatResult {
	ctx, cancel := context.WithTimeout(ctx, up.DialTimeout())
	defer cancel()
	var err error
	var res heartbeatResult
	switch up.typ() {
	case TypMySQL:
		res, err = checkMySQL(ctx, up, role, srv)
		if err == nil {
			return res
		}
	case TypHTTP:
		err = checkHTTP(ctx, up, srv)
	case TypRedis:
		res, err = checkRedis(ctx, srv)
		if err == nil {
			return res
		}
	default:
		err = checkTCP(ctx, srv)
	}
	if err != nil {
		return heartbeatResult{status: StatusErr, msg: err.Error()}
	}
	return heartbeatResult{status: StatusOK}
}
