package admin

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/slardar-go/slardar/pkg/accept"
)

// Defaults for the Server's limits.
const (
	DefaultMaxLine     = 4 << 10
	DefaultMaxBody     = 1 << 20
	DefaultIdleTimeout = 60 * time.Second
	DefaultMaxConns    = 64
	// With a token: connections that have not authenticated yet, and how long they have.
	DefaultMaxUnauthenticated = 16
	DefaultAuthTimeout        = 5 * time.Second
)

// Server serves the admin protocol on a listener. Its zero value is not usable: Mux is required.
//
// Where the original was unsafe, Server is not:
//   - a command line longer than MaxLine, or a body length above MaxBody (or not positive), gets
//     an ERROR reply and the connection is closed, instead of an unbounded read;
//   - a command must arrive whole within IdleTimeout of the previous reply; otherwise the
//     connection is closed (silently, as the original did after its 60 s read timeout);
//   - a body that follows a rejected command line is skipped rather than read as the next command:
//     a command line never starts with a NUL byte, and a body length below 16 MiB always does;
//   - with a Token set, nothing but "AUTH token <token>" is served until it was given, and
//     failed AUTHs from one address are answered ever more slowly (see authLimiter);
//   - at most MaxConns connections are served at once; one more gets an ERROR reply and is
//     closed, so idle clients cannot use up the port. With a Token, only connections that
//     authenticated count: the others have a budget of their own (MaxUnauthenticated, the
//     oldest closed to make room for a new one) and AuthTimeout to authenticate, so clients
//     that never authenticate cannot lock out the one that has the token;
//   - an accept that fails (out of file descriptors) is retried, never the end of the port.
type Server struct {
	Mux         *Mux
	Logger      *slog.Logger
	MaxLine     int           // default DefaultMaxLine
	MaxBody     int           // default DefaultMaxBody
	IdleTimeout time.Duration // default DefaultIdleTimeout
	MaxConns    int           // default DefaultMaxConns
	Token       string        // empty: no authentication
	// MaxUnauthenticated and AuthTimeout bound connections that have not given the Token yet;
	// defaults DefaultMaxUnauthenticated and DefaultAuthTimeout.
	MaxUnauthenticated int
	AuthTimeout        time.Duration
	// OnCommand, when set, gets every routed command after its handler ran, with the reply
	// (metrics and the audit log).
	OnCommand func(ctx context.Context, cmd Command, body []byte, reply Reply)

	mu     sync.Mutex
	conns  map[net.Conn]*connState
	authed int // connections in conns that count against MaxConns
	auth   authLimiter
}

// connState is an open admin connection: whether it counts against MaxConns (it authenticated,
// or no token is needed) and, until then, when it must have authenticated.
type connState struct {
	authed   bool
	deadline time.Time
	since    time.Time
}

func (s *Server) maxConns() int {
	if s.MaxConns > 0 {
		return s.MaxConns
	}
	return DefaultMaxConns
}

func (s *Server) maxUnauthenticated() int {
	if s.MaxUnauthenticated > 0 {
		return s.MaxUnauthenticated
	}
	return DefaultMaxUnauthenticated
}

func (s *Server) authTimeout() time.Duration {
	if s.AuthTimeout > 0 {
		return s.AuthTimeout
	}
	return DefaultAuthTimeout
}

func (s *Server) maxLine() int {
	if s.MaxLine > 0 {
		return s.MaxLine
	}
	return DefaultMaxLine
}

func (s *Server) maxBody() int {
	if s.MaxBody > 0 {
		return s.MaxBody
	}
	return DefaultMaxBody
}

func (s *Server) idleTimeout() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Serve accepts connections until ctx is done (accept errors such as EMFILE are logged and
// retried: the admin port never dies of one); then it closes the listener and every open admin
// connection, waits for their goroutines and returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) {
	var wg sync.WaitGroup
	accept.Loop(ctx, ln, s.Logger, func(c net.Conn) {
		if !s.add(c) {
			s.refuse(c)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.remove(c)
			defer c.Close()
			s.serveConn(ctx, c)
		}()
	})
	s.closeAll()
	wg.Wait()
}

