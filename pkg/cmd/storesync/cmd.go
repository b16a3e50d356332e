// Package storesync is store-sync's command line: flags and config file, --once/--dry-run, or
// the syncer with its health and metrics endpoint until a signal.
package storesync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	systemd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/metrics"
	"github.com/slardar-go/slardar/pkg/store"
	"github.com/slardar-go/slardar/pkg/syncer"
	"github.com/slardar-go/slardar/pkg/version"
)

// DefaultListen serves /metrics, /livez, /readyz and /health.
const DefaultListen = "127.0.0.1:1898"

// Options are store-sync's flags.
type Options struct {
	ConfigPath string
	Source     string
	Prefix     string
	Targets    []string
	Token      string
	Prune      bool
	HTTPListen string
	Resync     time.Duration
	Once       bool
	DryRun     bool
	Output     string
	LogFormat  string
	LogLevel   string
}

// NewCommand builds the store-sync root command.
func NewCommand() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "store-sync",
		Short: "Keep slardar proxies in step with Consul KV, etcd or a directory",
		Long: `store-sync watches a store (Consul blocking queries, etcd watch from the read revision with a
full resync after compaction, or a directory) and makes every target proxy's upstreams, Lua code
and routes equal to it, level-triggered: it reads each target's state back (GET upstream info,
GET code info, GET route info), applies only the difference, debounces bursts, resyncs every
target periodically (a restarted, empty proxy is refilled) and retries a down target with capped
backoff without holding back the others.

Layout under the prefix (default config/slardar/): upstreams_stream/<name> (upstream JSON),
lua_stream/<name> (Lua; lua_stream/version is ignored), routes/<pattern> (sni-router).
A store that is unreachable changes nothing; an invalid value is reported with its key and
skipped. Deletions in the store are applied to names the store had while store-sync ran;
--prune deletes everything the store does not have.

On --http-listen: /metrics (Prometheus), /livez, /readyz (200 when every store is reachable;
a target that is down is a metric and a /health detail, not unreadiness) and /health (200 when
the stores are reachable and every target is in sync, with the details as JSON). SIGHUP reads
the config file and flags again: a config that does not load leaves the running syncs as they
are.

` + cmdutil.EnvHelp + `
A token given to one sync of the config file wins over --token.`,
		Example: `  store-sync --source consul://127.0.0.1:8500 --target 127.0.0.1:1895 --target 10.0.0.2:1895
  store-sync --source etcd://127.0.0.1:2379 --target 127.0.0.1:1895 --once
  store-sync --source dir:///etc/slardar/store --target 127.0.0.1:1895 --dry-run -o json`,
		Args:    cobra.NoArgs,
		Version: version.Version,
		RunE:    func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.ConfigPath, "config", "c", "", "YAML config file (several sources and targets)")
	f.StringVar(&o.Source, "source", "", "store: consul://HOST:PORT, etcd://HOST:PORT[,HOST:PORT] or dir:///PATH")
	f.StringVar(&o.Prefix, "prefix", store.DefaultPrefix, "key prefix")
	f.StringArrayVar(&o.Targets, "target", nil, "admin address of a proxy; repeatable")
	f.StringVar(&o.Token, "token", "", "admin token of the targets")
	cmdutil.Alias(f, "admin-token", "token")
	f.BoolVar(&o.Prune, "prune", false, "delete from the proxies what the store does not have")
	f.StringVar(&o.HTTPListen, "http-listen", DefaultListen, "address of /metrics, /livez, /readyz and /health")
	cmdutil.Alias(f, "listen", "http-listen")
	f.DurationVar(&o.Resync, "resync", syncer.DefaultResync, "full resync period")
	f.BoolVar(&o.Once, "once", false, "apply once and exit; non-zero if anything is not in sync")
	f.BoolVar(&o.DryRun, "dry-run", false, "print the plan and change nothing")
	f.StringVarP(&o.Output, "output", "o", "table", "plan output for --dry-run/--once: table or json")
	f.StringVar(&o.LogFormat, "log-format", "", "log format: text or json")
	f.StringVar(&o.LogLevel, "log-level", "", "log level: debug, info, warn or error")
	return cmd
}

// config reads the effective configuration: the file, if any, with the set flags on top.
func (o *Options) config(cmd *cobra.Command) (*config.SyncFile, error) {
	f := &config.SyncFile{}
	if o.ConfigPath != "" {
		var err error
		if f, err = config.LoadSync(o.ConfigPath); err != nil {
			return nil, err
		}
	}
	fl := cmd.Flags()
	if o.Source != "" {
		f.Syncs = append(f.Syncs, config.Sync{Source: o.Source, Prefix: o.Prefix, Targets: o.Targets, Token: o.Token, Prune: o.Prune})
	}
	for i := range f.Syncs {
		if f.Syncs[i].Token == "" {
			f.Syncs[i].Token = o.Token
		}
	}
	if fl.Changed("http-listen") || f.Listen == "" {
		f.Listen = o.HTTPListen
	}
	if fl.Changed("resync") || f.Resync == 0 {
		f.Resync = o.Resync
	}
	if fl.Changed("log-format") {
		f.Log.Format = o.LogFormat
	}
	if fl.Changed("log-level") {
		f.Log.Level = o.LogLevel
	}
	if err := f.Log.Validate(); err != nil {
		return nil, err
	}
	if len(f.Syncs) == 0 {
		return nil, errors.New("nothing to sync: give --source and --target, or a config file with syncs")
	}
	return f, nil
}

