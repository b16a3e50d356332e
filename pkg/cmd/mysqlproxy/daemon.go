// Package mysqlproxy is mysql-proxy: a MySQL-protocol proxy with read/write split. It is a
// daemon.Core with Lua preread and log hooks (daemon.Scripts) whose content is a MySQL session:
// the client logs in to the proxy (pkg/mysql/front), then each command is routed to the
// primary (upstream N) or a replica (N_read) and relayed (pkg/mysql/session).
package mysqlproxy

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/daemon"
	"github.com/slardar-go/slardar/pkg/l4"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/digest"
	"github.com/slardar-go/slardar/pkg/mysql/front"
	"github.com/slardar-go/slardar/pkg/mysql/session"
)

// Defaults of mysql-proxy.
const (
	DefaultAdminListen = "127.0.0.1:1896"
	DefaultHTTPListen  = "127.0.0.1:1996"
	DefaultListen      = "127.0.0.1:3141"
	loginTimeout       = 10 * time.Second
)

// Daemon is a running mysql-proxy.
type Daemon struct {
	*daemon.Daemon[*config.MySQLFile]
	Scripts  *daemon.Scripts
	front    *front.Server
	pool     *backend.Pool
	sessions atomic.Pointer[map[string]*session.Config] // by listener upstream
	roles    atomic.Pointer[map[string]string]          // implied checkups roles: N primary, N_read replica
	versions atomic.Pointer[map[string]string]          // the server_version each listener announces (by upstream)
	lastKeys sync.Map                                   // upstream → clientKey: what its last client negotiated
	learned  learnedUsers                               // accounts read from the servers (users.go)
	learn    atomic.Bool                                // mysql.learn_users
	pos      session.Positions
	// sessionsByID are the open sessions by the connection id their clients were told (KILL).
	sessionsByID session.Sessions
	counters     counters
	rules        ruleTable       // the query rules (topics.go: PUT/GET/DELETE rule)
	mirrors      session.Mirrors // what rules mirror
	digests      digest.Store    // the query digests (topics.go: GET/DELETE mysql digest; metrics.go)
	digestsOn    atomic.Bool
	digestTop    atomic.Int64
	users        atomic.Pointer[map[string]config.MySQLUser] // the config file's
	rtUsers      runtimeUsers                                // PUT user (topics.go)
	rtUsersView  atomic.Pointer[map[string]config.MySQLUser] // rtUsers.m, for logins
	log          *slog.Logger
}

// Start builds mysql-proxy from cfg and starts serving; load reads the config again on SIGHUP.
func Start(ctx context.Context, log *slog.Logger, cfg *config.MySQLFile, load func() (*config.MySQLFile, error)) (*Daemon, error) {
	pc := cfg.MySQL.Pool
	d := &Daemon{log: log, Scripts: daemon.NewScripts(log), pool: &backend.Pool{MaxIdle: maxIdle(pc.MaxIdle),
		IdleTimeout: pc.IdleTimeout, MaxAge: pc.MaxAge, WaitTimeout: pc.WaitTimeout, MaxConns: pc.MaxConns}}
	d.Daemon = daemon.New(daemon.Spec[*config.MySQLFile]{Log: log, Hooks: hooks{lua: d.Scripts.Runtime, d: d},
		AdminListen: DefaultAdminListen, Load: load, Common: commonOf}, cfg)
	d.Scripts.Attach(d.Core)
	d.registerTopics()
	d.registerRuleTopic()
	d.mirrors.Registry, d.mirrors.Pool = d.Reg, d.pool
	d.Reg.ImpliedRole = func(upstream string) string { return (*d.roles.Load())[upstream] }
	d.Reg.ServerInfo = d.poolInfo
	d.Prom.MustRegister(d)
	d.roles.Store(&map[string]string{})
	d.versions.Store(&map[string]string{})
	tlsConf, key, err := serverTLS(cfg.MySQL)
	if err != nil {
		return nil, err
	}
	d.front = &front.Server{TLS: tlsConf, RSAKey: key, Users: d.user,
		LocalFiles: cfg.MySQL.LocalInfile == nil || *cfg.MySQL.LocalInfile}
	d.Add(daemon.PartOf(daemon.Part[*config.File](d.Scripts), func(c *config.MySQLFile) *config.File { return &c.File }),
		daemon.PartFunc[*config.MySQLFile](d.prepare))
	d.OnShutdown(d.pool.Close) // after the sessions drained
	if err := d.Start(ctx, cfg); err != nil {
		return nil, err
	}
	return d, nil
}

