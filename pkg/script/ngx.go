package script

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// nginx log levels as ngx.* constants.
var logLevels = []struct {
	name  string
	value int
	level slog.Level
}{
	{"STDERR", 0, slog.LevelError}, {"EMERG", 1, slog.LevelError}, {"ALERT", 2, slog.LevelError},
	{"CRIT", 3, slog.LevelError}, {"ERR", 4, slog.LevelError}, {"WARN", 5, slog.LevelWarn},
	{"NOTICE", 6, slog.LevelInfo}, {"INFO", 7, slog.LevelInfo}, {"DEBUG", 8, slog.LevelDebug},
}

// newNgx builds the ngx table of the stream-lua API subset; per-connection values come from the
// invocation running on the state.
func (v *vm) newNgx() *lua.LTable {
	L := v.L
	ngx := L.NewTable()
	fns := map[string]lua.LGFunction{
		"exit":      v.ngxExit,
		"say":       func(L *lua.LState) int { return v.write(L, true) },
		"print":     func(L *lua.LState) int { return v.write(L, false) },
		"flush":     func(L *lua.LState) int { L.Push(lua.LNumber(1)); return 1 },
		"sleep":     v.ngxSleep,
		"log":       v.ngxLog,
		"now":       func(L *lua.LState) int { L.Push(lua.LNumber(float64(time.Now().UnixMilli()) / 1000)); return 1 },
		"time":      func(L *lua.LState) int { L.Push(lua.LNumber(time.Now().Unix())); return 1 },
		"localtime": func(L *lua.LState) int { L.Push(lua.LString(time.Now().Format(TimeLayout))); return 1 },
		"today":     func(L *lua.LState) int { L.Push(lua.LString(time.Now().Format("2006-01-02"))); return 1 },
		"md5":       ngxMD5,
		"encode_base64": func(L *lua.LState) int {
			L.Push(lua.LString(base64.StdEncoding.EncodeToString([]byte(L.CheckString(1)))))
			return 1
		},
		"decode_base64": ngxDecodeBase64,
		"update_time":   func(L *lua.LState) int { return 0 },
		"get_phase":     func(L *lua.LState) int { L.Push(lua.LString(v.cur.sess.phase)); return 1 },
	}
	for name, fn := range fns {
		ngx.RawSetString(name, L.NewFunction(fn))
	}
	for _, l := range logLevels {
		ngx.RawSetString(l.name, lua.LNumber(l.value))
	}
	ngx.RawSetString("OK", lua.LNumber(0))
	ngx.RawSetString("ERROR", lua.LNumber(-1))
	ngx.RawSetString("null", nullValue(L))
	ngx.RawSetString("var", v.newVar())
	ngx.RawSetString("shared", v.newShared())
	req := L.NewTable()
	req.RawSetString("socket", L.NewFunction(v.reqSocket))
	ngx.RawSetString("req", req)
	sock := L.NewTable()
	sock.RawSetString("tcp", L.NewFunction(v.tcpSocket))
	ngx.RawSetString("socket", sock)
	// ngx.ctx is the connection's table, made when a script first touches it.
	meta := L.NewTable()
	meta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		if L.CheckString(2) == "ctx" {
			L.Push(v.cur.sess.ctxTable(L))
			return 1
		}
		L.Push(lua.LNil)
		return 1
	}))
	meta.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		if L.CheckString(2) != "ctx" {
			L.RaiseError("ngx.%s cannot be set", L.CheckString(2))
		}
		v.cur.sess.ctx = L.CheckTable(3)
		return 0
	}))
	L.SetMetatable(ngx, meta)
	return ngx
}

// fail returns the Lua convention for a failed call: nil and the error message.
func fail(L *lua.LState, msg string) int {
	L.Push(lua.LNil)
	L.Push(lua.LString(msg))
	return 2
}

// nullValue is ngx.null / cjson.null: a light userdata that is neither nil nor false.
func nullValue(L *lua.LState) lua.LValue {
	if v := L.GetField(L.Get(lua.RegistryIndex), "slardar.null"); v != lua.LNil {
		return v
	}
	ud := L.NewUserData()
	ud.Value = "null"
	L.SetField(L.Get(lua.RegistryIndex), "slardar.null", ud)
	return ud
}

func (v *vm) ngxExit(L *lua.LState) int {
	code := L.OptInt(1, 0)
	v.cur.exit = &ExitError{Code: code}
	L.RaiseError("ngx.exit(%d)", code)
	return 0
}

// write is ngx.say / ngx.print: arguments (strings, numbers, nil, booleans, arrays of those)
// concatenated and written to the client.
func (v *vm) write(L *lua.LState, newline bool) int {
	var b strings.Builder
	for i := 1; i <= L.GetTop(); i++ {
		appendValue(L, &b, L.Get(i))
	}
	if newline {
		b.WriteByte('\n')
	}
	c := v.cur.sess.cx.Client
	var err error
	v.cur.wait(func() {
		c.SetWriteDeadline(time.Now().Add(defaultSocketTimeout))
		defer deadlineOnDone(v.cur.ctx, c)()
		_, err = c.Write([]byte(b.String()))
	})
	if err != nil {
		return fail(L, socketError(err))
	}
	L.Push(lua.LNumber(1))
	return 1
}

