package script

import (
	"fmt"
	"math"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// DefaultMaxHeap is the heap guard's limit when none is configured: an eighth of the memory the
// process may use (the machine's RAM, or less: its address-space limit, its cgroup's
// memory.max), at most 1 GiB. A script that builds a table of strings in a loop takes a Go process
// to gigabytes in a second, and one that doubles a string with .. allocates twice its size in
// one step the guard cannot interrupt; the eighth leaves room for that last step.
var DefaultMaxHeap = sync.OnceValue(func() uint64 { return min(1<<30, memoryLimit()/8) })

// memoryLimit is the least of the machine's RAM, RLIMIT_AS and the cgroup (v2) memory.max.
func memoryLimit() uint64 {
	limit := uint64(math.MaxUint64)
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		limit = uint64(si.Totalram) * uint64(si.Unit)
	}
	var as syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_AS, &as) == nil && as.Cur != math.MaxUint64 {
		limit = min(limit, as.Cur)
	}
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			limit = min(limit, n)
		}
	}
	return limit
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

// maxErrorLen bounds a script error's message (a script may raise a 16 MiB string).
const maxErrorLen = 1024

// truncate cuts s to maxErrorLen bytes, saying so.
func truncate(s string) string {
	if len(s) <= maxErrorLen {
		return s
	}
	return s[:maxErrorLen] + fmt.Sprintf("... (%d bytes)", len(s))
}

// boundCalls replaces pcall and xpcall with versions that never make gopher-lua write a stack
// traceback: a traceback of a deep (or endlessly tail-calling) script is as large as the call
// chain, hundreds of megabytes for a loop stopped by its time budget. The error value is all a
// script gets, as in Lua 5.1's pcall.
func (rt *Runtime) boundCalls(v *vm) {
	L := v.L
	L.SetGlobal("pcall", L.NewFunction(func(L *lua.LState) int {
		L.CheckAny(1)
		return protectedCall(L, L.GetTop()-1, v.errorValue)
	}))
	L.SetGlobal("xpcall", L.NewFunction(func(L *lua.LState) int {
		handler := L.CheckFunction(2)
		L.Remove(2)
		return protectedCall(L, L.GetTop()-1, handler)
	}))
}

// protectedCall calls the function at index 1 with nargs arguments in protected mode with an
// error handler, and returns Lua's pcall results.
func protectedCall(L *lua.LState, nargs int, handler *lua.LFunction) int {
	if err := L.PCall(nargs, lua.MultRet, handler); err != nil {
		L.SetTop(0)
		L.Push(lua.LFalse)
		if aerr, ok := err.(*lua.ApiError); ok {
			L.Push(aerr.Object)
		} else {
			L.Push(lua.LString(err.Error()))
		}
		return 2
	}
	L.Insert(lua.LTrue, 1)
	return L.GetTop()
}
