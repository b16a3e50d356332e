package script

import (
	"container/list"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Dicts are the ngx.shared dictionaries, shared by every connection and script.
type Dicts struct {
	mu    sync.RWMutex
	dicts map[string]*Dict
}

// Define creates a dictionary of the given byte capacity (an existing one keeps its data and
// takes the new capacity).
func (d *Dicts) Define(name string, capacity int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dicts == nil {
		d.dicts = make(map[string]*Dict)
	}
	if old := d.dicts[name]; old != nil {
		old.mu.Lock()
		old.capacity = capacity
		old.mu.Unlock()
		return
	}
	d.dicts[name] = &Dict{capacity: capacity, items: make(map[string]*list.Element), lru: list.New()}
}

// Get returns a dictionary or nil.
func (d *Dicts) Get(name string) *Dict {
	if d == nil {
		return nil
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.dicts[name]
}

// Dict is one dictionary: values are strings, numbers or booleans, with optional expiry;
// when full, least recently used entries are evicted (set) or the write fails (safe_set, add).
type Dict struct {
	mu       sync.Mutex
	capacity int
	used     int
	items    map[string]*list.Element
	lru      *list.List // front: most recently used
}

type dictItem struct {
	key     string
	value   lua.LValue
	flags   int
	expires time.Time // zero: never
}

// itemOverhead approximates per-entry bookkeeping, as nginx's slab does.
const itemOverhead = 64

func (it *dictItem) size() int {
	n := itemOverhead + len(it.key)
	if s, ok := it.value.(lua.LString); ok {
		n += len(s)
	} else {
		n += 8
	}
	return n
}

func (d *Dict) lookup(key string, now time.Time) *dictItem {
	el := d.items[key]
	if el == nil {
		return nil
	}
	it := el.Value.(*dictItem)
	if !it.expires.IsZero() && !now.Before(it.expires) {
		d.remove(el)
		return nil
	}
	d.lru.MoveToFront(el)
	return it
}

func (d *Dict) remove(el *list.Element) {
	it := el.Value.(*dictItem)
	d.used -= it.size()
	delete(d.items, it.key)
	d.lru.Remove(el)
}

// store writes an item; with evict, least recently used items make room. It reports whether
// it stored, and whether valid items were evicted (lua-nginx's "forcible").
func (d *Dict) store(it *dictItem, evict bool, now time.Time) (ok, forcible bool) {
	if el := d.items[it.key]; el != nil {
		d.remove(el)
	}
	need := it.size()
	if need > d.capacity {
		return false, false
	}
	for d.used+need > d.capacity {
		back := d.lru.Back()
		old := back.Value.(*dictItem)
		expired := !old.expires.IsZero() && !now.Before(old.expires)
		if !expired && !evict {
			return false, false
		}
		if !expired {
			forcible = true
		}
		d.remove(back)
	}
	d.items[it.key] = d.lru.PushFront(it)
	d.used += need
	return true, forcible
}

func expiry(now time.Time, seconds float64) time.Time {
	if seconds <= 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(seconds * float64(time.Second)))
}

const dictTypeName = "slardar.shdict"

// newShared is ngx.shared: indexing it by name gives the dictionary object.
func (v *vm) newShared() *lua.LTable {
	L := v.L
	mt := L.NewTypeMetatable(dictTypeName)
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), map[string]lua.LGFunction{
		"get":       dictGet,
		"set":       func(L *lua.LState) int { return dictSet(L, "set") },
		"safe_set":  func(L *lua.LState) int { return dictSet(L, "safe_set") },
		"add":       func(L *lua.LState) int { return dictSet(L, "add") },
		"safe_add":  func(L *lua.LState) int { return dictSet(L, "safe_add") },
		"replace":   func(L *lua.LState) int { return dictSet(L, "replace") },
		"incr":      dictIncr,
		"delete":    dictDelete,
		"flush_all": dictFlushAll,
		// resty.limit.req's bucket update, atomic under the dict's lock (goroutines run truly
		// in parallel, unlike an nginx worker).
		"slardar_leaky": dictLeaky,
	}))
	shared := L.NewTable()
	meta := L.NewTable()
	meta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		d := v.rt.Dicts.Get(L.CheckString(2))
		if d == nil {
			L.Push(lua.LNil)
			return 1
		}
		ud := L.NewUserData()
		ud.Value = d
		L.SetMetatable(ud, mt)
		L.Push(ud)
		return 1
	}))
	L.SetMetatable(shared, meta)
	return shared
}

func checkDict(L *lua.LState) *Dict {
	if d, ok := L.CheckUserData(1).Value.(*Dict); ok {
		return d
	}
	L.ArgError(1, "shared dict expected (call it as dict:method())")
	return nil
}

