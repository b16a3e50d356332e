package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/version"
)

// EnvAdminToken names the environment variable that may carry the admin token, so it need not
// appear on a command line.
const EnvAdminToken = "SLARDAR_ADMIN_TOKEN"

// CommonFlags are the flags every daemon has; the ones set override the config file.
type CommonFlags struct {
	AdminListen string
	AdminToken  string
	LogFormat   string
	LogLevel    string
}

// Register adds the flags to fs.
func (o *CommonFlags) Register(fs *pflag.FlagSet, defaultAdmin string) {
	fs.StringVar(&o.AdminListen, "admin-listen", defaultAdmin, "admin protocol address; beyond loopback it needs a token")
	fs.StringVar(&o.AdminToken, "admin-token", "", "shared admin token (also $"+EnvAdminToken+")")
	fs.StringVar(&o.LogFormat, "log-format", "", "log format: text or json (default text)")
	fs.StringVar(&o.LogLevel, "log-level", "", "log level: debug, info, warn or error (default info)")
}

// Apply puts the set flags (and the token from the environment) over c.
func (o *CommonFlags) Apply(fs *pflag.FlagSet, c *config.Common) error {
	if fs.Changed("admin-listen") || c.Admin.Listen == "" {
		c.Admin.Listen = o.AdminListen
	}
	if tok := os.Getenv(EnvAdminToken); tok != "" && c.Admin.Token == "" {
		c.Admin.Token = tok
	}
	if fs.Changed("admin-token") {
		c.Admin.Token = o.AdminToken
	}
	if fs.Changed("log-format") {
		c.Log.Format = o.LogFormat
	}
	if fs.Changed("log-level") {
		c.Log.Level = o.LogLevel
	}
	return c.Log.Validate()
}

// Runner is a started daemon.
type Runner interface {
	Reload(ctx context.Context) error
	Shutdown(ctx context.Context)
}

// Serve starts a daemon and runs it until SIGINT or SIGTERM, when it drains; SIGHUP reloads its
// configuration. The daemon's own context outlives the signal so open connections can finish.
func Serve(ctx context.Context, log *slog.Logger, start func(ctx context.Context) (Runner, error)) error {
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

// Run is a daemon command's body: load the configuration, build the logger from it, and serve
// what start makes until a stop signal (see Serve).
func Run[C any, R Runner](ctx context.Context, stderr io.Writer, name string, load func() (C, error),
	common func(C) *config.Common, start func(context.Context, *slog.Logger, func() (C, error)) (R, error)) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	log := common(cfg).Log.NewLogger(stderr)
	return Serve(ctx, log, func(ctx context.Context) (Runner, error) {
		d, err := start(ctx, log, load)
		if err != nil {
			return nil, err
		}
		log.Info(name+" started", "version", version.Version)
		return d, nil
	})
}