func commonOf(cfg *config.MySQLFile) (*config.Common, []config.Listener) {
	return &cfg.Common, cfg.Listeners
}

// poolInfo is a server's part of the pool, for GET upstream status.
func (d *Daemon) poolInfo(addr string) map[string]any {
	st, ok := d.pool.Stats()[addr]
	if !ok {
		return nil
	}
	return map[string]any{"open": st.Open, "idle": st.Idle, "waiting": st.Waiting, "limit": st.Limit,
		"waits": st.Waits, "wait_seconds": st.Waited.Seconds()}
}

// Pool is the backend connection pool (for tests and status).
func (d *Daemon) Pool() *backend.Pool { return d.pool }

// prepare is the MySQL part: users, the session settings of each listener, the roles its
// upstreams imply and the version it announces, in force at commit.
func (d *Daemon) prepare(_ context.Context, cfg *config.MySQLFile) (func(), error) {
	users := make(map[string]config.MySQLUser, len(cfg.Users))
	for _, u := range cfg.Users {
		users[u.Name] = u
	}
	sessions := make(map[string]*session.Config, len(cfg.Listeners))
	roles := make(map[string]string, 2*len(cfg.Listeners))
	versions := make(map[string]string, len(cfg.Listeners))
	for _, l := range cfg.Listeners {
		versions[l.Upstream] = cmp.Or(l.ServerVersion, cfg.MySQL.ServerVersion)
		mode, window := cfg.ListenerConsistency(l)
		sc := d.sessionConfig(l.Upstream)
		sc.MaxStmts, sc.IdleTimeout, sc.MaxPacket = cfg.MySQL.MaxPreparedStatements, cfg.MySQL.IdleTimeout, int(cfg.MySQL.MaxPacket)
		sc.ReadTimeout = cfg.MySQL.ReadTimeout
		sc.Consistency = session.Consistency{Mode: mode, Window: window, GTIDWait: cfg.MySQL.GTIDWaitTimeout}
		sc.Multiplex = l.Multiplex
		sessions[l.Upstream] = sc
		roles[l.Upstream], roles[l.Upstream+session.ReadSuffix] = checkups.RolePrimary, checkups.RoleReplica
	}
	learn := cfg.MySQL.LearnUsers == nil || *cfg.MySQL.LearnUsers
	dg := cfg.MySQL.Digests
	digestsOn := dg.Enabled == nil || *dg.Enabled
	top := 20
	if dg.Top != nil {
		top = *dg.Top
	}
	for _, sc := range sessions {
		if digestsOn {
			sc.Digests = &d.digests
		}
	}
	commitRules, err := d.prepareRules(cfg)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	return func() {
		commitRules()
		d.digests.SetMax(dg.Max)
		d.digestsOn.Store(digestsOn)
		d.digestTop.Store(int64(top))
		d.users.Store(&users)
		d.learn.Store(learn)
		d.sessions.Store(&sessions)
		d.roles.Store(&roles)
		d.versions.Store(&versions)
		if len(users) == 0 && !learn && d.rtUsersView.Load() == nil {
			d.log.Warn("no users configured and mysql.learn_users off: every login is refused; give --users-file or users: in the config file")
		}
	}, nil
}

