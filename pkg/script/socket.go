package script

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// defaultSocketTimeout is lua-nginx's default socket timeout (lua_socket_*_timeout 60s).
const defaultSocketTimeout = 60 * time.Second

// pattern is a receive() argument: a byte count, a line ("*l", the default) or all ("*a").
type pattern struct {
	kind byte // 'n', 'l' or 'a'
	n    int
}

// parsePattern reads a receive() argument.
func parsePattern(v lua.LValue) (pattern, error) {
	switch x := v.(type) {
	case *lua.LNilType:
		return pattern{kind: 'l'}, nil
	case lua.LNumber:
		n := int(x)
		if float64(n) != float64(x) || n < 0 {
			return pattern{}, fmt.Errorf("bad pattern argument: %v", x)
		}
		return pattern{kind: 'n', n: n}, nil
	case lua.LString:
		s := string(x)
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			return pattern{kind: 'n', n: n}, nil
		}
		switch s {
		case "*l":
			return pattern{kind: 'l'}, nil
		case "*a":
			return pattern{kind: 'a'}, nil
		}
		return pattern{}, fmt.Errorf("bad pattern argument: %q", s)
	}
	return pattern{}, fmt.Errorf("bad pattern argument type %s", v.Type())
}

// receive reads one pattern from r, bounded by max bytes. On failure it returns the error
// ("closed", "timeout", ...) and what was read so far, as lua-nginx's receive does.
func receive(r *bufio.Reader, p pattern, max int) (data string, errMsg string, partial string) {
	switch p.kind {
	case 'n':
		if p.n > max {
			return "", "pattern over the size limit", ""
		}
		buf := make([]byte, p.n)
		n, err := io.ReadFull(r, buf)
		if err != nil {
			return "", socketError(err), string(buf[:n])
		}
		return string(buf), "", ""
	case 'l':
		var line []byte
		for {
			frag, err := r.ReadSlice('\n')
			line = append(line, frag...)
			if len(line) > max {
				return "", "line over the size limit", ""
			}
			if err == nil {
				return strings.ReplaceAll(string(line[:len(line)-1]), "\r", ""), "", ""
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return "", socketError(err), strings.ReplaceAll(string(line), "\r", "")
			}
		}
	default: // '*a': until the peer closes; a timeout returns what arrived as the error's partial
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			b.Write(buf[:n])
			if b.Len() > max {
				return "", "data over the size limit", ""
			}
			if errors.Is(err, io.EOF) {
				return b.String(), "", ""
			}
			if err != nil {
				return "", socketError(err), b.String()
			}
		}
	}
}

// socketError maps an I/O error to lua-nginx's short strings.
func socketError(err error) string {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return "closed"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error() // "connection refused", as lua-nginx says it
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// tcpSock is a cosocket or the client socket.
type tcpSock struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
	client  bool // ngx.req.socket(): not closable, peek allowed
}

const sockTypeName = "slardar.tcpsock"

func (v *vm) sockMeta() *lua.LTable {
	L := v.L
	if mt, ok := L.GetTypeMetatable(sockTypeName).(*lua.LTable); ok {
		return mt
	}
	mt := L.NewTypeMetatable(sockTypeName)
	methods := map[string]lua.LGFunction{
		"connect":        v.sockConnect,
		"send":           v.sockSend,
		"receive":        v.sockReceive,
		"peek":           v.sockPeek,
		"close":          v.sockClose,
		"settimeout":     v.sockSetTimeout,
		"settimeouts":    v.sockSetTimeout,
		"setkeepalive":   v.sockClose,
		"getreusedtimes": func(L *lua.LState) int { L.Push(lua.LNumber(0)); return 1 },
	}
	L.SetField(mt, "__index", L.SetFuncs(L.NewTable(), methods))
	return mt
}

func (v *vm) newSock(s *tcpSock) *lua.LUserData {
	ud := v.L.NewUserData()
	ud.Value = s
	v.L.SetMetatable(ud, v.sockMeta())
	return ud
}

func checkSock(L *lua.LState) *tcpSock {
	ud := L.CheckUserData(1)
	if s, ok := ud.Value.(*tcpSock); ok {
		return s
	}
	L.ArgError(1, "socket expected")
	return nil
}

