package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/slardar-go/slardar/internal/testserver"
)

// goClients is sysbench's oltp_point_select as text statements from a Go load tool: clients
// each holding its own connection send SELECT c FROM sbtest1 WHERE id=<random> one after
// another. A client is a goroutine rather than sysbench's thread, so 2000 of them cost this
// 2-core machine little more CPU per statement than 64, and the rate shows the proxy's own
// scaling.
type goClients struct {
	db    *sql.DB
	conns []*sql.Conn
}

// openClients logs n clients in to addr, 32 at a time (the logins are not part of the rate).
func openClients(addr string, n int) (*goClients, error) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = testserver.User, testserver.Password, "tcp", addr, testserver.Database
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	g := &goClients{db: sql.OpenDB(connector), conns: make([]*sql.Conn, n)}
	g.db.SetMaxIdleConns(n)
	var wg sync.WaitGroup
	errs := make([]error, n)
	turn := make(chan struct{}, 32)
	for i := range g.conns {
		turn <- struct{}{}
		wg.Go(func() {
			g.conns[i], errs[i] = g.db.Conn(context.Background())
			<-turn
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

// run sends statements from every client for d; it returns queries per second and the
// statements that failed (the first failure is printed).
func (g *goClients) run(d time.Duration) (qps float64, failed int64) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var queries, bad atomic.Int64
	var wg sync.WaitGroup
	for _, c := range g.conns {
		wg.Go(func() {
			var n int64
			var text string
			for ctx.Err() == nil {
				err := c.QueryRowContext(ctx, "SELECT c FROM sbtest1 WHERE id="+strconv.Itoa(1+rand.IntN(10000))).Scan(&text)
				switch {
				case err == nil:
					n++
				case ctx.Err() == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
					if bad.Add(1) == 1 {
						fmt.Fprintf(os.Stderr, "mysqlbench: %d clients: %v\n", len(g.conns), err)
					}
				}
			}
			queries.Add(n)
		})
	}
	wg.Wait()
	return float64(queries.Load()) / d.Seconds(), bad.Load()
}

func (g *goClients) close() {
	for _, c := range g.conns {
		if c != nil {
			c.Close()
		}
	}
	g.db.Close()
}