// hello is what the handshake of the listener serving upstream says: the version and default
// collation of its servers (from the last login to one, or a probe of the first), marked as
// the proxy, or the version configured; MariaDB's extended capabilities the servers have.
func (d *Daemon) hello(ctx context.Context, upstream string) front.Hello {
	var h front.Hello
	if up := d.Reg.Get(upstream); up != nil {
		for i, l := range up.Cluster.Levels {
			for j, srv := range l.Servers {
				ctx, cancel := context.WithTimeout(ctx, time.Second)
				hs := d.pool.Hello(ctx, srv.Addr(), i == 0 && j == 0)
				cancel()
				if hs != nil {
					h = front.Hello{Version: hs.Version + "-slardar", Collation: hs.Collation, ExtCaps: hs.ExtCaps() & backend.ExtFraming}
					break
				}
			}
			if h.Version != "" {
				break
			}
		}
	}
	if v := (*d.versions.Load())[upstream]; v != "" {
		h.Version = v
	}
	return h
}

// clientKey is what a listener's last client negotiated: what the next one likely will.
type clientKey struct{ caps, ext uint32 }

// anchor takes a server connection whose thread id the handshake announces (see
// session.Anchor), as one for a client like the listener's last; nil when none is had at once.
func (d *Daemon) anchor(ctx context.Context, cfg *session.Config, upstream, host string) *session.Anchor {
	k := clientKey{caps: front.Capabilities&backend.Framing | mysql.CLIENT_SESSION_TRACK}
	if v, ok := d.lastKeys.Load(upstream); ok {
		k = v.(clientKey)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return session.TakeAnchor(ctx, cfg, upstream, host, backend.Key{Caps: k.caps, ExtCaps: k.ext})
}

// sessionConfig is the session settings of the listener serving upstream, with the defaults for
// what the config file may set.
func (d *Daemon) sessionConfig(upstream string) *session.Config {
	sc := &session.Config{Registry: d.Reg, Pool: d.pool, Front: d.front, Log: d.log.With("component", "mysql", "upstream", upstream),
		Backend: d.backendUser, Positions: &d.pos, Counters: d.counters.get(upstream), Sessions: &d.sessionsByID,
		ClientHosts: func(addr string) []string { return d.learned.hostsOf(upstream, addr) },
		Rules:       d.rules.set.Load, Mirrors: &d.mirrors}
	if d.digestsOn.Load() {
		sc.Digests = &d.digests
	}
	return sc
}

// user finds a proxy user for the front.
func (d *Daemon) user(name string) (front.User, bool) {
	u, ok := d.lookupUser(name)
	if !ok {
		return front.User{}, false
	}
	return front.User{Name: u.Name, Password: u.Password, Plugin: u.Auth, Schema: u.Schema}, true
}

// backendUser is what a user logs in to the servers as: the backend account, or its own.
func (d *Daemon) backendUser(u front.User) (string, string) {
	if c, ok := d.lookupUser(u.Name); ok && c.BackendUser != "" {
		return c.BackendUser, c.BackendPassword
	}
	return u.Name, u.Password
}

// hooks are mysql-proxy's: the Lua preread and log hooks of the port, and a MySQL session as
// the content (unless a content script serves the port).
type hooks struct {
	lua l4.Hooks
	d   *Daemon
}

func (h hooks) Preread(ctx context.Context, cx *l4.Conn) error { return h.lua.Preread(ctx, cx) }
func (h hooks) Log(cx *l4.Conn)                                { h.lua.Log(cx) }

func (h hooks) Content(ctx context.Context, cx *l4.Conn) (bool, error) {
	if served, err := h.lua.Content(ctx, cx); served || err != nil {
		return served, err
	}
	return true, h.d.serveMySQL(ctx, cx)
}

// serveMySQL logs the client in and runs its session; the access-log line gets what the
// session did.
func (d *Daemon) serveMySQL(ctx context.Context, cx *l4.Conn) error {
	var nc net.Conn = cx.Client
	if cx.Reader != nil && cx.Reader.Buffered() > 0 {
		nc = front.ReadThrough(nc, io.MultiReader(cx.Reader, nc)) // bytes a preread script peeked at
	}
	cc := &countingConn{Conn: nc}
	defer func() { cx.BytesIn, cx.BytesOut = cc.in.Load(), cc.out.Load() }()
	cx.OwnStatus = true
	cc.SetDeadline(time.Now().Add(loginTimeout))
	cfg := (*d.sessions.Load())[cx.Upstream]
	if cfg == nil { // a listener the config just removed: its last settings are gone, the defaults serve
		cfg = d.sessionConfig(cx.Upstream)
	}
	host, _, _ := net.SplitHostPort(cx.Client.RemoteAddr().String())
	hello := d.hello(ctx, cx.Upstream)
	hello.Users = func(name, clientHost string) (front.User, bool) {
		if u, ok := d.user(name); ok {
			return u, true
		}
		if !d.learn.Load() {
			return front.User{}, false
		}
		return d.learned.lookup(ctx, d.Reg, d.log, cx.Upstream, name, clientHost, false)
	}
	hello.Recheck = func(name, clientHost string) (front.User, bool) {
		return d.learned.lookup(ctx, d.Reg, d.log, cx.Upstream, name, clientHost, true)
	}
	hello.Relay = func(cl *front.Client, resp front.Response) (front.Relay, error) {
		return session.RelayLogin(ctx, cfg, cx.Upstream, host, cl, resp)
	}
	anchor := d.anchor(ctx, cfg, cx.Upstream, host)
	if anchor != nil {
		hello.ConnID = anchor.ThreadID()
	}
	cl, err := d.front.Accept(cc, hello)
	if err != nil {
		anchor.Return(d.pool)
		var le *front.LoginError
		if errors.As(err, &le) {
			cx.Status = l4.StatusForbidden
			cx.LogAttrs = append(cx.LogAttrs, "user", le.User)
		}
		return fmt.Errorf("mysql login: %w", err)
	}
	cc.SetDeadline(time.Time{})
	if sc, ok := cx.Client.(syscall.Conn); ok {
		cl.Gone = func() bool { return l4.PeerClosed(sc) }
	}
	d.lastKeys.Store(cx.Upstream, clientKey{caps: cl.Capabilities&backend.Framing | mysql.CLIENT_SESSION_TRACK,
		ext: cl.ExtCaps & backend.ExtFraming})
	stats, err := session.Serve(ctx, cfg, cl, cx.Upstream, host, anchor)
	cx.LogAttrs = append(cx.LogAttrs, "user", stats.User, "schema", stats.Schema, "queries", stats.Queries,
		"reads", stats.Reads, "primary_reads", stats.PrimaryReads, "writes", stats.Writes, "read_fallbacks", stats.Fallbacks, "retries", stats.Retries,
		"gtid_waits", stats.GTIDWaits, "gtid_fallbacks", stats.GTIDFallbacks, "window_reads", stats.WindowReads, "backends", strings.Join(stats.Backends, ","))
	if len(stats.Backends) > 0 {
		cx.Server = stats.Backends[0]
	}
	return err
}

// countingConn counts the client's bytes for the access log.
type countingConn struct {
	net.Conn
	in, out atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// serverTLS is the certificate offered to clients (the configured one, or a self-signed one
// made now) and the RSA key for caching_sha2_password without TLS.
func serverTLS(m config.MySQL) (*tls.Config, *rsa.PrivateKey, error) {
	var cert tls.Certificate
	var err error
	if m.TLSCert != "" {
		if cert, err = tls.LoadX509KeyPair(m.TLSCert, m.TLSKey); err != nil {
			return nil, nil, fmt.Errorf("mysql.tls_cert: %w", err)
		}
	} else if cert, err = selfSigned(); err != nil {
		return nil, nil, err
	}
	key, _ := cert.PrivateKey.(*rsa.PrivateKey)
	if key == nil {
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, nil, err
		}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, key, nil
}

// selfSigned makes a certificate for TLS with clients when none is configured (as MySQL
// generates one at its first start).
func selfSigned() (tls.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "slardar mysql-proxy"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// maxIdle is the pool's MaxIdle for the configured max_idle: unset is the default (0), 0 is
// none (negative).
func maxIdle(n *int) int {
	switch {
	case n == nil:
		return 0
	case *n == 0:
		return -1
	}
	return *n
}