// add tracks a new connection. Without a token it counts against MaxConns at once (false: the
// limit is reached); with one it waits for AUTH among the unauthenticated, the oldest of which
// is closed when they are MaxUnauthenticated.
func (s *Server) add(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = make(map[net.Conn]*connState)
	}
	now := time.Now()
	if s.Token == "" {
		if s.authed >= s.maxConns() {
			return false
		}
		s.conns[c] = &connState{authed: true, since: now}
		s.authed++
		return true
	}
	var oldest net.Conn
	waiting := 0
	for oc, st := range s.conns {
		if !st.authed {
			waiting++
			if oldest == nil || st.since.Before(s.conns[oldest].since) {
				oldest = oc
			}
		}
	}
	if waiting >= s.maxUnauthenticated() {
		s.logger().Warn("admin connection closed: too many connections waiting to authenticate", "remote", oldest.RemoteAddr().String(),
			"limit", s.maxUnauthenticated())
		oldest.Close()
		delete(s.conns, oldest)
	}
	s.conns[c] = &connState{deadline: now.Add(s.authTimeout()), since: now}
	return true
}

// promote counts an authenticated connection against MaxConns; false: the limit is reached.
func (s *Server) promote(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.conns[c]
	if st == nil || st.authed {
		return true // authenticated already, or not a connection of Serve's
	}
	if s.authed >= s.maxConns() {
		return false
	}
	st.authed = true
	s.authed++
	return true
}

// authDeadline is when a connection must have authenticated (zero: it has, or needs not).
func (s *Server) authDeadline(c net.Conn) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.conns[c]; st != nil && !st.authed {
		return st.deadline
	}
	return time.Time{}
}

func (s *Server) remove(c net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.conns[c]; st != nil {
		if st.authed {
			s.authed--
		}
		delete(s.conns, c)
	}
}

// refuse answers a connection over MaxConns with an ERROR reply and closes it.
func (s *Server) refuse(c net.Conn) {
	s.logger().Warn("admin connection refused", "remote", c.RemoteAddr().String(), "reason", s.tooMany())
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.Write(AppendReply(nil, Errorf("%s", s.tooMany())))
	c.Close()
}

func (s *Server) tooMany() string {
	return fmt.Sprintf("too many admin connections (limit %d)", s.maxConns())
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// flushingReader flushes pending replies before each read from the connection.
type flushingReader struct {
	r io.Reader
	w *bufio.Writer
}

func (f flushingReader) Read(p []byte) (int, error) {
	if f.w.Buffered() > 0 {
		if err := f.w.Flush(); err != nil {
			return 0, err
		}
	}
	return f.r.Read(p)
}

// Bounds of the lingering close after a refused request.
const (
	lingerTime  = time.Second
	lingerBytes = 1 << 20
)

// lingeringClose half-closes c and discards what the client is still sending (bounded in time
// and bytes) before the caller closes it: closing with unread input makes the kernel send a
// reset, which can destroy the error reply before the client reads it.
func lingeringClose(c net.Conn) {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(lingerTime))
	io.CopyN(io.Discard, c, lingerBytes)
}

// errClose ends a connection after the reply that goes with it was written.
var errClose = errors.New("closing admin connection")

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	log := s.logger().With("remote", c.RemoteAddr().String())
	ctx = context.WithValue(ctx, remoteKey{}, c.RemoteAddr())
	w := bufio.NewWriter(c)
	// Replies to pipelined commands go out together, but always before the server waits for
	// more input: the reader flushes the writer whenever it must read from the socket.
	r := bufio.NewReaderSize(flushingReader{c, w}, 4096)
	authed := s.Token == ""
	for {
		dl := time.Now().Add(s.idleTimeout())
		if !authed {
			if auth := s.authDeadline(c); !auth.IsZero() && auth.Before(dl) {
				dl = auth // an unauthenticated connection has AuthTimeout in all
			}
		}
		c.SetReadDeadline(dl)
		reply, err := s.readAndHandle(ctx, c, r, &authed)
		if err != nil && !errors.Is(err, errClose) {
			if errors.Is(err, io.EOF) {
				log.Debug("admin client closed")
			} else {
				log.Debug("admin connection ended", "err", err)
			}
			return
		}
		c.SetWriteDeadline(time.Now().Add(s.idleTimeout()))
		w.Write(AppendReply(nil, reply))
		if err != nil {
			if ferr := w.Flush(); ferr != nil {
				log.Debug("writing admin reply", "err", ferr)
				return
			}
		}
		if err != nil {
			log.Info("admin connection closed after a bad request", "reason", string(reply.Data))
			lingeringClose(c)
			return
		}
	}
}

