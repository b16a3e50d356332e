package script

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	lua "github.com/yuin/gopher-lua"

	"github.com/slardar-go/slardar/pkg/l4"
)

// Hook script names, as the original built them: "script." .. phase .. port.
const (
	PhasePreread = "preread"
	PhaseContent = "content"
	PhaseLog     = "log"
)

// HookName is the script name of a phase for a listening port.
func HookName(phase, port string) string { return "script." + phase + port }

// session is the script state of one connection: the hook versions it started with (a newly
// installed version applies to the next connection), ngx.ctx, and cosockets to close.
type session struct {
	cx                    *l4.Conn
	preread, content, log *Module
	phase                 string

	mu      sync.Mutex
	ctx     *lua.LTable
	closers []io.Closer
}

func (s *session) ctxTable(L *lua.LState) *lua.LTable {
	if s.ctx == nil {
		s.ctx = L.NewTable()
	}
	return s.ctx
}

func (s *session) closeLater(c io.Closer) {
	s.mu.Lock()
	s.closers = append(s.closers, c)
	s.mu.Unlock()
}

func (s *session) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.closers {
		c.Close()
	}
	s.closers = nil
}

var _ l4.Hooks = (*Runtime)(nil)

// session returns the connection's script session, creating it (and pinning the hook
// versions) on first use; nil when the port has no hooks installed.
func (rt *Runtime) session(cx *l4.Conn) *session {
	if s, ok := cx.State.(*session); ok {
		return s
	}
	s := &session{cx: cx,
		preread: rt.Code.Lookup(HookName(PhasePreread, cx.Port)),
		content: rt.Code.Lookup(HookName(PhaseContent, cx.Port)),
		log:     rt.Code.Lookup(HookName(PhaseLog, cx.Port)),
	}
	if s.preread == nil && s.content == nil && s.log == nil {
		return nil
	}
	cx.State = s
	return s
}

// RejectedError is a connection a preread script ended with ngx.exit.
type RejectedError struct {
	Script string
	Code   int
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("rejected by %s (ngx.exit(%d))", e.Script, e.Code)
}

// Unwrap makes a rejection l4.ErrRejected: the connection ended as a script decided, which
// is not an error of the proxy (outcome="rejected").
func (e *RejectedError) Unwrap() error { return l4.ErrRejected }

// Preread runs script.preread<port>. ngx.exit(ngx.OK) (0) goes on to balancing; any other exit
// code ends the connection with that status.
func (rt *Runtime) Preread(ctx context.Context, cx *l4.Conn) error {
	s := rt.session(cx)
	if s == nil || s.preread == nil {
		return nil
	}
	s.phase = PhasePreread
	err := rt.run(ctx, s, s.preread)
	var exit *ExitError
	switch {
	case errors.As(err, &exit) && exit.Code == 0:
		return nil
	case errors.As(err, &exit):
		cx.Status = exit.Code
		return &RejectedError{Script: s.preread.Name, Code: exit.Code}
	}
	return err // a *ScriptError naming the script and line, for the access log
}

// Content runs script.content<port>, which serves the connection instead of the upstream.
func (rt *Runtime) Content(ctx context.Context, cx *l4.Conn) (bool, error) {
	s := rt.session(cx)
	if s == nil || s.content == nil {
		return false, nil
	}
	s.phase = PhaseContent
	err := rt.run(ctx, s, s.content)
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Code != 0 {
			cx.Status = exit.Code
		}
		return true, nil
	}
	if err != nil {
		cx.Status = l4.StatusInternalErr
	}
	return true, err // a *ScriptError naming the script and line, for the access log
}

// Log runs script.log<port> after the connection ended, then closes the session's cosockets.
// Its failure is logged here: nothing returns it.
func (rt *Runtime) Log(cx *l4.Conn) {
	s, _ := cx.State.(*session)
	if s == nil {
		return
	}
	defer s.closeAll()
	if s.log == nil {
		return
	}
	s.phase = PhaseLog
	ctx, cancel := context.WithTimeout(context.Background(), rt.currentLimits().LogTimeout)
	defer cancel()
	err := rt.run(ctx, s, s.log)
	var exit *ExitError
	if err != nil && !errors.As(err, &exit) {
		rt.logger().Error("script failed", "script", s.log.Name, "client", cx.Client.RemoteAddr().String(), "err", err)
	}
}
