package script

import (
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// budget is an invocation's Lua running time: it fires after the allowance is spent, and is
// paused while the script sleeps or waits on a socket.
type budget struct {
	mu        sync.Mutex
	remaining time.Duration
	started   time.Time
	timer     *time.Timer
	fire      func()
}

func newBudget(d time.Duration, fire func()) *budget {
	return &budget{remaining: d, started: time.Now(), timer: time.AfterFunc(d, fire), fire: fire}
}

func (b *budget) pause() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.timer.Stop() {
		b.remaining -= time.Since(b.started)
	}
}

func (b *budget) resume() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.started = time.Now()
	b.timer = time.AfterFunc(max(b.remaining, 0), b.fire)
}

func (b *budget) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.timer.Stop()
}

// heapGuard stops running scripts when the process heap passes a limit: gopher-lua cannot count
// a state's allocations, so the guard watches the heap while scripts run and cancels every
// running invocation once it is over the limit (a script holding memory is among them).
type heapGuard struct {
	mu      sync.Mutex
	running map[*invocation]struct{}
	limit   uint64 // the newest invocation's limit (a reload may change it)
	ticking bool
}

// watch registers inv and returns its unregister func.
func (g *heapGuard) watch(limit uint64, inv *invocation) func() {
	g.mu.Lock()
	if g.running == nil {
		g.running = make(map[*invocation]struct{})
	}
	g.running[inv] = struct{}{}
	g.limit = limit
	if !g.ticking {
		g.ticking = true
		go g.loop()
	}
	g.mu.Unlock()
	return func() {
		g.mu.Lock()
		delete(g.running, inv)
		g.mu.Unlock()
	}
}

func (g *heapGuard) loop() {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		g.mu.Lock()
		if len(g.running) == 0 {
			g.ticking = false
			g.mu.Unlock()
			return
		}
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 && sample[0].Value.Uint64() > g.limit {
			for inv := range g.running {
				inv.cancel(ErrMemory)
			}
		}
		g.mu.Unlock()
	}
}

// boundStrings replaces string.rep with a version that refuses results above MaxString, the
// quickest way a script could exhaust memory in one call.
func (rt *Runtime) boundStrings(L *lua.LState) {
	str := L.GetGlobal("string").(*lua.LTable)
	str.RawSetString("rep", L.NewFunction(func(L *lua.LState) int {
		limit := rt.maxString()
		s := L.CheckString(1)
		n := L.CheckInt(2)
		if n <= 0 {
			L.Push(lua.LString(""))
			return 1
		}
		if len(s) > 0 && n > limit/len(s) {
			L.RaiseError("string.rep: result of %d bytes is over the limit of %d", len(s)*n, limit)
		}
		L.Push(lua.LString(strings.Repeat(s, n)))
		return 1
	}))
}
