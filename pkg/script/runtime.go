package script

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Defaults of the sandbox.
const (
	DefaultTimeout    = time.Second      // Lua running time per hook invocation (sleeps and socket waits excluded)
	DefaultLogTimeout = 10 * time.Second // a log hook's whole time, waits included
	DefaultMaxString  = 16 << 20         // largest string string.rep and friends may build
	callStackSize     = 200
	registryMaxSize   = 256 << 10 // Lua stack slots per state
)

// Runtime runs hook scripts from a Code registry. States are pooled, so a connection does not pay
// for a fresh VM; a state's required modules are dropped when the installed code changes.
type Runtime struct {
	Code   *Code
	Dicts  *Dicts
	Logger *slog.Logger // script errors and ngx.log; default: discard
	// OnRun, when set, gets every hook run: the script's name and ok, exit (ngx.exit) or error
	// (a Lua error, the time budget or the memory guard).
	OnRun func(script, result string)

	limits atomic.Pointer[Limits]
	pool   sync.Pool
	heap   heapGuard
}

// Limits bound what one hook invocation may do. Zero fields take the defaults.
type Limits struct {
	Timeout   time.Duration // Lua running time per invocation; default DefaultTimeout
	MaxHeap   uint64        // heap bytes above which running scripts are stopped; 0: DefaultMaxHeap
	MaxString int           // largest string string.rep may build; default DefaultMaxString
	// LogTimeout bounds a log hook's whole time, waits included (the client is gone, so
	// nothing else ends a log script blocked on a socket); default DefaultLogTimeout.
	LogTimeout time.Duration
}

// SetLimits changes the limits for the invocations that start from now on; safe to call while
// scripts run (a config reload does).
func (rt *Runtime) SetLimits(l Limits) { rt.limits.Store(&l) }

