package backend

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/internal/mysqlfake"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// These tests run against a scripted server (internal/mysqlfake): the pool's and the
// connections' own decisions, alone. The MariaDB-backed tests of mysql-proxy are the measure of
// what servers do.

const (
	fakeUser = "app"
	fakePass = "app-secret"
)

func fakeKey(s *mysqlfake.Server) Key {
	return Key{Addr: s.Addr, Caps: mysql.CLIENT_SESSION_TRACK}
}

func fakeLogin() Login {
	return Login{User: fakeUser, Secret: Secret{Password: fakePass}, Collation: 45}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestDialAndQuery: a login, the defaults read and tracking set, statements, rows, an error.
func TestDialAndQuery(t *testing.T) {
	s := mysqlfake.Start(t, fakeUser, fakePass)
	ctx := ctxT(t)
	c, err := Dial(ctx, fakeKey(s), fakeLogin())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ThreadID == 0 || !strings.HasPrefix(c.Version, "10.11") {
		t.Fatalf("thread %d version %q", c.ThreadID, c.Version)
	}
	if !c.Defaults.Wants("autocommit") || c.Defaults.Wants("sql_mode") || c.Untracked {
		t.Fatalf("defaults %+v untracked %v", c.Defaults, c.Untracked)
	}
	row, err := c.Row(ctx, "SELECT CONNECTION_ID()")
	if err != nil || row[0] == nil || *row[0] == "0" {
		t.Fatalf("a row: %v %v", row, err)
	}
	rows, err := c.Rows(ctx, "SELECT 1", 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows: %v %v", rows, err)
	}
	if err := c.Exec(ctx, mysql.COM_QUERY, "BEGIN"); err != nil || !c.InTransaction() {
		t.Fatalf("BEGIN: %v, in a transaction %v", err, c.InTransaction())
	}
	if err := c.Exec(ctx, mysql.COM_QUERY, "COMMIT"); err != nil || c.InTransaction() {
		t.Fatalf("COMMIT: %v, in a transaction %v", err, c.InTransaction())
	}
	var ep *wire.ErrPacket
	if err := c.Exec(ctx, mysql.COM_QUERY, "ERROR 1146"); !errors.As(err, &ep) || ep.Code != 1146 {
		t.Fatalf("an error: %v", err)
	}
	if _, err := c.Row(ctx, "ERROR 1064"); !errors.As(err, &ep) || ep.Code != 1064 {
		t.Fatalf("an error for a row: %v", err)
	}
	if err := c.Reset(ctx); err != nil || c.Dirty {
		t.Fatalf("reset: %v dirty %v", err, c.Dirty)
	}
	other := fakeLogin()
	other.Schema = "shop"
	if err := c.ChangeUser(ctx, other); err != nil || c.Schema != "shop" {
		t.Fatalf("change user: %v schema %q", err, c.Schema)
	}
	if c.Dead(0) {
		t.Fatal("a live connection reported dead")
	}
}

// TestDialRefused: a wrong password is the server's 1045; an unreachable server an error.
func TestDialRefused(t *testing.T) {
	s := mysqlfake.Start(t, fakeUser, fakePass)
	ctx := ctxT(t)
	l := fakeLogin()
	l.Secret.Password = "wrong"
	_, err := Dial(ctx, fakeKey(s), l)
	var me *mysql.MyError
	if !errors.As(err, &me) || me.Code != mysql.ER_ACCESS_DENIED_ERROR {
		t.Fatalf("a wrong password: %v", err)
	}
	s.Close()
	if _, err := Dial(ctx, fakeKey(s), fakeLogin()); err == nil {
		t.Fatal("a closed server logged in")
	}
}

// TestPoolReuse: a connection put back is taken again (logged in again as the taker); a
// Dirty one is reset first; a Tainted one is closed; Discard closes.
func TestPoolReuse(t *testing.T) {
	s := mysqlfake.Start(t, fakeUser, fakePass)
	ctx := ctxT(t)
	p := &Pool{MaxConns: 4}
	defer p.Close()
	c, err := p.Get(ctx, fakeKey(s), fakeLogin(), 0)
	if err != nil {
		t.Fatal(err)
	}
	id := c.ThreadID
	c.Dirty = true
	p.Put(c)
	if p.Idle() != 1 || p.Resets.Load() != 1 {
		t.Fatalf("idle %d resets %d after a dirty put", p.Idle(), p.Resets.Load())
	}
	c, err = p.Get(ctx, fakeKey(s), fakeLogin(), 0)
	if err != nil || c.ThreadID != id {
		t.Fatalf("the idle connection not reused: %v (thread %d, want %d)", err, c.ThreadID, id)
	}
	if st := p.Stats()[s.Addr]; st.Open != 1 || st.Idle != 0 || st.Limit != 4 {
		t.Fatalf("stats %+v", st)
	}
	c.Tainted = true
	p.Put(c)
	if p.Idle() != 0 {
		t.Fatal("a tainted connection was kept")
	}
	c, err = p.Get(ctx, fakeKey(s), fakeLogin(), 0)
	if err != nil || c.ThreadID == id {
		t.Fatalf("a new connection: %v thread %d", err, c.ThreadID)
	}
	p.Discard(c)
	if st := p.Stats()[s.Addr]; st.Open != 0 {
		t.Fatalf("open after discard: %+v", st)
	}
}

// TestPoolLimit: at the limit a session waits for a connection to be released, then gets
// ErrLimit naming the limit; one released in time serves the waiter.
func TestPoolLimit(t *testing.T) {
	s := mysqlfake.Start(t, fakeUser, fakePass)
	ctx := ctxT(t)
	p := &Pool{WaitTimeout: 300 * time.Millisecond}
	defer p.Close()
	var held []*Conn
	for range 2 {
		c, err := p.Get(ctx, fakeKey(s), fakeLogin(), 2)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	start := time.Now()
	_, err := p.Get(ctx, fakeKey(s), fakeLogin(), 2)
	var le *LimitError
	if !errors.Is(err, ErrLimit) || !errors.As(err, &le) || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("a third at the limit: %v after %v", err, time.Since(start))
	}
	if !strings.Contains(err.Error(), "2") {
		t.Fatalf("the limit's error does not name it: %v", err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		p.Put(held[0])
	}()
	c, err := p.Get(ctx, fakeKey(s), fakeLogin(), 2)
	if err != nil {
		t.Fatalf("a waiter when one is released: %v", err)
	}
	p.Put(c)
	p.Put(held[1])
	if st := p.Stats()[s.Addr]; st.Waits == 0 {
		t.Fatalf("no wait counted: %+v", st)
	}
}

// TestPoolFirstComeFirstServed: at the limit, a released connection goes to the session that
// waited for it, not to one that asks as it is released (with thousands of multiplexed
// clients, newcomers took every connection first and a waiter queued again at the end waited
// past its timeout); the queue's bookkeeping is back to nothing after.
func TestPoolFirstComeFirstServed(t *testing.T) {
	s := mysqlfake.Start(t, fakeUser, fakePass)
	ctx := ctxT(t)
	p := &Pool{WaitTimeout: 2 * time.Second}
	defer p.Close()
	held, err := p.Get(ctx, fakeKey(s), fakeLogin(), 1)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Conn, 1)
	go func() {
		c, err := p.Get(ctx, fakeKey(s), fakeLogin(), 1)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	queue := func() (waiters, woken int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		sv := p.server(s.Addr)
		return sv.waiters.Len(), sv.woken
	}
	testutil.WaitFor(t, "the first session to wait", 5*time.Second, func() bool { w, _ := queue(); return w == 1 })
	p.Put(held)
	late, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if c, err := p.Get(late, fakeKey(s), fakeLogin(), 1); err == nil {
		t.Fatalf("a session that asked as the connection was released took it before the one waiting (%p, held %p)", c, held)
	}
	first := <-got
	if first != held {
		t.Fatalf("the waiting session got %p, not the released %p", first, held)
	}
	p.Put(first)
	if w, k := queue(); w != 0 || k != 0 {
		t.Fatalf("after the waits: %d waiting, %d woken", w, k)
	}
	start := time.Now()
	c, err := p.Get(ctx, fakeKey(s), fakeLogin(), 1)
	if err != nil || time.Since(start) > time.Second {
		t.Fatalf("the idle connection after the waits: %v after %v", err, time.Since(start))
	}
	p.Put(c)
}

// TestPoolTrim: idle connections beyond MaxIdle are closed, and those idle past IdleTimeout.
func TestPoolTrim(t *testing.T) {
	s := mysqlfake.Start(t, fakeUser, fakePass)
	ctx := ctxT(t)
	p := &Pool{MaxIdle: 2, IdleTimeout: time.Minute}
	defer p.Close()
	var cs []*Conn
	for range 4 {
		c, err := p.Get(ctx, fakeKey(s), fakeLogin(), 10)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		p.Put(c)
	}
	if p.Idle() != 2 {
		t.Fatalf("%d idle, want MaxIdle 2", p.Idle())
	}
	p.trim(time.Now().Add(2 * time.Minute))
	if p.Idle() != 0 {
		t.Fatalf("%d idle after the idle timeout", p.Idle())
	}
	none := &Pool{MaxIdle: -1}
	c, err := none.Get(ctx, fakeKey(s), fakeLogin(), 10)
	if err != nil {
		t.Fatal(err)
	}
	none.Put(c)
	if none.Idle() != 0 {
		t.Fatal("a pool of no idle connections kept one")
	}
}

// TestPoolKillAndAnchor: Kill stops a running statement over another connection; an anchor is
// an idle connection, or a greeting whose login completes later with its thread id.
func TestPoolKillAndAnchor(t *testing.T) {
	s := mysqlfake.Start(t, fakeUser, fakePass)
	ctx := ctxT(t)
	p := &Pool{}
	defer p.Close()
	c, err := p.Get(ctx, fakeKey(s), fakeLogin(), 10)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Exec(ctx, mysql.COM_QUERY, "SELECT SLEEP(30)") }()
	testutil.WaitFor(t, "the SLEEP received", 10*time.Second, func() bool { return slices.Contains(s.Queries(), "SELECT SLEEP(30)") })
	if err := p.Kill(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ep *wire.ErrPacket
		if !errors.As(err, &ep) || ep.Code != mysql.ER_QUERY_INTERRUPTED {
			t.Fatalf("the killed statement: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("KILL QUERY did not stop the statement")
	}
	p.Put(c)
	idle, pending := p.Anchor(ctx, fakeKey(s), 10, false)
	if idle == nil || pending != nil || idle.ThreadID != c.ThreadID {
		t.Fatalf("the anchor is not the idle connection: %v %v", idle, pending)
	}
	p.Put(idle)
	k := fakeKey(s)
	k.Caps |= mysql.CLIENT_MULTI_STATEMENTS // no idle connection of these capabilities
	idle, pending = p.Anchor(ctx, k, 10, false)
	if idle != nil || pending == nil || pending.ThreadID() == 0 {
		t.Fatalf("no pending login for other capabilities: %v %v", idle, pending)
	}
	lc, err := pending.Login(ctx, k, fakeLogin())
	if err != nil || lc.ThreadID != pending.ThreadID() {
		t.Fatalf("the pending login: %v (thread %d, announced %d)", err, lc.ThreadID, pending.ThreadID())
	}
	p.Put(lc)
	if hs := p.Hello(ctx, s.Addr, true); hs == nil || hs.Version != mysqlfake.Version {
		t.Fatalf("hello: %+v", hs)
	}
}

// TestWatchIdle: a held connection whose server closes it is noticed while idle.
func TestWatchIdle(t *testing.T) {
	s := mysqlfake.Start(t, fakeUser, fakePass)
	ctx := ctxT(t)
	c, err := Dial(ctx, fakeKey(s), fakeLogin())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	gone := make(chan struct{})
	stop := c.WatchIdle(func() { close(gone) })
	defer stop()
	if _, err := s.Conn(c.ThreadID); err != nil {
		t.Fatal(err)
	}
	killer, err := Dial(ctx, fakeKey(s), fakeLogin())
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close()
	killer.Exec(ctx, mysql.COM_QUERY, "KILL "+strconv.FormatUint(uint64(c.ThreadID), 10))
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's close went unnoticed")
	}
	if !c.Dead(0) {
		t.Fatal("a closed connection is not dead")
	}
}
