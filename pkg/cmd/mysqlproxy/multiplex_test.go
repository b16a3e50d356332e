package mysqlproxy

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestMultiplexing: 40 clients on a listener with multiplex: true share at most 4 server
// connections (mysql.pool.max_conns) without errors, with prepared and text statements; one
// client's settings and user variables follow it from connection to connection and never
// reach another; a transaction keeps its connection.
func TestMultiplexing(t *testing.T) {
	m := ownServer(t)
	cfg := singleConfig(t, m, "")
	cfg.Listeners[0].Multiplex = true
	cfg.MySQL.Pool.MaxConns = 4
	d, addr := startProxy(t, cfg)
	db := openDB(t, addr, "")
	db.SetMaxOpenConns(40)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, "create table if not exists mux (id int primary key auto_increment, who int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "create table if not exists muxlog (who int)"); err != nil { // no insert ids: nothing holds a connection
		t.Fatal(err)
	}
	peak := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := db.Conn(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if _, err := c.ExecContext(ctx, "SET @me = "+strconv.Itoa(i)); err != nil {
				errs <- err
				return
			}
			for j := range 10 {
				var me sql.NullString
				if err := c.QueryRowContext(ctx, "SELECT @me").Scan(&me); err != nil || me.String != strconv.Itoa(i) {
					errs <- fmt.Errorf("client %d saw @me = %q (%v)", i, me.String, err)
					return
				}
				if _, err := c.ExecContext(ctx, "insert into muxlog (who) values (?)", i); err != nil { // prepared
					errs <- err
					return
				}
				if j == 5 {
					n, _ := strconv.Atoi(rootQuery(t, m, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'runner'"))
					mu.Lock()
					peak = max(peak, n)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := rootQuery(t, m, "SELECT COUNT(*) FROM muxlog"); n != "400" {
		t.Fatalf("%s rows; want 400", n)
	}
	// The heartbeat logs in as runner too: at most one more.
	if peak > 5 {
		t.Fatalf("%d server connections of runner for 40 clients; want at most 4 (+1 heartbeat)", peak)
	}
	if d.Pool().Shared.Load() == 0 {
		t.Fatal("no connection was taken over by a session of the same state")
	}

	// Statements prepared again on every connection they land on are closed there when it is
	// given back: clients of one state (their connections change hands without a new login)
	// do not make the server collect one per execution.
	same := openDB(t, addr, "")
	same.SetMaxOpenConns(10)
	var wg2 sync.WaitGroup
	for range 10 {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for range 30 {
				if _, err := same.ExecContext(ctx, "insert into muxlog (who) values (?)", -3); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg2.Wait()
	if n, _ := strconv.Atoi(rootQuery(t, m, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'PREPARED_STMT_COUNT'")); n > 40 {
		t.Fatalf("%d prepared statements on the server after 300 executions by 10 clients of one state", n)
	}
	// Isolation: a fresh client (a new session: not one of db's pooled client connections)
	// sees none of the others' variables or settings.
	fresh := conn(t, openDB(t, addr, ""))
	var v sql.NullString
	if err := fresh.QueryRowContext(ctx, "SELECT @me").Scan(&v); err != nil || v.Valid {
		t.Fatalf("a fresh client sees @me = %q (%v)", v.String, err)
	}
	a := conn(t, openDB(t, addr, ""))
	run(t, a, "SET SESSION sql_mode = 'ANSI_QUOTES'")
	if got := str(t, fresh, "SELECT @@SESSION.sql_mode"); strings.Contains(got, "ANSI_QUOTES") {
		t.Fatalf("another client's sql_mode reached this one: %q", got)
	}
	if got := str(t, a, "SELECT @@SESSION.sql_mode"); got != "ANSI_QUOTES" {
		t.Fatalf("the client's own sql_mode after multiplexing: %q", got)
	}
	// A transaction keeps its connection: its uncommitted row is seen by it, not by others.
	run(t, a, "BEGIN")
	run(t, a, "insert into mux (who) values (-1)")
	for range 5 {
		if got := str(t, fresh, "SELECT COUNT(*) FROM mux WHERE who = -1"); got != "0" {
			t.Fatalf("another client sees an uncommitted row: %s", got)
		}
		if got := str(t, a, "SELECT COUNT(*) FROM mux WHERE who = -1"); got != "1" {
			t.Fatalf("the transaction lost its row between statements: %s", got)
		}
	}
	run(t, a, "COMMIT")
	// LAST_INSERT_ID() after an insert runs where the insert did.
	for range 3 {
		run(t, a, "insert into mux (who) values (-2)")
		want := str(t, a, "/*master*/ SELECT MAX(id) FROM mux WHERE who = -2")
		if got := str(t, a, "SELECT LAST_INSERT_ID()"); got != want {
			t.Fatalf("LAST_INSERT_ID() after an insert: %s, want %s", got, want)
		}
	}
	if got := str(t, fresh, "SELECT COUNT(*) FROM mux WHERE who = -1"); got != "1" {
		t.Fatalf("after COMMIT: %s", got)
	}

	// Idle clients hold no server connection, from their login on or after a statement that
	// changed the connection's multi-statements option: twice the limit of them, idle, leave
	// room for another client's statements.
	idle := openDB(t, addr, "multiStatements=true")
	for i := range 8 {
		if got := str(t, conn(t, idle), "SELECT "+strconv.Itoa(i)); got != strconv.Itoa(i) {
			t.Fatalf("idle client %d: %s", i, got)
		}
	}
	if got := str(t, conn(t, openDB(t, addr, "")), "SELECT 'room'"); got != "room" {
		t.Fatalf("beside 8 idle clients: %s", got)
	}
}