func (rt *Runtime) currentLimits() Limits {
	l := Limits{}
	if p := rt.limits.Load(); p != nil {
		l = *p
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	if l.MaxString <= 0 {
		l.MaxString = DefaultMaxString
	}
	if l.LogTimeout <= 0 {
		l.LogTimeout = DefaultLogTimeout
	}
	if l.MaxHeap == 0 {
		l.MaxHeap = DefaultMaxHeap()
	}
	return l
}

func (rt *Runtime) logger() *slog.Logger {
	if rt.Logger != nil {
		return rt.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (rt *Runtime) maxString() int { return rt.currentLimits().MaxString }

// vm is one pooled Lua state.
type vm struct {
	rt      *Runtime
	L       *lua.LState
	ngx     *lua.LTable
	globals *lua.LTable                // the shared globals (see guard.go)
	loaded  *lua.LTable                // package.loaded
	preload *lua.LTable                // package.preload: the built-in modules
	loading lua.LValue                 // package.loaded's mark of a module being loaded
	version int64                      // code version its package.loaded reflects
	builtin map[string]bool            // package.loaded entries that are not user modules
	fns     map[*Module]*lua.LFunction // modules' and hooks' functions, each with its own globals
	cur     *invocation                // the invocation running on this state

	proxies  []*lua.LTable         // read-only views of the shared tables (guard.go)
	isProxy  map[*lua.LTable]bool  // the same, for rawset
	required map[string]lua.LValue // user modules in package.loaded, as require left them

	errorValue *lua.LFunction // the error handler that keeps an error as it is (no traceback)
}

func (rt *Runtime) get() *vm {
	if v, ok := rt.pool.Get().(*vm); ok {
		return v
	}
	return rt.newVM()
}

func (rt *Runtime) put(v *vm) {
	v.cur = nil
	rt.pool.Put(v)
}

// newVM builds a sandboxed state: base (without dofile, loadfile, setfenv), package (require
// of installed modules and built-in ones only), table, string (bounded rep), math, coroutine;
// no os, io, debug. The shared tables are then guarded (guard.go).
func (rt *Runtime) newVM() *vm {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: callStackSize, RegistryMaxSize: registryMaxSize})
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString}, {lua.MathLibName, lua.OpenMath}, {lua.CoroutineLibName, lua.OpenCoroutine},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	for _, name := range []string{"dofile", "loadfile", "collectgarbage"} {
		L.SetGlobal(name, lua.LNil)
	}
	v := &vm{rt: rt, L: L, globals: L.G.Global, fns: make(map[*Module]*lua.LFunction),
		isProxy: make(map[*lua.LTable]bool), required: make(map[string]lua.LValue)}
	rt.boundStrings(L)
	v.errorValue = L.NewFunction(func(L *lua.LState) int { return 1 })
	rt.boundCalls(v)

	pkg := L.GetGlobal("package").(*lua.LTable)
	pkg.RawSetString("path", lua.LString(""))
	pkg.RawSetString("cpath", lua.LString(""))
	pkg.RawSetString("loadlib", lua.LNil)
	pkg.RawSetString("loaders", L.NewTable()) // require below does not use them
	v.loaded = L.GetField(pkg, "loaded").(*lua.LTable)
	v.preload = L.GetField(pkg, "preload").(*lua.LTable)
	v.loading = L.NewUserData()
	L.SetGlobal("require", L.NewFunction(v.require))

	v.ngx = v.newNgx()
	L.SetGlobal("ngx", v.ngx)
	preloadModules(v, v.preload)
	for _, name := range builtinModules() {
		L.Push(L.GetGlobal("require"))
		L.Push(lua.LString(name))
		L.Call(1, 0) // loaded now, so they are guarded with the rest
	}

	// From here on scripts see the shared tables through read-only proxies (guard.go).
	for _, sub := range []string{"req", "socket", "var", "shared"} {
		v.ngx.RawSetString(sub, v.readOnly("ngx."+sub, v.ngx.RawGetString(sub).(*lua.LTable)))
	}
	for _, sub := range []string{"loaded", "preload", "loaders"} {
		pkg.RawSetString(sub, v.readOnly("package."+sub, pkg.RawGetString(sub).(*lua.LTable)))
	}
	v.builtin = make(map[string]bool)
	var builtin []string
	v.loaded.ForEach(func(k, _ lua.LValue) { builtin = append(builtin, k.String()) })
	for _, name := range builtin {
		v.builtin[name] = true
		if t, ok := v.loaded.RawGetString(name).(*lua.LTable); ok && t != v.globals {
			view := v.readOnly(name, t)
			v.loaded.RawSetString(name, view)
			if v.globals.RawGetString(name) == t {
				v.globals.RawSetString(name, view)
			}
		}
	}
	globalsView := v.readOnly("_G", v.globals)
	v.loaded.RawSetString("_G", globalsView)
	v.sandboxBase(globalsView)
	v.globals.RawSetString("ngx", v.readOnly("ngx", v.ngx))
	lockMetatable(L.GetMetatable(lua.LString("")))
	return v
}

// require is Lua's require over the built-in modules and the installed code: script.* names
// load as functions (not run), other names run once, in globals of their own, and their value
// is the module.
func (v *vm) require(L *lua.LState) int {
	name := L.CheckString(1)
	if mod := v.loaded.RawGetString(name); mod != lua.LNil {
		if mod == v.loading {
			L.RaiseError("loop or previous error loading module '%s'", name)
		}
		L.Push(mod)
		return 1
	}
	var loader lua.LValue
	if f := v.preload.RawGetString(name); f != lua.LNil {
		loader = f
	} else if m := v.rt.Code.Lookup(name); m != nil {
		fn := v.function(m)
		if strings.HasPrefix(name, "script.") {
			loader = L.NewFunction(func(L *lua.LState) int { L.Push(fn); return 1 })
		} else {
			loader = L.NewFunction(func(L *lua.LState) int {
				L.Push(fn)
				L.Call(0, 1)
				if L.Get(-1) == lua.LNil {
					L.RaiseError("%s lua source does not return the module", name)
				}
				return 1
			})
		}
	} else {
		L.RaiseError("module %s not found:\n\tno field package.preload['%s']\n\tcode not in shdict: %s", name, name, name)
	}
	v.loaded.RawSetString(name, v.loading)
	L.Push(loader)
	L.Push(lua.LString(name))
	L.Call(1, 1)
	mod := L.Get(-1)
	L.Pop(1)
	if mod == lua.LNil {
		mod = lua.LTrue
	}
	v.loaded.RawSetString(name, mod)
	if !v.builtin[name] && v.builtin != nil {
		v.required[name] = mod
	}
	L.Push(mod)
	return 1
}

