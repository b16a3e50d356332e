package mysqlproxy

import (
	"context"
	"encoding/hex"
	"errors"
	"log/slog"
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
// heartbeat user, again at most once a second when an unknown user tries to log in). A
// mysql_native_password account is checked against its stored hash, and the client's scramble
// yields what logs the session in to every server of the upstream; an account of another
// plugin (client_ed25519, PAM, ...) logs in through a server (front.User.Passthrough).

// learnEvery bounds how often a listener's accounts are read again.
const learnEvery = time.Second

// account is a server account.
type account struct {
	user, host, plugin, hash string
	locked                   bool
}

// learnedUsers are the accounts of each listener's primary upstream.
type learnedUsers struct {
	mu   sync.Mutex
	sets map[string]*accountSet // by upstream
}

type accountSet struct {
	mu       sync.Mutex
	accounts []account
	readAt   time.Time
	failed   bool // the last read failed (logged once)
}

// lookup finds the account name@host would log in as on the servers of upstream.
func (l *learnedUsers) lookup(ctx context.Context, reg *checkups.Registry, log *slog.Logger, upstream, name, host string) (front.User, bool) {
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
	a, ok := match(set.accounts, name, host)
	if !ok && time.Since(set.readAt) >= learnEvery {
		set.readAt = time.Now()
		accounts, err := readAccounts(ctx, reg, upstream)
		switch {
		case err != nil && !set.failed:
			set.failed = true
			log.Warn("reading the servers' accounts (users not configured cannot log in)", "upstream", upstream, "err", err)
		case err == nil:
			set.accounts, set.failed = accounts, false
		}
		a, ok = match(set.accounts, name, host)
	}
	if !ok || a.locked {
		return front.User{}, false
	}
	if a.plugin == "" || a.plugin == front.NativePassword {
		hash, err := hex.DecodeString(strings.TrimPrefix(a.hash, "*"))
		if err != nil || len(hash) != 20 {
			return front.User{}, false // no password, or not a native hash: refused as unknown
		}
		return front.User{Name: name, Plugin: front.NativePassword, NativeHash: hash}, true
	}
	return front.User{Name: name, Plugin: a.plugin, Passthrough: true}, true
}

// match is the account a client of host logs in as: the most specific host pattern that
// matches it (an exact host before a pattern, '%' last), as the server sorts them.
func match(accounts []account, name, host string) (account, bool) {
	best, rank := account{}, -1
	for _, a := range accounts {
		if a.user != name || !hostMatches(a.host, host) {
			continue
		}
		r := 2
		switch {
		case a.host == "%":
			r = 0
		case strings.ContainsAny(a.host, "%_"):
			r = 1
		}
		if r > rank {
			best, rank = a, r
		}
	}
	return best, rank >= 0
}

// hostMatches is LIKE-style matching of an account's host against a client's address
// ('localhost' is the Unix socket's: never a TCP client's).
func hostMatches(pattern, host string) bool {
	if pattern == "localhost" {
		return false
	}
	var m func(p, h string) bool
	m = func(p, h string) bool {
		for len(p) > 0 {
			switch p[0] {
			case '%':
				for i := 0; i <= len(h); i++ {
					if m(p[1:], h[i:]) {
						return true
					}
				}
				return false
			case '_':
				if h == "" {
					return false
				}
			default:
				if h == "" || !strings.EqualFold(p[:1], h[:1]) {
					return false
				}
			}
			p, h = p[1:], h[1:]
		}
		return h == ""
	}
	return m(pattern, host)
}

// readAccounts reads the accounts of upstream's first reachable server, with its heartbeat
// user (who must be able to read mysql.global_priv, or mysql.user on MySQL).
func readAccounts(ctx context.Context, reg *checkups.Registry, upstream string) ([]account, error) {
	up := reg.Get(upstream)
	if up == nil || up.User == "" {
		return nil, errors.New("the upstream has no heartbeat user (user, pass) to read accounts with")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*up.DialTimeout())
	defer cancel()
	var rows [][]*string
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
		return err
	})
	if err != nil {
		return nil, err
	}
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
	return out, nil
}
