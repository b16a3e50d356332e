package lifecycle

import (
	"github.com/spf13/pflag"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
)

// CommonFlags are the flags every daemon has; the ones set (on the command line or in the
// environment, see cmdutil.EnvHelp) override the config file.
type CommonFlags struct {
	ConfigPath  string
	AdminListen string
	HTTPListen  string
	Check       bool
	Token       string
	LogFormat   string
	LogLevel    string
}

// Register adds the flags to fs; what the config file holds is named in configHelp.
func (o *CommonFlags) Register(fs *pflag.FlagSet, defaultAdmin, defaultHTTP, configHelp string) {
	fs.StringVarP(&o.ConfigPath, "config", "c", "", "YAML config file ("+configHelp+")")
	fs.StringVar(&o.AdminListen, "admin-listen", defaultAdmin, "admin protocol address; beyond loopback it needs a token")
	fs.StringVar(&o.HTTPListen, "http-listen", defaultHTTP, `address of /metrics, /livez and /readyz; "" turns it off`)
	fs.BoolVar(&o.Check, "check", false, "check the config file and flags, print what would listen where, and exit (0: valid, 2: not)")
	fs.StringVar(&o.Token, "token", "", "shared admin token that clients must send first (AUTH token <token>)")
	cmdutil.Alias(fs, "admin-token", "token")
	fs.StringVar(&o.LogFormat, "log-format", "", "log format: text or json (default text)")
	fs.StringVar(&o.LogLevel, "log-level", "", "log level: debug, info, warn or error (default info)")
}

// Apply puts the set flags over c and checks the log settings.
func (o *CommonFlags) Apply(fs *pflag.FlagSet, c *config.Common) error {
	if fs.Changed("admin-listen") || c.Admin.Listen == "" {
		c.Admin.Listen = o.AdminListen
	}
	if fs.Changed("http-listen") || c.HTTP.Listen == nil {
		addr := o.HTTPListen
		c.HTTP.Listen = &addr
	}
	if fs.Changed("token") {
		c.Admin.Token = o.Token
	}
	if fs.Changed("log-format") {
		c.Log.Format = o.LogFormat
	}
	if fs.Changed("log-level") {
		c.Log.Level = o.LogLevel
	}
	return c.Log.Validate()
}

// Load is how every proxy's configuration starts: the --config file, read by read (which
// decodes it strictly and finishes it), or an empty one without it, with the common flags that
// were set put over it. What a binary adds (its own flags and defaults) follows.
func Load[T any, F interface {
	*T
	CommonPart() *config.Common
}](o *CommonFlags, fs *pflag.FlagSet, read func(path string) (F, error)) (F, error) {
	cfg := F(new(T))
	if o.ConfigPath != "" {
		var err error
		if cfg, err = read(o.ConfigPath); err != nil {
			return nil, err
		}
	}
	if err := o.Apply(fs, cfg.CommonPart()); err != nil {
		return nil, err
	}
	return cfg, nil
}
