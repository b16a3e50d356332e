package mysqlproxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/mysql/digest"
	"github.com/slardar-go/slardar/pkg/mysql/rules"
	"github.com/slardar-go/slardar/pkg/mysql/session"
)

// mysql-proxy's topics, extensions of the admin protocol (ProxySQL's mysql_users and
// processlist, at run time):
//
//	PUT user <name> + JSON or YAML   {"password": ..., "auth": ..., "backend_user": ...,
//	                                 "backend_password": ..., "schema": ...}: a user clients
//	                                 may log in as from the next login on, over the config file's
//	                                 of that name; the config file's users stay as they are
//	DELETE user <name>               a user PUT before ("user <name> not found"; one of the
//	                                 config file is changed there)
//	GET user info                    every user by name: source (config or admin), auth,
//	                                 backend_user, schema; passwords masked, never shown
//	GET session info                 the client sessions (session.Process), a processlist
//	DELETE session [<upstream>/]<id>[:query]   KILL [QUERY] of a session by the id its client
//	                                 was told; sessions go on after their user is deleted
//	GET mysql digest                 the query digests (digest.Row), by total time
//	DELETE mysql digest              forgets them (ProxySQL's stats_mysql_query_digest_reset)

// runtimeUsers are the users PUT over the admin protocol: they outlive reloads, not restarts
// (store-sync puts them back, as it does upstreams).
type runtimeUsers struct {
	mu sync.Mutex
	m  map[string]config.MySQLUser
}

func (d *Daemon) registerTopics() {
	d.Mux.Handle("PUT", "user", true, func(_ context.Context, name string, body []byte) admin.Reply {
		u, err := config.ParseUserBody(name, body)
		if err != nil {
			return admin.Errorf("user %s: %v", name, err)
		}
		d.rtUsers.mu.Lock()
		defer d.rtUsers.mu.Unlock()
		m := maps.Clone(d.rtUsers.m)
		if m == nil {
			m = map[string]config.MySQLUser{}
		}
		m[name] = u
		d.setRuntimeUsers(m)
		return admin.OK()
	})
	d.Mux.Handle("DELETE", "user", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		d.rtUsers.mu.Lock()
		defer d.rtUsers.mu.Unlock()
		if _, ok := d.rtUsers.m[name]; !ok {
			if _, ok := (*d.users.Load())[name]; ok {
				return admin.Errorf("user %s is from the config file: remove it there and reload", name)
			}
			return admin.Errorf("user %s not found", name)
		}
		m := maps.Clone(d.rtUsers.m)
		delete(m, name)
		d.setRuntimeUsers(m)
		return admin.OK()
	})
	d.Mux.Handle("GET", "user", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name != "info" {
			return admin.Errorf(admin.ErrNotAllowed)
		}
		return admin.Message(d.userInfo())
	})
	d.Mux.Handle("GET", "mysql", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name != "digest" {
			return admin.Errorf(admin.ErrNotAllowed)
		}
		if !d.digestsOn.Load() {
			return admin.Errorf("query digests are off (mysql.digests.enabled)")
		}
		rows, err := d.digests.Rows(digest.SortTotal, 0)
		if err != nil {
			return admin.Result(err)
		}
		return admin.Message(rows)
	})
	d.Mux.Handle("DELETE", "mysql", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name != "digest" {
			return admin.Errorf(admin.ErrNotAllowed)
		}
		d.digests.Reset()
		return admin.OK()
	})
	d.Mux.Handle("GET", "session", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name != "info" {
			return admin.Errorf(admin.ErrNotAllowed)
		}
		return admin.Message(d.sessionsByID.Processes())
	})
	d.Mux.Handle("DELETE", "session", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		upstream, id, query, err := parseSessionName(name)
		if err == nil {
			err = d.sessionsByID.Kill(upstream, id, query)
		}
		if errors.Is(err, session.ErrNoSession) {
			return admin.Errorf("session %s not found", name)
		}
		return admin.Result(err)
	})
}

// parseSessionName reads [<upstream>/]<id>[:query].
func parseSessionName(name string) (upstream string, id uint32, query bool, err error) {
	rest, query := strings.CutSuffix(name, ":query")
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		upstream, rest = rest[:i], rest[i+1:]
	}
	n, perr := strconv.ParseUint(rest, 10, 32)
	if perr != nil {
		return "", 0, false, fmt.Errorf("session %q: want [UPSTREAM/]ID[:query], ID a connection id", name)
	}
	return upstream, uint32(n), query, nil
}

// setRuntimeUsers publishes m (the caller holds rtUsers.mu).
func (d *Daemon) setRuntimeUsers(m map[string]config.MySQLUser) {
	d.rtUsers.m = m
	d.rtUsersView.Store(&m)
}

