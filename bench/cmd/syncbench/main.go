// Command syncbench measures store-sync's propagation latency: from a store write (the last of
// a batch of 1, 100 or 1000 changed keys) until every one of 3 slardar-proxy instances has
// applied the whole batch, with a real Consul agent and a real etcd. Proxies and the syncer run
// in this process with their default settings (debounce 50 ms). bench/run.sh -sync runs it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmd/slardarproxy"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/store"
	"github.com/slardar-go/slardar/pkg/syncer"
)

func main() {
	rounds := flag.Int("rounds", 20, "rounds per batch size (fewer for 1000 keys: rounds/4)")
	flag.Parse()
	if err := run(*rounds); err != nil {
		fmt.Fprintln(os.Stderr, "syncbench:", err)
		os.Exit(1)
	}
}

func run(rounds int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "syncbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	consul, err := testserver.StartConsul(ctx, dir)
	if err != nil {
		return err
	}
	defer consul.Stop()
	etcd, err := testserver.StartEtcd(ctx, dir)
	if err != nil {
		return err
	}
	defer etcd.Stop()
	fmt.Println("| store | changed keys | rounds | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, url := range []string{"consul://" + consul.Addr, "etcd://" + etcd.Addr} {
		st, err := store.Open(url)
		if err != nil {
			return err
		}
		var proxies []*slardarproxy.Daemon
		for range 3 {
			cfg := &config.File{Common: config.Common{Admin: config.Admin{Listen: "127.0.0.1:0"}}}
			d, err := slardarproxy.Start(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, nil)
			if err != nil {
				return err
			}
			defer d.Shutdown(ctx)
			proxies = append(proxies, d)
		}
		var addrs []string
		for _, p := range proxies {
			addrs = append(addrs, p.AdminAddr())
		}
		prefix := "bench/"
		sctx, cancel := context.WithCancel(ctx)
		s := &syncer.Syncer{Syncs: []syncer.Sync{{Store: st, Prefix: prefix, Targets: addrs}}}
		go s.Run(sctx)
		gen := 0
		for _, n := range []int{1, 100, 1000} {
			r := rounds
			if n == 1000 {
				r = max(rounds/4, 3)
			}
			var lat []time.Duration
			for range r {
				gen++
				port := 10000 + gen
				for i := range n {
					v := fmt.Sprintf(`{"enable":false,"servers":[{"host":"127.0.0.1","port":%d}]}`, port)
					if err := st.Put(ctx, fmt.Sprintf("%supstreams_stream/k%04d", prefix, i), []byte(v)); err != nil {
						cancel()
						return err
					}
				}
				written := time.Now()
				want := []byte(fmt.Sprintf(`"port":%d,`, port))
				if err := waitApplied(ctx, addrs, n, want); err != nil {
					cancel()
					return fmt.Errorf("%s %d keys: %w", url, n, err)
				}
				lat = append(lat, time.Since(written))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
			fmt.Printf("| %s | %d | %d | %v | %v | %v |\n", strings.Split(url, ":")[0], n, r,
				p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
		}
		cancel()
		st.Close()
	}
	return nil
}

// waitApplied polls every proxy until each has n upstreams carrying want.
func waitApplied(ctx context.Context, addrs []string, n int, want []byte) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, a := range addrs {
		c, err := admin.Dial(ctx, a, "")
		if err != nil {
			return err
		}
		for {
			r, err := c.Do(ctx, "GET", "upstream", "info", nil)
			if err == nil && bytes.Count(r.Data, want) >= n {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				return fmt.Errorf("%s did not apply in 60s", a)
			}
			time.Sleep(2 * time.Millisecond)
		}
		c.Close()
	}
	return nil
}