func appendValue(L *lua.LState, b *strings.Builder, val lua.LValue) {
	switch x := val.(type) {
	case *lua.LTable:
		for i := 1; i <= x.Len(); i++ {
			appendValue(L, b, x.RawGetInt(i))
		}
	case *lua.LNilType:
		b.WriteString("nil")
	case *lua.LUserData:
		if x == nullValue(L) {
			b.WriteString("null")
			return
		}
		L.ArgError(1, "bad argument type userdata")
	default:
		b.WriteString(val.String())
	}
}

func (v *vm) ngxSleep(L *lua.LState) int {
	d := time.Duration(float64(L.CheckNumber(1)) * float64(time.Second))
	inv := v.cur
	interrupted := false
	inv.wait(func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-inv.ctx.Done():
			interrupted = true
		}
	})
	if interrupted {
		L.RaiseError("ngx.sleep interrupted: %v", context.Cause(inv.ctx))
	}
	return 0
}

func (v *vm) ngxLog(L *lua.LState) int {
	lvl := L.CheckInt(1)
	level := slog.LevelInfo
	for _, l := range logLevels {
		if l.value == lvl {
			level = l.level
		}
	}
	var b strings.Builder
	for i := 2; i <= L.GetTop(); i++ {
		appendValue(L, &b, L.Get(i))
	}
	where := v.cur.name
	if dbg, ok := L.GetStack(1); ok {
		if _, err := L.GetInfo("Sl", dbg, lua.LNil); err == nil && dbg.CurrentLine > 0 {
			where += ":" + strconv.Itoa(dbg.CurrentLine)
		}
	}
	v.rt.logger().Log(v.cur.ctx, level, b.String(), "script", where, "client", v.cur.sess.cx.Client.RemoteAddr().String())
	return 0
}

func ngxMD5(L *lua.LState) int {
	sum := md5.Sum([]byte(L.CheckString(1)))
	L.Push(lua.LString(hex.EncodeToString(sum[:])))
	return 1
}

func ngxDecodeBase64(L *lua.LState) int {
	out, err := base64.StdEncoding.DecodeString(L.CheckString(1))
	if err != nil {
		L.Push(lua.LNil)
		return 1
	}
	L.Push(lua.LString(out))
	return 1
}

// newVar is ngx.var: connection facts read by name; "upstream" and "hash_key" may be set by a
// preread script to choose what the connection is balanced over (extensions).
func (v *vm) newVar() *lua.LTable {
	L := v.L
	t := L.NewTable()
	meta := L.NewTable()
	meta.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		L.Push(v.cur.sess.variable(L.CheckString(2)))
		return 1
	}))
	meta.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		name := L.CheckString(2)
		cx := v.cur.sess.cx
		switch name {
		case "upstream":
			cx.Upstream = L.CheckString(3)
		case "hash_key":
			cx.HashKey = L.CheckString(3)
		default:
			L.RaiseError("variable %q not changeable", name)
		}
		return 0
	}))
	L.SetMetatable(t, meta)
	return t
}

// variable reads one ngx.var.
func (s *session) variable(name string) lua.LValue {
	cx := s.cx
	hostPort := func(a net.Addr, port bool) lua.LValue {
		h, p, err := net.SplitHostPort(a.String())
		if err != nil {
			return lua.LNil
		}
		if port {
			return lua.LString(p)
		}
		return lua.LString(h)
	}
	switch name {
	case "remote_addr":
		return hostPort(cx.Client.RemoteAddr(), false)
	case "remote_port":
		return hostPort(cx.Client.RemoteAddr(), true)
	case "server_addr":
		return hostPort(cx.Client.LocalAddr(), false)
	case "server_port":
		return hostPort(cx.Client.LocalAddr(), true)
	case "binary_remote_addr":
		if ta, ok := cx.Client.RemoteAddr().(*net.TCPAddr); ok {
			if ip4 := ta.IP.To4(); ip4 != nil {
				return lua.LString(ip4)
			}
			return lua.LString(ta.IP.To16())
		}
	case "protocol":
		return lua.LString("TCP")
	case "upstream":
		return lua.LString(cx.Upstream)
	case "hash_key":
		return lua.LString(cx.HashKey)
	case "upstream_addr":
		if cx.Server != "" {
			return lua.LString(cx.Server)
		}
	case "bytes_received":
		return lua.LString(strconv.FormatInt(cx.BytesIn, 10))
	case "bytes_sent":
		return lua.LString(strconv.FormatInt(cx.BytesOut, 10))
	case "session_time":
		return lua.LString(strconv.FormatFloat(time.Since(cx.Start).Seconds(), 'f', 3, 64))
	case "status":
		return lua.LString(strconv.Itoa(cx.Status))
	}
	return lua.LNil
}
