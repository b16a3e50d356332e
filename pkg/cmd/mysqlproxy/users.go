package mysqlproxy

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/backend"
	"github.com/slardar-go/slardar/pkg/mysql/front"
	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// Users learned from the servers: a client whose user is not configured is looked up in the
// accounts of the listener's primary upstream (mysql.global_priv, read with the upstream's
// heartbeat user; read again when a login finds them older than a second, or does not find
// its account among those read before it began — reads are one at a time per upstream). A
// mysql_native_password account is checked against its stored hash, and the client's scramble
// yields what logs the session in to every server of the upstream; an account of another
// plugin (client_ed25519, PAM, ...) logs in through a server (front.User.Passthrough).

// learnEvery is how old the accounts a login is checked against may be.
const learnEvery = time.Second

// rereadEvery bounds how often unknown users make the accounts be read again.
const rereadEvery = 100 * time.Millisecond

// account is a server account.
type account struct {
	user, host, plugin, hash string
	locked                   bool
}

// learnedUsers are the accounts of each listener's primary upstream.
type learnedUsers struct {
	mu    sync.Mutex
	sets  map[string]*accountSet // by upstream
	names map[string]resolved    // by client address
}

type accountSet struct {
	mu       sync.Mutex
	accounts []account
	resolve  bool // the servers resolve client names (skip_name_resolve off)
	readAt   time.Time
	failed   bool // the last read failed (logged once)
}

// lookup finds the account name@host would log in as on the servers of upstream.
// With recheck, the accounts are read again unless a read began after this call did (a
// login whose answer did not match the account as read before).
func (l *learnedUsers) lookup(ctx context.Context, reg *checkups.Registry, log *slog.Logger, upstream, name, host string, recheck bool) (front.User, bool) {
	start := time.Now()
	l.mu.Lock()
	if l.sets == nil {
		l.sets = make(map[string]*accountSet)
	}
	set := l.sets[upstream]
	if set == nil {
		set = &accountSet{}
		l.sets[upstream] = set
	}
	l.mu.Unlock()
	set.mu.Lock()
	defer set.mu.Unlock()
	refresh := func() {
		set.readAt = time.Now()
		accounts, resolve, err := readAccounts(ctx, reg, upstream)
		switch {
		case err != nil && !set.failed:
			set.failed = true
			log.Warn("reading the servers' accounts (users not configured cannot log in)", "upstream", upstream, "err", err)
		case err == nil:
			set.accounts, set.resolve, set.failed = accounts, resolve, false
		}
	}
	if time.Since(set.readAt) >= learnEvery {
		refresh()
	}
	a, ok := match(set.accounts, name, l.clientHosts(ctx, host, set.resolve))
	if (!ok || recheck) && set.readAt.Before(start) {
		// Not among accounts read before this login began: read them again (an account
		// created a moment ago logs in, as on the server), but not more often than
		// rereadEvery, however many unknown users try.
		select {
		case <-time.After(rereadEvery - time.Since(set.readAt)):
		case <-ctx.Done():
			return front.User{}, false
		}
		refresh()
		a, ok = match(set.accounts, name, l.clientHosts(ctx, host, set.resolve))
	}
	if !ok || a.locked {
		return front.User{}, false
	}
	if a.plugin == "" || a.plugin == front.NativePassword {
		if a.hash == "" {
			// An account without a password: the server lets it in with an empty answer, so
			// does the proxy (the host it is matched for is the client's, as on the server).
			return front.User{Name: name, Plugin: front.NativePassword, Learned: true}, true
		}
		hash, err := hex.DecodeString(strings.TrimPrefix(a.hash, "*"))
		if err != nil || len(hash) != 20 {
			return front.User{}, false // not a native hash: refused as unknown
		}
		return front.User{Name: name, Plugin: front.NativePassword, NativeHash: hash, Learned: true}, true
	}
	return front.User{Name: name, Plugin: a.plugin, Passthrough: true, Learned: true}, true
}

// match is the account a client known as hosts (its address, then the names it resolves
// to) logs in as, as the server sorts accounts: the most specific host pattern that matches
// one of them (an exact host before a pattern, '%' last), and for the same host the named
// account before the anonymous one (” matches every name).
func match(accounts []account, name string, hosts []string) (account, bool) {
	best, rank := account{}, -1
	for _, a := range accounts {
		if (a.user != name && a.user != "") || !slices.ContainsFunc(hosts, func(h string) bool { return front.HostMatches(a.host, h, h != hosts[0]) }) {
			continue
		}
		r := 4
		switch {
		case a.host == "%":
			r = 0
		case strings.ContainsAny(a.host, "%_"):
			r = 2
		}
		if a.user != "" {
			r++
		}
		if r > rank {
			best, rank = a, r
		}
	}
	return best, rank >= 0
}