// function returns the state's function for a module or hook version. Like an OpenResty chunk,
// it runs with its own globals table (see newEnv), created once per state and version, so a
// script's globals never leak into another script.
func (v *vm) function(m *Module) *lua.LFunction {
	if fn, ok := v.fns[m]; ok {
		return fn
	}
	if len(v.fns) > 512 {
		clear(v.fns)
	}
	fn := v.L.NewFunctionFromProto(m.proto)
	fn.Env = v.newEnv()
	v.fns[m] = fn
	return fn
}

// sync drops modules required under an older code version.
func (v *vm) sync() {
	cur := v.rt.Code.GlobalVersion()
	if cur == v.version {
		return
	}
	loaded := v.loaded // the table itself: package.loaded is a read-only view of it
	var drop []lua.LValue
	loaded.ForEach(func(k, _ lua.LValue) {
		if !v.builtin[k.String()] {
			drop = append(drop, k)
		}
	})
	for _, k := range drop {
		loaded.RawSet(k, lua.LNil)
	}
	clear(v.required)
	v.version = cur
}

// ExitError ends an invocation through ngx.exit.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("ngx.exit(%d)", e.Code) }

// ScriptError is a script that failed: a Lua error, a timeout or the memory guard.
type ScriptError struct {
	Name string
	Err  error
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("script %s: %s", e.Name, truncate(e.Err.Error()))
}
func (e *ScriptError) Unwrap() error { return e.Err }

// Errors that stop a script.
var (
	ErrTimeout = errors.New("time budget exceeded")
	ErrMemory  = errors.New("memory limit exceeded")
)

// invocation is one hook run on one state.
type invocation struct {
	v      *vm
	sess   *session
	name   string
	ctx    context.Context
	cancel context.CancelCauseFunc
	budget *budget
	exit   *ExitError
}

// run calls module m as a hook of sess. The function runs with its own globals (reads fall
// through to the shared ones), under the time budget and the heap guard.
func (rt *Runtime) run(ctx context.Context, sess *session, m *Module) (err error) {
	if rt.OnRun != nil {
		defer func() {
			var exit *ExitError
			switch {
			case err == nil:
				rt.OnRun(m.Name, "ok")
			case errors.As(err, &exit):
				rt.OnRun(m.Name, "exit")
			default:
				rt.OnRun(m.Name, "error")
			}
		}()
	}
	v := rt.get()
	defer func() {
		var se *ScriptError
		if errors.As(err, &se) {
			v.L.Close() // a state a script failed in is not reused
			if errors.Is(err, ErrMemory) {
				debug.FreeOSMemory() // give back what the script took, now rather than later
			}
			return
		}
		if what := v.changed(); what != "" {
			rt.logger().Warn("script changed a table every script shares; its Lua state is discarded", "script", m.Name, "table", what)
			v.L.Close()
			return
		}
		rt.put(v)
	}()
	v.sync()
	ictx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	inv := &invocation{v: v, sess: sess, name: m.Name, ctx: ictx, cancel: cancel}
	limits := rt.currentLimits()
	inv.budget = newBudget(limits.Timeout, func() { cancel(ErrTimeout) })
	defer inv.budget.stop()
	defer rt.heap.watch(limits.MaxHeap, inv)()
	v.cur = inv
	L := v.L
	L.SetContext(ictx)
	defer L.RemoveContext()
	err = L.CallByParam(lua.P{Fn: v.function(m), NRet: 0, Protect: true, Handler: v.errorValue})
	if inv.exit != nil {
		return inv.exit
	}
	if err == nil {
		return nil
	}
	if cause := context.Cause(ictx); cause != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w (%v)", cause, firstLine(err))
	}
	L.SetTop(0)
	return &ScriptError{Name: m.Name, Err: err}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