func (o *Options) run(cmd *cobra.Command) error {
	if o.Output != "table" && o.Output != "json" {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("--output %q: want table or json", o.Output))
	}
	f, err := o.config(cmd)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, err)
	}
	syncs, closeStores, err := openSyncs(f)
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, err)
	}
	defer func() { closeStores() }()
	log := f.Log.NewLogger(cmd.ErrOrStderr())
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.Once || o.DryRun {
		results, err := syncer.Once(ctx, syncs, o.DryRun)
		if perr := printResults(cmd, o.Output, results); perr != nil {
			return perr
		}
		if err != nil {
			return cmdutil.WithCode(cmdutil.ExitError, err)
		}
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The metrics and the endpoint outlive the syncers a SIGHUP replaces.
	m := &syncer.Metrics{}
	reg := metrics.NewRegistry(version.Version)
	reg.MustRegister(m)
	reload := metrics.NewReload(reg)
	reload.Record(time.Now(), nil)
	newSyncer := func() *syncer.Syncer {
		return &syncer.Syncer{Syncs: syncs, Log: log, Resync: f.Resync, DebounceMin: f.Debounce.Min, DebounceMax: f.Debounce.Max, Metrics: m}
	}
	var current atomic.Pointer[syncer.Syncer] // the syncer running now (a SIGHUP replaces it)
	current.Store(newSyncer())
	ready := func() error { return current.Load().StoresUp() }
	health := func(w http.ResponseWriter, r *http.Request) { current.Load().ServeHealth(w, r) }
	ep, err := metrics.Serve(f.Listen, reg, ready, false, map[string]http.HandlerFunc{"/health": health})
	if err != nil {
		return err
	}
	defer ep.Close()

	for {
		s := current.Load()
		var names []string
		for _, sy := range syncs {
			names = append(names, sy.Store.String()+" -> "+strings.Join(sy.Targets, ","))
		}
		log.Info("store-sync started", "version", version.Version, "syncs", names, "http", ep.Addr())
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); s.Run(runCtx) }()
		systemd.SdNotify(false, systemd.SdNotifyReady)
	wait:
		select {
		case <-ctx.Done():
			systemd.SdNotify(false, systemd.SdNotifyStopping)
			cancel()
			<-done
			log.Info("store-sync stopped")
			return nil
		case <-hup:
			nf, err := o.config(cmd)
			var next []syncer.Sync
			var closeNext func()
			if err == nil {
				next, closeNext, err = openSyncs(nf)
			}
			reload.Record(time.Now(), err)
			if err != nil {
				log.Error("config not reloaded", "err", err)
				goto wait
			}
			cancel()
			<-done
			closeStores()
			f, syncs, closeStores = nf, next, closeNext
			current.Store(newSyncer())
			log.Info("config reloaded")
		}
	}
}

// openSyncs opens the stores of f's syncs and checks their targets; closeStores closes them.
func openSyncs(f *config.SyncFile) (syncs []syncer.Sync, closeStores func(), err error) {
	var opened []store.Store
	closeStores = func() {
		for _, st := range opened {
			st.Close()
		}
	}
	for i, s := range f.Syncs {
		st, err := store.Open(s.Source)
		if err != nil {
			closeStores()
			return nil, nil, fmt.Errorf("syncs[%d]: %w", i, err)
		}
		opened = append(opened, st)
		if len(s.Targets) == 0 {
			closeStores()
			return nil, nil, fmt.Errorf("syncs[%d]: no targets", i)
		}
		for _, t := range s.Targets {
			if _, _, err := net.SplitHostPort(t); err != nil {
				closeStores()
				return nil, nil, fmt.Errorf("target %q: want HOST:PORT", t)
			}
		}
		prefix := s.Prefix
		if prefix == "" {
			prefix = store.DefaultPrefix
		}
		syncs = append(syncs, syncer.Sync{Store: st, Prefix: prefix, Targets: s.Targets, Token: s.Token, Prune: s.Prune})
	}
	return syncs, closeStores, nil
}

func printResults(cmd *cobra.Command, output string, results []syncer.Result) error {
	w := cmd.OutOrStdout()
	if output == "json" {
		return cmdutil.PrintJSON(w, results)
	}
	var rows [][]string
	for _, r := range results {
		if r.Error != "" {
			rows = append(rows, []string{r.Store, r.Target, "", "", "error: " + r.Error})
		}
		for _, c := range r.Changes {
			rows = append(rows, []string{r.Store, r.Target, c.Action, c.Kind, c.Name})
		}
	}
	seen := map[string]bool{}
	for _, r := range results {
		for _, p := range r.Problems {
			if !seen[p.Key] {
				seen[p.Key] = true
				rows = append(rows, []string{r.Store, "", "skip", "invalid", p.Key + ": " + p.Err})
			}
		}
	}
	return cmdutil.PrintTable(w, []string{"STORE", "TARGET", "ACTION", "KIND", "NAME"}, rows)
}