// lookupUser is the user a login of name uses: one PUT over the admin protocol, else the
// config file's.
func (d *Daemon) lookupUser(name string) (config.MySQLUser, bool) {
	if m := d.rtUsersView.Load(); m != nil {
		if u, ok := (*m)[name]; ok {
			return u, true
		}
	}
	u, ok := (*d.users.Load())[name]
	return u, ok
}

// UserInfo is one user in GET user info: no password is ever shown back, only a salted hash
// of it, so store-sync can tell a changed one (checkups.MaskPass).
type UserInfo struct {
	Source          string `json:"source"` // config or admin (the admin's wins)
	Password        string `json:"password,omitempty"`
	Auth            string `json:"auth,omitempty"`
	BackendUser     string `json:"backend_user,omitempty"`
	BackendPassword string `json:"backend_password,omitempty"`
	Schema          string `json:"schema,omitempty"`
}

func (d *Daemon) userInfo() map[string]UserInfo {
	var b [8]byte
	rand.Read(b[:])
	salt := hex.EncodeToString(b[:])
	mask := func(p string) string {
		if p == "" {
			return ""
		}
		return checkups.MaskPass(p, salt)
	}
	out := map[string]UserInfo{}
	add := func(source string, m map[string]config.MySQLUser) {
		for name, u := range m {
			out[name] = UserInfo{Source: source, Password: mask(u.Password), Auth: u.Auth, BackendUser: u.BackendUser,
				BackendPassword: mask(u.BackendPassword), Schema: u.Schema}
		}
	}
	add("config", *d.users.Load())
	if m := d.rtUsersView.Load(); m != nil {
		add("admin", *m)
	}
	return out
}

// ruleTable is the query rules: the config file's and those PUT over the admin protocol (which
// win by name and outlive reloads), compiled into the set sessions read.
type ruleTable struct {
	mu     sync.Mutex
	config []rules.Rule
	admin  map[string]rules.Rule
	set    atomic.Pointer[rules.Set]
}

// build compiles config and admin rules together; nothing changes when it fails.
func (t *ruleTable) build(config []rules.Rule, admin map[string]rules.Rule) (*rules.Set, error) {
	all := make([]rules.Rule, 0, len(config)+len(admin))
	for _, r := range config {
		if _, over := admin[r.Name]; !over {
			all = append(all, r)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(admin)) {
		all = append(all, admin[name])
	}
	return rules.Build(all, t.set.Load())
}

// change applies edit to a copy of the admin rules and puts the result in force, or, when edit
// or the build fails, changes nothing and says why.
func (t *ruleTable) change(edit func(admin map[string]rules.Rule) error) admin.Reply {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := maps.Clone(t.admin)
	if m == nil {
		m = map[string]rules.Rule{}
	}
	if err := edit(m); err != nil {
		return admin.Errorf("%v", err)
	}
	set, err := t.build(t.config, m)
	if err != nil {
		return admin.Errorf("%v", err)
	}
	t.admin = m
	t.set.Store(set)
	return admin.OK()
}

// source says where a rule in force came from.
func (t *ruleTable) source(name string) string {
	if _, ok := t.admin[name]; ok {
		return "admin"
	}
	return "config"
}

func (d *Daemon) registerRuleTopic() {
	t := &d.rules
	d.Mux.Handle("PUT", "rule", true, func(_ context.Context, name string, body []byte) admin.Reply {
		r, err := rules.Parse(name, body)
		if err != nil {
			return admin.Errorf("%v", err)
		}
		return t.change(func(m map[string]rules.Rule) error { m[name] = r; return nil })
	})
	d.Mux.Handle("DELETE", "rule", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		return t.change(func(m map[string]rules.Rule) error {
			if _, ok := m[name]; !ok {
				if slices.ContainsFunc(t.config, func(r rules.Rule) bool { return r.Name == name }) {
					return fmt.Errorf("rule %s is from the config file: remove it there and reload", name)
				}
				return fmt.Errorf("rule %s not found", name)
			}
			delete(m, name)
			return nil
		})
	})
	d.Mux.Handle("GET", "rule", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name != "info" {
			return admin.Errorf(admin.ErrNotAllowed)
		}
		t.mu.Lock()
		defer t.mu.Unlock()
		return admin.Message(t.set.Load().Infos(t.source))
	})
}

// prepareRules compiles the config file's rules with those PUT at run time; commit puts them
// in force.
func (d *Daemon) prepareRules(cfg *config.MySQLFile) (commit func(), err error) {
	t := &d.rules
	t.mu.Lock()
	defer t.mu.Unlock()
	set, err := t.build(cfg.Rules, t.admin)
	if err != nil {
		return nil, err
	}
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.config = cfg.Rules
		t.set.Store(set)
	}, nil
}
