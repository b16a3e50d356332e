package slardarproxy

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
)

func TestPutUpstreamExactBytes(t *testing.T) {
	d := startDaemon(t, nil)
	body := []byte(`{"cluster":[{"servers":[{"host":"127.0.0.1","port":3306}]}]}`)
	raw := admin.AppendRequest(nil, "PUT", "upstream", "3131", body)
	got := testutil.RawExchange(t, d.AdminAddr(), raw)
	if want := "00000006000000004f4b"; hex.EncodeToString(got) != want {
		t.Fatalf("PUT upstream 3131 → %x; want %s", got, want)
	}
}

func TestBalancingThroughRealMariaDB(t *testing.T) {
	d := startDaemon(t, nil)
	proxy := d.ListenerAddr("3131")
	putUpstream(t, d, twoServers(""))
	var ports []string
	for range 4 {
		p, err := mysqlPort(t, proxy)
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	a, b := strconv.Itoa(dbA.Port), strconv.Itoa(dbB.Port)
	if !(ports[0] != ports[1] && ports[0] == ports[2] && ports[1] == ports[3]) || (ports[0] != a && ports[0] != b) {
		t.Fatalf("round robin gave ports %v; want alternation of %s and %s", ports, a, b)
	}

	putUpstream(t, d, twoServers(`"mode":"ip_hash",`))
	first, err := mysqlPort(t, proxy)
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if p, err := mysqlPort(t, proxy); err != nil || p != first {
			t.Fatalf("ip_hash moved from %s to %s (%v)", first, p, err)
		}
	}
}

// TestFailoverAndHeartbeat kills one real backend: new connections keep succeeding through
// retry, the mysql heartbeat marks it err within one interval, and ok again after it returns.
func TestFailoverAndHeartbeat(t *testing.T) {
	d := startDaemon(t, nil)
	proxy := d.ListenerAddr("3131")
	putUpstream(t, d, twoServers(`"typ":"mysql","user":"runner","pass":"runner123456","name":"upyun","timeout":1,`))
	testutil.WaitFor(t, "both servers ok", 5*time.Second, func() bool {
		st := status(t, d)
		return st[0].Status == checkups.StatusOK && st[1].Status == checkups.StatusOK
	})

	// Clients open a new connection for every query, continuously, across the kill.
	db := openDB(t, proxy)
	db.SetMaxIdleConns(0)
	var mu sync.Mutex
	var killed time.Time
	var afterKill, failedAfterKill int
	var lastErr error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				started := time.Now()
				var port int
				err := db.QueryRow("select @@port").Scan(&port)
				mu.Lock()
				if !killed.IsZero() && started.After(killed) {
					afterKill++
					if err != nil || port != dbB.Port {
						failedAfterKill++
						lastErr = fmt.Errorf("port %d, err %v", port, err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := dbA.Kill(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	killed = time.Now()
	mu.Unlock()
	t.Cleanup(func() { dbA.Start(context.Background()) })
	flip := testutil.WaitFor(t, "killed server err", 3*time.Second, func() bool { return status(t, d)[0].Status == checkups.StatusErr })
	t.Logf("status err %v after the kill (heartbeat interval 200ms)", flip)
	time.Sleep(time.Second - flip)
	close(stop)
	wg.Wait()
	if afterKill < 20 || failedAfterKill != 0 {
		t.Fatalf("%d of %d connections opened after the kill failed or missed the live server (last: %v)", failedAfterKill, afterKill, lastErr)
	}
	t.Logf("%d connections opened in the second after the kill, all served by the live server", afterKill)
	st := status(t, d)[0]
	if st.Msg == nil || *st.Msg == "" {
		t.Fatalf("err status without message: %+v", st)
	}

	if err := dbA.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "restarted server ok", 5*time.Second, func() bool { return status(t, d)[0].Status == checkups.StatusOK })
	testutil.WaitFor(t, "restarted server selected again", 5*time.Second, func() bool {
		p, err := mysqlPort(t, proxy)
		return err == nil && p == strconv.Itoa(dbA.Port)
	})
}

func TestMySQLHeartbeatBadPassword(t *testing.T) {
	d := startDaemon(t, nil)
	putUpstream(t, d, twoServers(`"typ":"mysql","user":"runner","pass":"wrong","name":"upyun","timeout":1,"protected":false,`))
	testutil.WaitFor(t, "auth failure reported", 5*time.Second, func() bool {
		st := status(t, d)
		return st[0].Status == checkups.StatusErr && st[0].Msg != nil && strings.Contains(*st[0].Msg, "Access denied")
	})
}

// TestPutKeepsOpenConnections: a PUT applies to the next connection; one already open keeps
// its backend.
func TestPutKeepsOpenConnections(t *testing.T) {
	d := startDaemon(t, nil)
	proxy := d.ListenerAddr("3131")
	putUpstream(t, d, fmt.Sprintf(`{"cluster":[{"servers":[{"host":"127.0.0.1","port":%d}]}]}`, dbA.Port))
	db := openDB(t, proxy)
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var port int
	if err := conn.QueryRowContext(ctx, "select @@port").Scan(&port); err != nil || port != dbA.Port {
		t.Fatalf("before put: %d %v", port, err)
	}
	putUpstream(t, d, fmt.Sprintf(`{"servers":[{"host":"localhost","port":%d}]}`, dbB.Port))
	if p, err := mysqlPort(t, proxy); err != nil || p != strconv.Itoa(dbB.Port) {
		t.Fatalf("new connection after put: %s %v", p, err)
	}
	if err := conn.QueryRowContext(ctx, "select @@port").Scan(&port); err != nil || port != dbA.Port {
		t.Fatalf("open connection after put: %d %v", port, err)
	}
	// The open connection counts against the old server, which is no longer in the upstream: the
	// new server's count falls to 0 once the proxy has closed the one-shot client's connection
	// above (the client exits before the proxy sees both directions end).
	testutil.WaitFor(t, "the new server to show no connections", 5*time.Second, func() bool {
		return status(t, d)[0].ActiveConns == 0
	})
}

func TestNoUpstreamClosesCleanly(t *testing.T) {
	d := startDaemon(t, func(c *config.File) {
		c.Listeners = append(c.Listeners, config.Listener{Listen: "127.0.0.1:0", Upstream: "missing"})
	})
	if _, err := mysqlPort(t, d.ListenerAddr("missing")); err == nil || !strings.Contains(err.Error(), "Lost connection") {
		t.Fatalf("want a lost connection, got %v", err)
	}
	// The admin port and other listeners keep serving.
	putUpstream(t, d, twoServers(""))
	if _, err := mysqlPort(t, d.ListenerAddr("3131")); err != nil {
		t.Fatal(err)
	}
}
