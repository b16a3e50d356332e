// Package store reads and writes the configuration Slardar keeps in Consul KV, etcd v3 or a
// directory, under a prefix (default "config/slardar/") with the original's layout:
//
//	<prefix>upstreams_stream/<name>   upstream JSON
//	<prefix>lua_stream/<name>         Lua source (lua_stream/version is the commit version)
//	<prefix>routes/<pattern>          sni-router route JSON (an extension)
package store

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/slardar-go/slardar/pkg/backoff"
)

// DefaultPrefix is the original's config_key_prefix.
const DefaultPrefix = "config/slardar/"

// Sub-prefixes of the layout.
const (
	Upstreams = "upstreams_stream/"
	Code      = "lua_stream/"
	Routes    = "routes/"
	Users     = "mysql_users/" // mysql-proxy's users (PUT user)
	Rules     = "mysql_rules/" // mysql-proxy's query rules (PUT rule)
)

// Store is a key/value store holding the layout.
type Store interface {
	// List reads every pair under prefix.
	List(ctx context.Context, prefix string) (map[string][]byte, error)
	// Watch calls notify with every pair under prefix at start and after each change, until ctx
	// is done. Read errors are given to onErr and retried with capped backoff; notify is never
	// called with a snapshot that failed to read, so a store that is down changes nothing.
	Watch(ctx context.Context, prefix string, notify func(map[string][]byte), onErr func(error))
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	// Ping is a cheap read that tells whether the store answers (a watch may not notice that
	// it stopped: etcd's client waits for the server to come back).
	Ping(ctx context.Context) error
	Close() error
	String() string
}

// Open connects to consul://host:port, etcd://host:port[,host:port] or dir:///path.
// Query parameters: token (Consul ACL token; CONSUL_HTTP_TOKEN works too), wait (Consul
// blocking query wait, default 5m; Consul adds up to wait/16 of jitter), cacert, cert, key
// (TLS for both). etcd takes user:password@ for authentication.
func Open(raw string) (Store, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("store %q: %w", raw, err)
	}
	switch u.Scheme {
	case "consul":
		return openConsul(u)
	case "etcd":
		return openEtcd(u)
	case "dir":
		if u.Path == "" {
			return nil, fmt.Errorf("store %q: want dir:///absolute/path", raw)
		}
		return &Dir{Root: u.Path}, nil
	}
	return nil, fmt.Errorf("store %q: want consul://HOST:PORT, etcd://HOST:PORT[,HOST:PORT] or dir:///PATH", raw)
}

// Key builds a layout key.
func Key(prefix, kind, name string) string {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix + kind + name
}

// watchBackoff paces the reads of a watch that fails: 250 ms doubling to 2 s, jittered, so a
// store that comes back is read again within seconds.
func watchBackoff() *backoff.Backoff {
	return &backoff.Backoff{Base: 250 * time.Millisecond, Max: 2 * time.Second}
}

// failed reports a watch error and waits the next backoff delay, unless ctx is ending (then
// the error is only the watch stopping).
func failed(ctx context.Context, b *backoff.Backoff, err error, onErr func(error)) {
	if ctx.Err() != nil {
		return
	}
	onErr(err)
	backoff.Sleep(ctx, b.Next())
}
