package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Etcd is etcd v3.
type Etcd struct {
	c         *clientv3.Client
	endpoints string
}

func openEtcd(u *url.URL) (*Etcd, error) {
	cfg := clientv3.Config{Endpoints: strings.Split(u.Host, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	if q := u.Query(); q.Get("cacert") != "" || q.Get("cert") != "" {
		tc, err := tlsConfig(q.Get("cacert"), q.Get("cert"), q.Get("key"))
		if err != nil {
			return nil, fmt.Errorf("etcd %s: %w", u.Host, err)
		}
		cfg.TLS = tc
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", u.Host, err)
	}
	return &Etcd{c: c, endpoints: u.Host}, nil
}

func (e *Etcd) String() string { return "etcd://" + e.endpoints }
func (e *Etcd) Close() error   { return e.c.Close() }

func (e *Etcd) List(ctx context.Context, prefix string) (map[string][]byte, error) {
	m, _, err := e.list(ctx, prefix)
	return m, err
}

func (e *Etcd) list(ctx context.Context, prefix string) (map[string][]byte, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := e.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd get %s: %w", prefix, err)
	}
	m := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m, resp.Header.Revision, nil
}

// errResync ends a watch that must start over from a full read.
var errResync = errors.New("watch needs a full resync")

// Watch reads the prefix, then watches from the next revision, applying events to its copy.
// A compaction past the watched revision, or any watch error, means a full read again, so
// nothing is missed.
func (e *Etcd) Watch(ctx context.Context, prefix string, notify func(map[string][]byte), onErr func(error)) {
	b := watchBackoff()
	for ctx.Err() == nil {
		m, rev, err := e.list(ctx, prefix)
		if err != nil {
			failed(ctx, b, err, onErr)
			continue
		}
		b.Reset()
		notify(maps.Clone(m))
		if err := e.follow(ctx, prefix, rev, m, notify); err != nil {
			failed(ctx, b, err, onErr)
		}
	}
}

func (e *Etcd) follow(ctx context.Context, prefix string, rev int64, m map[string][]byte, notify func(map[string][]byte)) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range e.c.Watch(wctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			return fmt.Errorf("etcd watch compacted at %d: %w", resp.CompactRevision, errResync)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcd watch: %w", err)
		}
		for _, ev := range resp.Events {
			if ev.Type == clientv3.EventTypeDelete {
				delete(m, string(ev.Kv.Key))
			} else {
				m[string(ev.Kv.Key)] = ev.Kv.Value
			}
		}
		if len(resp.Events) > 0 {
			notify(maps.Clone(m))
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("etcd watch closed: %w", errResync)
}

func (e *Etcd) Ping(ctx context.Context) error {
	if _, err := e.c.Get(ctx, "slardar-ping", clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("etcd %s: %w", e.endpoints, err)
	}
	return nil
}

func (e *Etcd) Get(ctx context.Context, key string) ([]byte, bool, error) {
	resp, err := e.c.Get(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

func (e *Etcd) Put(ctx context.Context, key string, value []byte) error {
	if _, err := e.c.Put(ctx, key, string(value)); err != nil {
		return fmt.Errorf("etcd put %s: %w", key, err)
	}
	return nil
}

func (e *Etcd) Delete(ctx context.Context, key string) error {
	if _, err := e.c.Delete(ctx, key); err != nil {
		return fmt.Errorf("etcd delete %s: %w", key, err)
	}
	return nil
}

// ListRev reads the prefix and the revision the read saw.
func (e *Etcd) ListRev(ctx context.Context, prefix string) (map[string][]byte, int64, error) {
	return e.list(ctx, prefix)
}

// Follow watches from the revision after rev, applying events to m; see Watch.
func (e *Etcd) Follow(ctx context.Context, prefix string, rev int64, m map[string][]byte, notify func(map[string][]byte)) error {
	return e.follow(ctx, prefix, rev, m, notify)
}

// Compact compacts the store's history up to rev.
func (e *Etcd) Compact(ctx context.Context, rev int64) error {
	_, err := e.c.Compact(ctx, rev)
	return err
}

// tlsConfig builds a client TLS config from PEM files (any may be empty).
func tlsConfig(cacert, cert, key string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		pem, err := os.ReadFile(cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cacert %s: no certificates", cacert)
		}
		tc.RootCAs = pool
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}