func checkValue(L *lua.LState, n int) lua.LValue {
	v := L.Get(n)
	switch v.(type) {
	case lua.LString, lua.LNumber, lua.LBool, *lua.LNilType:
		return v
	}
	L.ArgError(n, "bad value type "+v.Type().String())
	return nil
}

func dictGet(L *lua.LState) int {
	d := checkDict(L)
	key := L.CheckString(2)
	d.mu.Lock()
	it := d.lookup(key, time.Now())
	d.mu.Unlock()
	if it == nil {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(it.value)
	if it.flags != 0 {
		L.Push(lua.LNumber(it.flags))
		return 2
	}
	return 1
}

func dictSet(L *lua.LState, op string) int {
	d := checkDict(L)
	key := L.CheckString(2)
	value := checkValue(L, 3)
	exptime := float64(L.OptNumber(4, 0))
	flags := L.OptInt(5, 0)
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	exists := d.lookup(key, now) != nil
	switch {
	case (op == "add" || op == "safe_add") && exists:
		return pushResult(L, false, "exists", false)
	case op == "replace" && !exists:
		return pushResult(L, false, "not found", false)
	}
	if value == lua.LNil {
		if el := d.items[key]; el != nil {
			d.remove(el)
		}
		return pushResult(L, true, "", false)
	}
	ok, forcible := d.store(&dictItem{key: key, value: value, flags: flags, expires: expiry(now, exptime)}, op == "set" || op == "add" || op == "replace", now)
	if !ok {
		return pushResult(L, false, "no memory", false)
	}
	return pushResult(L, true, "", forcible)
}

func pushResult(L *lua.LState, ok bool, err string, forcible bool) int {
	L.Push(lua.LBool(ok))
	if err == "" {
		L.Push(lua.LNil)
	} else {
		L.Push(lua.LString(err))
	}
	L.Push(lua.LBool(forcible))
	return 3
}

// dictIncr is incr(key, value, init?, init_ttl?).
func dictIncr(L *lua.LState) int {
	d := checkDict(L)
	key := L.CheckString(2)
	delta := float64(L.CheckNumber(3))
	init := L.Get(4)
	initTTL := float64(L.OptNumber(5, 0))
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	it := d.lookup(key, now)
	if it == nil {
		n, ok := init.(lua.LNumber)
		if !ok {
			return fail(L, "not found")
		}
		val := lua.LNumber(float64(n) + delta)
		stored, forcible := d.store(&dictItem{key: key, value: val, expires: expiry(now, initTTL)}, true, now)
		if !stored {
			return fail(L, "no memory")
		}
		L.Push(val)
		L.Push(lua.LNil)
		L.Push(lua.LBool(forcible))
		return 3
	}
	n, ok := it.value.(lua.LNumber)
	if !ok {
		return fail(L, "not a number")
	}
	it.value = lua.LNumber(float64(n) + delta)
	L.Push(it.value)
	return 1
}

func dictDelete(L *lua.LState) int {
	d := checkDict(L)
	key := L.CheckString(2)
	d.mu.Lock()
	if el := d.items[key]; el != nil {
		d.remove(el)
	}
	d.mu.Unlock()
	return 0
}

func dictFlushAll(L *lua.LState) int {
	d := checkDict(L)
	d.mu.Lock()
	d.items = make(map[string]*list.Element)
	d.lru.Init()
	d.used = 0
	d.mu.Unlock()
	return 0
}

// dictLeaky is dict:slardar_leaky(key, rate, burst, commit): the leaky bucket of
// lua-resty-limit-traffic's req.lua (rate and burst already multiplied by 1000), read, updated
// and (with commit) stored as "excess:last_ms" in one step. It returns the excess, or nil and
// "rejected".
func dictLeaky(L *lua.LState) int {
	d := checkDict(L)
	key := L.CheckString(2)
	rate := float64(L.CheckNumber(3))
	burst := float64(L.CheckNumber(4))
	commit := L.ToBool(5)
	now := time.Now()
	nowMS := float64(now.UnixMilli())
	d.mu.Lock()
	defer d.mu.Unlock()
	excess := 0.0
	if it := d.lookup(key, now); it != nil {
		prev, last, ok := strings.Cut(it.value.String(), ":")
		e, err1 := strconv.ParseFloat(prev, 64)
		l, err2 := strconv.ParseFloat(last, 64)
		if ok && err1 == nil && err2 == nil {
			excess = max(e-rate*math.Abs(nowMS-l)/1000+1000, 0)
			if excess > burst {
				return fail(L, "rejected")
			}
		}
	}
	if commit {
		value := lua.LString(strconv.FormatFloat(excess, 'f', -1, 64) + ":" + strconv.FormatFloat(nowMS, 'f', -1, 64))
		if ok, _ := d.store(&dictItem{key: key, value: value}, true, now); !ok {
			return fail(L, "no memory")
		}
	}
	L.Push(lua.LNumber(excess))
	return 1
}