// reqSocket is ngx.req.socket(): the client connection, read through the session's buffer so
// peeked bytes still reach the upstream.
func (v *vm) reqSocket(L *lua.LState) int {
	cx := v.cur.sess.cx
	L.Push(v.newSock(&tcpSock{conn: cx.Client, r: cx.ClientReader(), timeout: defaultSocketTimeout, client: true}))
	return 1
}

func (v *vm) tcpSocket(L *lua.LState) int {
	L.Push(v.newSock(&tcpSock{timeout: defaultSocketTimeout}))
	return 1
}

// io runs a blocking socket operation with the budget paused and the socket's timeout set.
func (v *vm) io(s *tcpSock, fn func() error) error {
	var err error
	v.cur.wait(func() {
		s.conn.SetDeadline(time.Now().Add(s.timeout))
		defer s.conn.SetDeadline(time.Time{})
		defer deadlineOnDone(v.cur.ctx, s.conn)()
		err = fn()
	})
	return err
}

func (v *vm) sockConnect(L *lua.LState) int {
	s := checkSock(L)
	if s.client {
		L.RaiseError("the client socket is already connected")
	}
	host := L.CheckString(2)
	port := L.CheckInt(3)
	inv := v.cur
	var c net.Conn
	var err error
	inv.wait(func() {
		d := net.Dialer{Timeout: s.timeout}
		c, err = d.DialContext(inv.ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	})
	if err != nil {
		return fail(L, socketError(err))
	}
	if s.conn != nil {
		s.conn.Close()
	}
	s.conn, s.r = c, bufio.NewReader(c)
	inv.sess.closeLater(c)
	L.Push(lua.LNumber(1))
	return 1
}

func (v *vm) sockSend(L *lua.LState) int {
	s := checkSock(L)
	if s.conn == nil {
		return fail(L, "closed")
	}
	var b strings.Builder
	appendValue(L, &b, L.CheckAny(2))
	var n int
	err := v.io(s, func() (err error) { n, err = s.conn.Write([]byte(b.String())); return })
	if err != nil {
		return fail(L, socketError(err))
	}
	L.Push(lua.LNumber(n))
	return 1
}

func (v *vm) sockReceive(L *lua.LState) int {
	s := checkSock(L)
	if s.conn == nil {
		return fail(L, "closed")
	}
	p, err := parsePattern(L.Get(2))
	if err != nil {
		L.ArgError(2, err.Error())
	}
	var data, msg, partial string
	v.io(s, func() error { data, msg, partial = receive(s.r, p, v.rt.maxString()); return nil })
	return received(L, data, msg, partial)
}

// received returns what a read got, in cosockets' convention: the data, or nil, the error
// message and the partial data.
func received(L *lua.LState, data, errMsg, partial string) int {
	if errMsg != "" {
		L.Push(lua.LNil)
		L.Push(lua.LString(errMsg))
		L.Push(lua.LString(partial))
		return 3
	}
	L.Push(lua.LString(data))
	return 1
}

// sockPeek returns the next n bytes of the client without consuming them (stream-lua's peek).
func (v *vm) sockPeek(L *lua.LState) int {
	s := checkSock(L)
	if !s.client {
		L.RaiseError("peek is only for ngx.req.socket()")
	}
	n := L.CheckInt(2)
	if n < 0 || n > s.r.Size() {
		L.ArgError(2, fmt.Sprintf("peek size must be 0..%d", s.r.Size()))
	}
	var data []byte
	var err error
	v.io(s, func() error { data, err = s.r.Peek(n); return nil })
	if err != nil {
		return received(L, "", socketError(err), string(data))
	}
	return received(L, string(data), "", "")
}

func (v *vm) sockClose(L *lua.LState) int {
	s := checkSock(L)
	if s.client {
		return fail(L, "the client socket cannot be closed by a script")
	}
	if s.conn == nil {
		return fail(L, "closed")
	}
	s.conn.Close()
	s.conn = nil
	L.Push(lua.LNumber(1))
	return 1
}

func (v *vm) sockSetTimeout(L *lua.LState) int {
	s := checkSock(L)
	ms := L.CheckNumber(2)
	if ms > 0 {
		s.timeout = time.Duration(float64(ms) * float64(time.Millisecond))
	}
	return 0
}
