//lint:file-ignore ST1005 the cjson errors are lua-cjson's own words, which scripts match on

package script

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	lua "github.com/yuin/gopher-lua"
)

//go:embed lua/*.lua
var luaSources embed.FS

// Built-in Lua modules, compiled once per process.
var builtins = sync.OnceValue(func() map[string]*lua.FunctionProto {
	out := make(map[string]*lua.FunctionProto)
	for mod, file := range map[string]string{"resty.limit.req": "req.lua", "resty.limit.conn": "conn.lua", "resty.limit.count": "count.lua"} {
		src, err := luaSources.ReadFile("lua/" + file)
		if err != nil {
			panic(err)
		}
		proto, err := Compile(mod, src)
		if err != nil {
			panic(err)
		}
		out[mod] = proto
	}
	return out
})

// builtinModules are the names preloadModules registers.
func builtinModules() []string {
	names := []string{"cjson", "cjson.safe"}
	for name := range builtins() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// preloadModules registers cjson, cjson.safe and the resty.limit modules, and slardar_bind,
// which gives a limiter object methods that work both as lim:m(...) and as lim.m(...) (the
// talk's example calls lim.incoming(key, true)).
func preloadModules(v *vm, preload *lua.LTable) {
	L := v.L
	for name, proto := range builtins() {
		preload.RawSetString(name, L.NewFunction(func(L *lua.LState) int {
			fn := L.NewFunctionFromProto(proto)
			fn.Env = v.newEnv()
			L.Push(fn)
			L.Call(0, 1)
			return 1
		}))
	}
	preload.RawSetString("cjson", L.NewFunction(func(L *lua.LState) int { L.Push(newCJSON(L, false)); return 1 }))
	preload.RawSetString("cjson.safe", L.NewFunction(func(L *lua.LState) int { L.Push(newCJSON(L, true)); return 1 }))
	L.SetGlobal("slardar_bind", L.NewFunction(func(L *lua.LState) int {
		obj := L.CheckTable(1)
		class := L.CheckTable(2)
		names := L.CheckTable(3)
		names.ForEach(func(_, n lua.LValue) {
			method := class.RawGetString(n.String())
			obj.RawSetString(n.String(), L.NewFunction(func(L *lua.LState) int {
				args := []lua.LValue{obj}
				start := 1
				if L.GetTop() >= 1 && L.Get(1) == obj {
					start = 2
				}
				for i := start; i <= L.GetTop(); i++ {
					args = append(args, L.Get(i))
				}
				top := L.GetTop()
				L.Push(method)
				for _, a := range args {
					L.Push(a)
				}
				L.Call(len(args), lua.MultRet)
				return L.GetTop() - top
			}))
		})
		L.Push(obj)
		return 1
	}))
}

// newCJSON is lua-cjson's encode/decode; the safe variant returns nil, err instead of raising.
func newCJSON(L *lua.LState, safe bool) *lua.LTable {
	m := L.NewTable()
	null := nullValue(L)
	cjsonFail := func(L *lua.LState, err error) int {
		if safe {
			return fail(L, err.Error())
		}
		L.RaiseError("%s", err.Error())
		return 0
	}
	m.RawSetString("encode", L.NewFunction(func(L *lua.LState) int {
		var b strings.Builder
		if err := encodeJSON(&b, L.CheckAny(1), null, 0); err != nil {
			return cjsonFail(L, err)
		}
		L.Push(lua.LString(b.String()))
		return 1
	}))
	m.RawSetString("decode", L.NewFunction(func(L *lua.LState) int {
		dec := json.NewDecoder(strings.NewReader(L.CheckString(1)))
		dec.UseNumber()
		var x any
		if err := dec.Decode(&x); err != nil {
			return cjsonFail(L, fmt.Errorf("Expected value but found invalid token: %v", err))
		}
		if dec.More() {
			return cjsonFail(L, fmt.Errorf("Expected the end but found extra data"))
		}
		L.Push(fromJSON(L, x, null))
		return 1
	}))
	m.RawSetString("null", null)
	return m
}

const maxJSONDepth = 1000

// encodeJSON writes v the way lua-cjson does: an empty table is {}, a table whose keys are
// 1..n is an array, "/" is escaped, numbers use %.14g.
func encodeJSON(b *strings.Builder, v lua.LValue, null lua.LValue, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("Cannot serialise, excessive nesting (%d)", depth)
	}
	switch x := v.(type) {
	case *lua.LNilType:
		b.WriteString("null")
	case lua.LBool:
		b.WriteString(strconv.FormatBool(bool(x)))
	case lua.LNumber:
		f := float64(x)
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("Cannot serialise number: must not be NaN or Inf")
		}
		b.WriteString(strconv.FormatFloat(f, 'g', 14, 64))
	case lua.LString:
		js, _ := json.Marshal(string(x))
		b.Write(bytes.ReplaceAll(js, []byte("/"), []byte(`\/`)))
	case *lua.LTable:
		n := x.Len()
		count := 0
		x.ForEach(func(lua.LValue, lua.LValue) { count++ })
		if n > 0 && count == n {
			b.WriteByte('[')
			for i := 1; i <= n; i++ {
				if i > 1 {
					b.WriteByte(',')
				}
				if err := encodeJSON(b, x.RawGetInt(i), null, depth+1); err != nil {
					return err
				}
			}
			b.WriteByte(']')
			return nil
		}
		type kv struct {
			k string
			v lua.LValue
		}
		var kvs []kv
		var err error
		x.ForEach(func(k, v lua.LValue) {
			switch k.(type) {
			case lua.LString, lua.LNumber:
				kvs = append(kvs, kv{k.String(), v})
			default:
				err = fmt.Errorf("Cannot serialise %s: table key must be a number or string", k.Type())
			}
		})
		if err != nil {
			return err
		}
		sort.Slice(kvs, func(i, j int) bool { return kvs[i].k < kvs[j].k })
		b.WriteByte('{')
		for i, e := range kvs {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := encodeJSON(b, lua.LString(e.k), null, depth+1); err != nil {
				return err
			}
			b.WriteByte(':')
			if err := encodeJSON(b, e.v, null, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		if v == null {
			b.WriteString("null")
			return nil
		}
		return fmt.Errorf("Cannot serialise %s: type not supported", v.Type())
	}
	return nil
}

func fromJSON(L *lua.LState, x any, null lua.LValue) lua.LValue {
	switch v := x.(type) {
	case nil:
		return null
	case bool:
		return lua.LBool(v)
	case json.Number:
		f, _ := v.Float64()
		return lua.LNumber(f)
	case string:
		return lua.LString(v)
	case []any:
		t := L.CreateTable(len(v), 0)
		for _, e := range v {
			t.Append(fromJSON(L, e, null))
		}
		return t
	case map[string]any:
		t := L.CreateTable(0, len(v))
		for k, e := range v {
			t.RawSetString(k, fromJSON(L, e, null))
		}
		return t
	}
	return lua.LNil
}
