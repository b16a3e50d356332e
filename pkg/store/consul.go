package store

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/hashicorp/consul/api"
)

// Consul is Consul KV through its HTTP API.
type Consul struct {
	kv   *api.KV
	addr string
	// WaitTime bounds one blocking query (Consul adds up to 1/16 of jitter). Default 5m.
	WaitTime time.Duration
}

func openConsul(u *url.URL) (*Consul, error) {
	cfg := api.DefaultConfig() // reads CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...
	cfg.Address = u.Host
	q := u.Query()
	if t := q.Get("token"); t != "" {
		cfg.Token = t
	}
	if q.Get("cacert") != "" || q.Get("cert") != "" {
		cfg.Scheme = "https"
		cfg.TLSConfig = api.TLSConfig{CAFile: q.Get("cacert"), CertFile: q.Get("cert"), KeyFile: q.Get("key")}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul %s: %w", u.Host, err)
	}
	s := &Consul{kv: c.KV(), addr: u.Host}
	if w := q.Get("wait"); w != "" {
		if s.WaitTime, err = time.ParseDuration(w); err != nil || s.WaitTime <= 0 {
			return nil, fmt.Errorf("consul %s: wait=%q: want a duration such as 30s", u.Host, w)
		}
	}
	return s, nil
}

func (c *Consul) String() string { return "consul://" + c.addr }
func (c *Consul) Close() error   { return nil }

func (c *Consul) List(ctx context.Context, prefix string) (map[string][]byte, error) {
	m, _, err := c.list(ctx, prefix, 0)
	return m, err
}

func (c *Consul) list(ctx context.Context, prefix string, index uint64) (map[string][]byte, uint64, error) {
	wait := c.WaitTime
	if wait <= 0 {
		wait = 5 * time.Minute
	}
	pairs, meta, err := c.kv.List(prefix, (&api.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("consul list %s: %w", prefix, err)
	}
	m := make(map[string][]byte, len(pairs))
	for _, p := range pairs {
		if len(p.Key) > 0 && p.Key[len(p.Key)-1] == '/' {
			continue // a folder
		}
		m[p.Key] = p.Value
	}
	return m, meta.LastIndex, nil
}

// Watch runs blocking queries on the prefix: a new index means a new snapshot; an index that
// went backwards (a restored or rebuilt cluster) restarts from 0.
func (c *Consul) Watch(ctx context.Context, prefix string, notify func(map[string][]byte), onErr func(error)) {
	var index uint64
	b := watchBackoff()
	for ctx.Err() == nil {
		m, last, err := c.list(ctx, prefix, index)
		if err != nil {
			failed(ctx, b, err, onErr)
			continue
		}
		b.Reset()
		switch {
		case last < index:
			index = 0
			notify(m)
		case last != index:
			index = last
			notify(m)
		}
	}
}

func (c *Consul) Ping(ctx context.Context) error {
	if _, _, err := c.kv.Get("slardar-ping", (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul %s: %w", c.addr, err)
	}
	return nil
}

func (c *Consul) Get(ctx context.Context, key string) ([]byte, bool, error) {
	p, _, err := c.kv.Get(key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, false, fmt.Errorf("consul get %s: %w", key, err)
	}
	if p == nil {
		return nil, false, nil
	}
	return p.Value, true, nil
}

func (c *Consul) Put(ctx context.Context, key string, value []byte) error {
	if _, err := c.kv.Put(&api.KVPair{Key: key, Value: value}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul put %s: %w", key, err)
	}
	return nil
}

func (c *Consul) Delete(ctx context.Context, key string) error {
	if _, err := c.kv.Delete(key, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul delete %s: %w", key, err)
	}
	return nil
}
