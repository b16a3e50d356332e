package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

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
	for {
		select {
		case <-hup:
			if err := d.Reload(serveCtx); err != nil {
				log.Error("config not reloaded", "err", err)
			} else {
				log.Info("config reloaded")
			}
		case <-sigCtx.Done():
			log.Info("shutting down")
			d.Shutdown(context.Background())
			return nil
		}
	}
}

// Configured is a daemon's whole configuration (its file with the flags on top).
type Configured interface{ Logging() config.Log }

// Run is the life of every daemon command, read top to bottom: the configuration loaded and
// validated once (a failure is a usage error, exit 2), the logger it configures, then Serve with
// the daemon start builds from it; load is kept for SIGHUP.
func Run[C Configured, S Service](cmd *cobra.Command, load func() (C, error),
	start func(context.Context, *slog.Logger, C, func() (C, error)) (S, error)) error {
	cfg, err := load()
	if err != nil {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, err)
	}
	log := cfg.Logging().NewLogger(cmd.ErrOrStderr())
	return Serve(cmd.Context(), log, cmd.Name(), func(ctx context.Context) (Service, error) {
		return start(ctx, log, cfg, load)
	})
}

// Reloader is the Reload of a daemon: read the config again with Load and apply it with Use.
// A config that does not load changes nothing.
type Reloader[C any] struct {
	Load func() (C, error)
	Use  func(context.Context, C) error
}

// Reload implements Service.
func (r Reloader[C]) Reload(ctx context.Context) error {
	cfg, err := r.Load()
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return r.Use(ctx, cfg)
}
