package script

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Defaults of the sandbox.
const (
	DefaultTimeout   = time.Second // Lua running time per hook invocation (sleeps and socket waits excluded)
	DefaultMaxString = 16 << 20    // largest string string.rep and friends may build
	callStackSize    = 200
	registryMaxSize  = 256 << 10 // Lua stack slots per state
)

// Runtime runs hook scripts from a Code registry. States are pooled, so a connection does not pay
// for a fresh VM; a state's required modules are dropped when the installed code changes.
type Runtime struct {
	Code   *Code
	Dicts  *Dicts
	Logger *slog.Logger // script errors and ngx.log; default: discard

	limits atomic.Pointer[Limits]
	pool   sync.Pool
	guard  heapGuard
}

// Limits bound what one hook invocation may do. Zero fields take the defaults.
type Limits struct {
	Timeout   time.Duration // Lua running time per invocation; default DefaultTimeout
	MaxHeap   uint64        // heap bytes above which running scripts are stopped; 0: no guard
	MaxString int           // largest string string.rep may build; default DefaultMaxString
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
	version int64                      // code version its package.loaded reflects
	builtin map[string]bool            // package.loaded entries that are not user modules
	fns     map[*Module]*lua.LFunction // modules' functions
	hooks   map[*Module]*lua.LFunction // hook functions, each with its own globals table
	cur     *invocation                // the invocation running on this state
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

// newVM builds a sandboxed state: base (without dofile, loadfile), package (require of installed
// modules and preloads only), table, string (bounded rep), math, coroutine; no os, io, debug.
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
	v := &vm{rt: rt, L: L, fns: make(map[*Module]*lua.LFunction), hooks: make(map[*Module]*lua.LFunction)}
	rt.boundStrings(L)

	pkg := L.GetGlobal("package").(*lua.LTable)
	pkg.RawSetString("path", lua.LString(""))
	pkg.RawSetString("cpath", lua.LString(""))
	pkg.RawSetString("loadlib", lua.LNil)
	preload := L.GetField(pkg, "preload").(*lua.LTable)
	loaders := L.NewTable()
	loaders.Append(L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(1)
		if f := preload.RawGetString(name); f != lua.LNil {
			L.Push(f)
			return 1
		}
		L.Push(lua.LString("\n\tno field package.preload['" + name + "']"))
		return 1
	}))
	loaders.Append(L.NewFunction(v.codeLoader))
	pkg.RawSetString("loaders", loaders)
	L.SetField(L.Get(lua.RegistryIndex), "_LOADERS", loaders) // what gopher-lua's require reads

	v.ngx = v.newNgx()
	L.SetGlobal("ngx", v.ngx)
	preloadModules(v, preload)

	v.builtin = make(map[string]bool)
	L.GetField(pkg, "loaded").(*lua.LTable).ForEach(func(k, _ lua.LValue) { v.builtin[k.String()] = true })
	return v
}

// codeLoader is the package loader for installed code: script.* names load as functions (not
// run), other names run once and their value is the module.
func (v *vm) codeLoader(L *lua.LState) int {
	name := L.CheckString(1)
	m := v.rt.Code.Lookup(name)
	if m == nil {
		L.Push(lua.LString("\n\tcode not in shdict: " + name))
		return 1
	}
	fn := v.function(m)
	if strings.HasPrefix(name, "script.") {
		L.Push(L.NewFunction(func(L *lua.LState) int { L.Push(fn); return 1 }))
		return 1
	}
	L.Push(L.NewFunction(func(L *lua.LState) int {
		L.Push(fn)
		L.Call(0, 1)
		if L.Get(-1) == lua.LNil {
			L.RaiseError("%s lua source does not return the module", name)
		}
		return 1
	}))
	return 1
}

// function returns the state's function for a module version.
func (v *vm) function(m *Module) *lua.LFunction {
	if fn, ok := v.fns[m]; ok {
		return fn
	}
	if len(v.fns) > 256 {
		clear(v.fns)
	}
	fn := v.L.NewFunctionFromProto(m.proto)
	v.fns[m] = fn
	return fn
}

// hook returns the state's function for a hook script version. Like an OpenResty chunk, it
// runs with its own globals table (reads fall through to the shared globals), created once per
// state and version, so a script's globals never leak into another script.
func (v *vm) hook(m *Module) *lua.LFunction {
	if fn, ok := v.hooks[m]; ok {
		return fn
	}
	if len(v.hooks) > 256 {
		clear(v.hooks)
	}
	L := v.L
	env := L.NewTable()
	meta := L.NewTable()
	meta.RawSetString("__index", L.Get(lua.GlobalsIndex))
	L.SetMetatable(env, meta)
	fn := L.NewFunctionFromProto(m.proto)
	fn.Env = env
	v.hooks[m] = fn
	return fn
}

// sync drops modules required under an older code version.
func (v *vm) sync() {
	cur := v.rt.Code.GlobalVersion()
	if cur == v.version {
		return
	}
	loaded := v.L.GetField(v.L.GetGlobal("package"), "loaded").(*lua.LTable)
	var drop []lua.LValue
	loaded.ForEach(func(k, _ lua.LValue) {
		if !v.builtin[k.String()] {
			drop = append(drop, k)
		}
	})
	for _, k := range drop {
		loaded.RawSet(k, lua.LNil)
	}
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

func (e *ScriptError) Error() string { return fmt.Sprintf("script %s: %v", e.Name, e.Err) }
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
	v := rt.get()
	defer func() {
		var se *ScriptError
		if errors.As(err, &se) {
			v.L.Close() // a state a script failed in is not reused
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
	if limits.MaxHeap > 0 {
		defer rt.guard.watch(limits.MaxHeap, inv)()
	}
	v.cur = inv
	L := v.L
	L.SetContext(ictx)
	defer L.RemoveContext()
	err = L.CallByParam(lua.P{Fn: v.hook(m), NRet: 0, Protect: true})
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