// readAndHandle reads one request and returns its reply. An error wrapping errClose means the
// reply must be sent and the connection closed; any other error means close without reply.
func (s *Server) readAndHandle(ctx context.Context, c net.Conn, r *bufio.Reader, authed *bool) (Reply, error) {
	// Skip bodies of rejected commands: a command line never starts with NUL.
	for {
		b, err := r.Peek(1)
		if err != nil {
			return Reply{}, err
		}
		if b[0] != 0 {
			break
		}
		if _, err := s.readBody(r); err != nil {
			return Errorf("%s", err), errClose
		}
	}
	line, err := s.readLine(r)
	if err != nil {
		return Errorf("%s", err), err
	}
	cmd, ok := ParseLine(line)
	if !ok {
		return Errorf(ErrCommandInvalid), nil
	}
	if cmd.Method == "AUTH" && cmd.Topic == "token" {
		if s.Token == "" {
			*authed = true // nothing to check: the connection stays unauthenticated
			return OK(), nil
		}
		ok := subtle.ConstantTimeCompare([]byte(cmd.Name), []byte(s.Token)) == 1
		if !s.auth.wait(ctx, remoteHost(ctx), ok) || !ok {
			return Errorf("authentication failed"), errClose
		}
		if !s.promote(c) {
			return Errorf("%s", s.tooMany()), errClose
		}
		*authed = true
		return OK(), nil
	}
	rt, msg := s.Mux.lookup(cmd)
	var body []byte
	if rt.body {
		if body, err = s.readBody(r); err != nil {
			return Errorf("%s", err), errClose
		}
	}
	if !*authed {
		return Errorf("authentication required: send AUTH token <token> first"), errClose
	}
	if msg != "" {
		return Errorf("%s", msg), nil
	}
	if s.Token != "" {
		ctx = context.WithValue(ctx, authenticatedKey{}, true)
	}
	reply := rt.handler(ctx, cmd.Name, body)
	if s.OnCommand != nil {
		s.OnCommand(ctx, cmd, body, reply)
	}
	return reply, nil
}

// lineError is a command line the server refuses to read further (too long); its message is
// replied and the connection closed.
type lineError struct{ msg string }

func (e *lineError) Error() string { return e.msg }
func (e *lineError) Unwrap() error { return errClose }

func (s *Server) readLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > s.maxLine()+1 {
			return "", &lineError{fmt.Sprintf("command line longer than %d bytes", s.maxLine())}
		}
		if err == nil {
			return string(line[:len(line)-1]), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > 0 && errors.Is(err, io.EOF) {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
}

type bodyError struct{ msg string }

func (e *bodyError) Error() string { return e.msg }

// readBody reads a length-prefixed body. Errors it returns are meant for the client.
func (s *Server) readBody(r *bufio.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, &bodyError{"body invalid: missing length"}
	}
	n := int32(binary.BigEndian.Uint32(hdr[:]))
	if n <= 0 {
		return nil, &bodyError{fmt.Sprintf("body invalid: length %d", n)}
	}
	if int(n) > s.maxBody() {
		return nil, &bodyError{fmt.Sprintf("body too large: %d bytes, limit %d", n, s.maxBody())}
	}
	body := make([]byte, n)
	if got, err := io.ReadFull(r, body); err != nil {
		return nil, &bodyError{fmt.Sprintf("body invalid: %d of %d bytes arrived", got, n)}
	}
	return body, nil
}
