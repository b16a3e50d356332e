package script

import (
	lua "github.com/yuin/gopher-lua"
)

// A Lua state is shared, one invocation at a time, by every hook script of every port (states
// are pooled). What one script does to the tables all of them read (ngx, string, table, the
// globals, the built-in modules, ...) must not change what the next script sees: one port's
// script replacing ngx.exit must not switch off another port's access control. So:
//
//   - hooks and modules run with globals tables of their own (reads fall through to the shared
//     globals, writes stay in their own table, _G names their own table), and so do chunks
//     made by load and loadstring; the shared globals themselves are out of scripts' reach
//     (getfenv gives a read-only view, setfenv is gone);
//   - every shared table a script can reach is a read-only proxy: reads go through to the real
//     table, writes raise, its metatable can be neither read nor replaced, rawset refuses it;
//   - what a proxy cannot refuse (table.insert into one) is found after the invocation, and a
//     state that was changed is closed, never pooled, so the change ends with the invocation.
//
// Module tables of installed code (not built-in ones) are shared within a state on purpose, as
// in OpenResty a module is shared within a worker; a script can change a module's fields but not
// put another table in its place. A consequence of the proxies: pairs() over a library table
// (pairs(string)) lists nothing.

// readOnly returns a read-only proxy of t named name. A write to a key t does not have is given
// to t's own __newindex when it has one (ngx.ctx, ngx.var.upstream stay settable).
func (v *vm) readOnly(name string, t *lua.LTable) *lua.LTable {
	L := v.L
	p := L.NewTable()
	own := L.GetMetaField(t, "__newindex")
	meta := L.NewTable()
	meta.RawSetString("__index", t)
	meta.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		if own == lua.LNil || t.RawGet(L.Get(2)) != lua.LNil {
			L.RaiseError("%s is read-only: cannot set %s", name, L.Get(2).String())
		}
		L.SetTable(t, L.Get(2), L.Get(3)) // absent: t's __newindex decides
		return 0
	}))
	meta.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(p, meta)
	lockMetatable(L.GetMetatable(t))
	v.proxies = append(v.proxies, p)
	v.isProxy[p] = true
	return p
}

// lockMetatable makes a metatable (the strings', a real table's) unreadable and irreplaceable.
func lockMetatable(mt lua.LValue) {
	if t, ok := mt.(*lua.LTable); ok {
		t.RawSetString("__metatable", lua.LFalse)
	}
}

// changed names what a script changed that the next script on this state would see, or "".
func (v *vm) changed() string {
	if v.L.Env != v.globals {
		return "the global environment"
	}
	for _, p := range v.proxies {
		if k, _ := p.Next(lua.LNil); k != lua.LNil {
			return "a read-only table"
		}
	}
	for name, mod := range v.required {
		if v.loaded.RawGetString(name) != mod {
			return "package.loaded"
		}
	}
	return ""
}

// newEnv is a globals table of its own for a chunk: reads fall through to the shared globals,
// writes stay here, and _G names the table itself.
func (v *vm) newEnv() *lua.LTable {
	L := v.L
	env := L.NewTable()
	env.RawSetString("_G", env)
	meta := L.NewTable()
	meta.RawSetString("__index", v.globals)
	meta.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(env, meta)
	return env
}

// sandboxBase replaces the base functions that reach around the proxies: rawset refuses them;
// load and loadstring give their chunks globals of their own; getfenv shows the shared globals
// read-only; setfenv is gone (a chunk could otherwise give the state a new global environment).
func (v *vm) sandboxBase(globalsView *lua.LTable) {
	L := v.L
	L.SetGlobal("rawset", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		if v.isProxy[t] {
			L.RaiseError("rawset: the table is read-only")
		}
		t.RawSet(L.CheckAny(2), L.CheckAny(3))
		L.Push(t)
		return 1
	}))
	getfenv := L.GetGlobal("getfenv").(*lua.LFunction)
	L.SetGlobal("getfenv", L.NewFunction(func(L *lua.LState) int {
		L.Insert(getfenv, 1)
		L.Call(L.GetTop()-1, 1)
		if L.Get(-1) == v.globals {
			L.Replace(-1, globalsView)
		}
		return 1
	}))
	for _, name := range []string{"load", "loadstring"} {
		orig := L.GetGlobal(name).(*lua.LFunction)
		L.SetGlobal(name, L.NewFunction(func(L *lua.LState) int {
			L.Insert(orig, 1)
			L.Call(L.GetTop()-1, lua.MultRet)
			if fn, ok := L.Get(1).(*lua.LFunction); ok && !fn.IsG {
				fn.Env = v.newEnv()
			}
			return L.GetTop()
		}))
	}
	L.SetGlobal("setfenv", lua.LNil)
	L.SetGlobal("module", lua.LNil)
}
