package mysqlproxy

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/lifecycle"
	"github.com/slardar-go/slardar/pkg/version"
)

// Options are mysql-proxy's flags; set flags override the config file.
type Options struct {
	lifecycle.CommonFlags
	Listens   []string
	Users     []string
	UsersFile string
}

// NewCommand builds the mysql-proxy root command.
func NewCommand() *cobra.Command {
	o := &Options{}
	cmd := &cobra.Command{
		Use:   "mysql-proxy",
		Short: "MySQL-protocol proxy with read/write split, safe pooling and every command",
		Long: `mysql-proxy speaks the MySQL protocol to clients and to servers. A listener named N (by default
its port) sends writes to the checkups upstream N (the primary) and plain reads to N_read (the
replicas; with no usable server there, to N). Transactions stay on one server (the status flags
of every response say where one is open); SET and USE run on the primary and are replayed on a
replica connection before its next use; state that cannot be replayed (temporary tables, LOCK
TABLES, GET_LOCK, text PREPARE, :=, SQL_CALC_FOUND_ROWS) keeps the session on the primary. A
/*master*/ or /*+ primary */ comment sends a statement to the primary. A client never reads
older data than it wrote (consistency: session, by the GTIDs of its writes and
MASTER_GTID_WAIT; global, window and none are the other modes), and a replica behind its
upstream's max_replication_lag gets no reads.

Clients log in as the users of the config file (users:, users_file:), --users-file or --user
(mysql_native_password or caching_sha2_password, with TLS); the proxy logs in to the servers as
the same user unless the user has a backend account. Keep passwords out of the command line,
where every local user can read them: a users file only root reads, or a systemd credential. Backend connections are pooled per server and user and reset
(COM_RESET_CONNECTION) before another client gets one.

Upstreams are changed at run time over the admin protocol on 127.0.0.1:1896 (slardarctl
--addr 127.0.0.1:1896, store-sync), as for slardar-proxy; so are the Lua preread and log hooks
of a port (script.preread<port>, script.log<port>).

Signals: SIGTERM/SIGINT drain (a session ends after its statement, or its transaction);
SIGHUP reloads the config file.

` + cmdutil.EnvHelp,
		Example: `  mysql-proxy --listen 127.0.0.1:3141 --users-file /etc/slardar/mysql-users.yaml
  mysql-proxy --config /etc/slardar/mysql-proxy.yaml`,
		Args:    cobra.NoArgs,
		Version: version.Version,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return lifecycle.Run(cmd, o.Check, func() (*config.MySQLFile, error) { return o.config(cmd.Flags()) },
				func(ctx context.Context, log *slog.Logger, cfg *config.MySQLFile, load func() (*config.MySQLFile, error)) (*Daemon, error) {
					o.warnSecrets(log, cmd.Flags(), cfg)
					return Start(ctx, log, cfg, load)
				})
		},
	}
	cmd.SetVersionTemplate(version.Template)
	f := cmd.Flags()
	o.CommonFlags.Register(f, DefaultAdminListen, DefaultHTTPListen, "listeners, users, upstreams, mysql, scripts, admin, http, log")
	f.StringArrayVarP(&o.Listens, "listen", "l", nil, "data listener PORT or HOST:PORT, optionally =NAME (writes go to upstream NAME, reads to NAME_read; default name: the port); repeatable (default "+DefaultListen+" when nothing is configured)")
	f.StringArrayVar(&o.Users, "user", nil, "a user clients log in as, NAME:PASSWORD (the servers are logged in to as the same user); repeatable. "+
		"The password is then visible to every local user (ps, /proc/PID/cmdline): prefer --users-file, users: in a config file only root reads, or SLARDAR_USER")
	f.StringVar(&o.UsersFile, "users-file", "", "a file of users clients log in as (a YAML list: - {name: N, password: P}, with backend_user, schema, auth as in users:), "+
		"read again on SIGHUP; a systemd credential works: --users-file ${CREDENTIALS_DIRECTORY}/mysql-users")
	return cmd
}

// config reads the effective configuration: the file, if any, with the set flags on top.
func (o *Options) config(fl *pflag.FlagSet) (*config.MySQLFile, error) {
	cfg, err := lifecycle.Load(&o.CommonFlags, fl, config.LoadMySQL)
	if err != nil {
		return nil, err
	}
	if err := cfg.AddListeners(o.Listens); err != nil {
		return nil, err
	}
	if len(cfg.Listeners) == 0 {
		l, _ := config.ParseListener(DefaultListen)
		cfg.Listeners = []config.Listener{l}
	}
	for _, s := range o.Users {
		u, err := config.ParseUser(s)
		if err != nil {
			return nil, fmt.Errorf("--user: %w", err)
		}
		cfg.Users = append(cfg.Users, u)
	}
	if o.UsersFile != "" {
		if err := cfg.AddUsersFile(o.UsersFile); err != nil {
			return nil, fmt.Errorf("--users-file: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// warnSecrets logs what exposes passwords: --user on the command line, a users file others
// may read.
func (o *Options) warnSecrets(log *slog.Logger, fl *pflag.FlagSet, cfg *config.MySQLFile) {
	if fl.Changed("user") && os.Getenv(cmdutil.EnvName("user")) == "" {
		log.Warn("--user puts passwords in the command line, which every local user can read (ps, /proc/PID/cmdline): " +
			"use --users-file, users: in the config file, or SLARDAR_USER")
	}
	for _, path := range []string{o.UsersFile, cfg.UsersFile} {
		if path != "" && config.UsersFileReadable(path) {
			log.Warn("the users file is readable by other users than its owner: chmod 600 it", "file", path)
		}
	}
}
