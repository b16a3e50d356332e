// Package lifecycle is the life every slardar daemon shares, and nothing of what it serves:
// the configuration loaded and validated once (--check stops there), the logger it sets up,
// the signals (SIGTERM/SIGINT drain, SIGHUP reloads), the systemd notifications, the reload
// that applies a new configuration all or nothing, and the flags every daemon has. A daemon's
// command reads top to bottom:
//
//	flags → Run: config loaded once → (--check: summary, exit) → logger → start → Serve until a signal → Shutdown
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	systemd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/version"
)

// Service is a started daemon.
type Service interface {
	// Reload reads the configuration again and applies it; a configuration that does not load
	// changes nothing.
	Reload(ctx context.Context) error
	// Shutdown stops accepting and drains.
	Shutdown(ctx context.Context)
}

// Configured is a daemon's whole configuration (its file with the flags on top).
type Configured interface {
	Logging() config.Log
	Summary() []string // what --check prints: what would listen where
}

// Checker is a configuration with checks beyond loading (files it names, references between
// its parts) that --check runs and a start need not repeat.
type Checker interface {
	Check() error
}

// Run is the life of every daemon command: the configuration loaded and validated once (a
// failure is a usage error, exit 2); with check, only that, its Check and its summary; else the
// logger it configures, then Serve with the daemon start builds from it. load is kept for
// SIGHUP.
func Run[C Configured, S Service](cmd *cobra.Command, check bool, load func() (C, error),
	start func(context.Context, *slog.Logger, C, func() (C, error)) (S, error)) error {
	cfg, err := load()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, err)
	}
	if check {
		if c, ok := any(cfg).(Checker); ok {
			if err := c.Check(); err != nil {
				return cmdutil.WithCode(cmdutil.ExitBadArgs, err)
			}
		}
		w := cmd.OutOrStdout()
		for _, line := range cfg.Summary() {
			fmt.Fprintln(w, line)
		}
		fmt.Fprintln(w, "config ok")
		return nil
	}
	log := cfg.Logging().NewLogger(cmd.ErrOrStderr())
	return Serve(cmd.Context(), log, cmd.Name(), func(ctx context.Context) (Service, error) {
		return start(ctx, log, cfg, load)
	})
}

// Serve runs the daemon start makes until SIGINT or SIGTERM, then drains it; SIGHUP reloads its
// configuration. Signals are caught before start runs, so none can kill a half-started daemon.
// The context start gets outlives the stop signal, so open connections can finish.
func Serve(ctx context.Context, log *slog.Logger, name string, start func(ctx context.Context) (Service, error)) error {
	sigCtx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	d, err := start(serveCtx)
	if err != nil {
		return err
	}
	var nofile syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile) // Go raised the soft limit to the hard one
	log.Info(name+" started", "version", version.Version, "max_open_files", nofile.Cur)
	notify(sdReady)
	for {
		select {
		case <-hup:
			notify(sdReloading())
			if err := d.Reload(serveCtx); err != nil {
				log.Error("config not reloaded", "err", err)
				notify(sdReady + "\nSTATUS=config not reloaded: " + firstLine(err.Error()))
			} else {
				log.Info("config reloaded")
				notify(sdReady + "\nSTATUS=config reloaded")
			}
		case <-sigCtx.Done():
			log.Info("shutting down")
			notify(sdStopping)
			d.Shutdown(context.Background())
			log.Info(name + " stopped")
			return nil
		}
	}
}

// systemd notifications (Type=notify units; see deploy/systemd). Without $NOTIFY_SOCKET they
// do nothing.
const (
	sdReady    = systemd.SdNotifyReady
	sdStopping = systemd.SdNotifyStopping
)

// sdReloading is RELOADING=1 with the monotonic time systemd 253 and later require with it.
func sdReloading() string {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return fmt.Sprintf("%s\nMONOTONIC_USEC=%d", systemd.SdNotifyReloading, ts.Nano()/1000)
}

func notify(state string) { systemd.SdNotify(false, state) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Reloader applies configurations to a daemon one at a time: the first at start (Apply), then
// each SIGHUP's (Reload: read again with Load). A configuration that does not load, or that
// Use refuses, changes nothing; Use must itself be all or nothing.
type Reloader[C any] struct {
	Load   func() (C, error)
	Use    func(context.Context, C) error
	Record func(error) // the outcome of each reload; nil: none

	mu sync.Mutex // one apply at a time
}

// Apply applies cfg (the first configuration, or one a test builds).
func (r *Reloader[C]) Apply(ctx context.Context, cfg C) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Use(ctx, cfg)
}

// Reload implements Service: the configuration read again and applied.
func (r *Reloader[C]) Reload(ctx context.Context) error {
	if r.Load == nil {
		return errors.New("reload: the daemon was started without a configuration to read again")
	}
	cfg, err := r.Load()
	if err == nil {
		err = r.Apply(ctx, cfg)
	} else {
		err = fmt.Errorf("reload: %w", err)
	}
	if r.Record != nil {
		r.Record(err)
	}
	return err
}