// hostsOf is what the servers of upstream know a client at addr by (see clientHosts), as far
// as the proxy has learned whether they resolve names.
func (l *learnedUsers) hostsOf(upstream, addr string) []string {
	l.mu.Lock()
	set := l.sets[upstream]
	l.mu.Unlock()
	resolve := false
	if set != nil {
		set.mu.Lock()
		resolve = set.resolve
		set.mu.Unlock()
	}
	return l.clientHosts(context.Background(), addr, resolve)
}

// clientHosts is what a server matches account hosts against for a client at addr: the
// address, and when the server resolves names (resolve) the names it resolves to whose own
// addresses include it (forward-confirmed, as the server checks them), cached for a minute.
func (l *learnedUsers) clientHosts(ctx context.Context, addr string, resolve bool) []string {
	hosts := []string{addr}
	if !resolve {
		return hosts
	}
	l.mu.Lock()
	r, ok := l.names[addr]
	l.mu.Unlock()
	if !ok || time.Since(r.at) > nameTTL {
		r = resolved{at: time.Now(), names: resolveNames(ctx, addr)}
		l.mu.Lock()
		if l.names == nil || len(l.names) > maxNames {
			l.names = make(map[string]resolved)
		}
		l.names[addr] = r
		l.mu.Unlock()
	}
	return append(hosts, r.names...)
}

// Resolved client names are kept nameTTL, at most maxNames of them.
const (
	nameTTL  = time.Minute
	maxNames = 10000
)

type resolved struct {
	at    time.Time
	names []string
}

// resolveNames is addr's names (reverse lookup) whose forward lookup includes addr.
func resolveNames(ctx context.Context, addr string) []string {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	names, _ := net.DefaultResolver.LookupAddr(ctx, addr)
	var out []string
	for _, n := range names {
		n = strings.TrimSuffix(n, ".")
		if addrs, err := net.DefaultResolver.LookupHost(ctx, n); err == nil && slices.Contains(addrs, addr) {
			out = append(out, n)
		}
	}
	return out
}

// readAccounts reads the accounts of upstream's first reachable server, with its heartbeat
// user (who must be able to read mysql.global_priv, or mysql.user on MySQL), and whether it
// resolves client names (skip_name_resolve off).
func readAccounts(ctx context.Context, reg *checkups.Registry, upstream string) ([]account, bool, error) {
	up := reg.Get(upstream)
	if up == nil || up.User == "" {
		return nil, false, errors.New("the upstream has no heartbeat user (user, pass) to read accounts with")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*up.DialTimeout())
	defer cancel()
	var rows, skip [][]*string
	_, _, err := reg.Try(ctx, upstream, "", func(ctx context.Context, p checkups.Peer) error {
		key := backend.Key{Addr: p.Addr(), Caps: mysql.CLIENT_DEPRECATE_EOF | mysql.CLIENT_SESSION_TRACK}
		key.TLS, key.TLSPreferred = p.TLS()
		c, err := backend.Dial(ctx, key, backend.Login{User: up.User, Secret: backend.Secret{Password: up.Pass}, Collation: 45})
		if err != nil {
			return err
		}
		defer c.Close()
		rows, err = c.Rows(ctx, "SELECT User, Host, JSON_VALUE(Priv, '$.plugin'), JSON_VALUE(Priv, '$.authentication_string'), "+
			"IFNULL(JSON_VALUE(Priv, '$.account_locked'), 'false'), IFNULL(JSON_VALUE(Priv, '$.is_role'), 'false') FROM mysql.global_priv", 1<<20)
		var ep *wire.ErrPacket
		if errors.As(err, &ep) && ep.Code == mysql.ER_NO_SUCH_TABLE { // MySQL
			rows, err = c.Rows(ctx, "SELECT User, Host, plugin, authentication_string, account_locked = 'Y', 'false' FROM mysql.user", 1<<20)
		}
		if err != nil {
			return err
		}
		skip, err = c.Rows(ctx, "SELECT @@skip_name_resolve", 1<<10)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	resolve := len(skip) == 1 && len(skip[0]) == 1 && skip[0][0] != nil && *skip[0][0] == "0"
	out := make([]account, 0, len(rows))
	for _, r := range rows {
		str := func(i int) string {
			if r[i] == nil {
				return ""
			}
			return *r[i]
		}
		if str(5) == "true" {
			continue // a role: nobody logs in as it
		}
		out = append(out, account{user: str(0), host: str(1), plugin: str(2), hash: str(3), locked: str(4) == "true" || str(4) == "1"})
	}
	return out, resolve, nil
}
