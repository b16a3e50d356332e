package config

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slardar-go/slardar/pkg/mysql/rules"
	"github.com/slardar-go/slardar/pkg/mysql/session"
	"github.com/slardar-go/slardar/pkg/units"
)

// Authentication plugins a mysql-proxy user may use.
const (
	AuthNative      = "mysql_native_password"
	AuthCachingSha2 = "caching_sha2_password"
)

// MySQLUser is an account clients of mysql-proxy log in as.
type MySQLUser struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
	// Auth is the plugin the user logs in with: mysql_native_password (default) or
	// caching_sha2_password.
	Auth string `yaml:"auth"`
	// BackendUser and BackendPassword log in to the servers; default: the user's own.
	BackendUser     string `yaml:"backend_user"`
	BackendPassword string `yaml:"backend_password"`
	Schema          string `yaml:"schema"` // default schema when the client names none
}

// MySQL configures mysql-proxy's protocol side.
type MySQL struct {
	// ServerVersion is announced in the handshake of every listener that sets none; default
	// the servers' own (from their handshake), marked "-slardar".
	ServerVersion string `yaml:"server_version"`
	// TLSCert and TLSKey are the certificate offered to clients that ask for TLS; without them
	// a self-signed one is made at start. Its RSA key also serves caching_sha2_password's full
	// authentication without TLS.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// LocalInfile offers LOAD DATA LOCAL INFILE to clients that allow it; default true.
	LocalInfile *bool `yaml:"local_infile"`
	// LearnUsers: a client whose user is not configured logs in as an account of the servers
	// (read from mysql.global_priv with the listener's upstream heartbeat user); default true.
	LearnUsers *bool `yaml:"learn_users"`
	// MaxPreparedStatements per client session; default 1024.
	MaxPreparedStatements int `yaml:"max_prepared_statements"`
	// IdleTimeout closes a client silent this long; default 8h (MySQL's wait_timeout).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ReadTimeout bounds how long a statement waits for its server's next bytes before the
	// client gets an error (2013); default 1h. A server whose health checks fail (a frozen
	// one) ends the wait within a second of being marked down, whatever this is.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// MaxPacket bounds one command (max_allowed_packet), e.g. 64m; default 64m.
	MaxPacket units.Size `yaml:"max_packet"`
	// Consistency is the read-after-write mode of listeners that set none: session (default:
	// a client never reads older data than it wrote, by GTID), global (nor older than anything
	// written through this proxy), window (reads stay on the primary for window after a write)
	// or none.
	Consistency session.Mode `yaml:"consistency"`
	// Window is the window mode's time after a write; default 500ms.
	Window time.Duration `yaml:"window"`
	// GTIDWaitTimeout bounds MASTER_GTID_WAIT on a replica that has not yet applied what a read
	// must see; after it the primary serves the read. Default 1s.
	GTIDWaitTimeout time.Duration `yaml:"gtid_wait_timeout"`
	// Pool of backend connections between client sessions.
	Pool struct {
		// MaxConns is the proxy's connection limit per server whose upstream sets none
		// (max_conns in its server entry); default the server's @@max_connections less a
		// tenth (at least 2 left for its other clients).
		MaxConns int `yaml:"max_conns"`
		// WaitTimeout is how long a session waits for a connection at the limit before its
		// client gets an error that names it; default 10s.
		WaitTimeout time.Duration `yaml:"wait_timeout"`
		// MaxIdle is how many connections wait idle per server; unset, a tenth of its limit
		// (at least 4); 0, none: a connection closes when its session ends, so the servers see
		// each client's session begin and end (the connection pool then only bounds them).
		MaxIdle     *int          `yaml:"max_idle"`
		IdleTimeout time.Duration `yaml:"idle_timeout"` // an idle connection is closed after this; default 5m
		MaxAge      time.Duration `yaml:"max_age"`      // an idle connection opened longer ago is closed; default 1h
	} `yaml:"pool"`
	// Digests are the query digests (slardarctl mysql digest, GET mysql digest).
	Digests struct {
		// Enabled keeps them; default true.
		Enabled *bool `yaml:"enabled"`
		// Max is how many digest rows are kept (per digest, user, schema and upstream); the
		// statements of more are counted in one "other" row. Default 5000.
		Max int `yaml:"max"`
		// Top is how many digests, by total time, have series in /metrics; default 20.
		Top *int `yaml:"top"`
	} `yaml:"digests"`
}

// MySQLFile is mysql-proxy's configuration file: slardar-proxy's (listeners, upstreams,
// scripts, ...) with users and the MySQL settings.
type MySQLFile struct {
	File  `yaml:",inline"`
	Users []MySQLUser `yaml:"users"`
	// UsersFile is a file of more users (a YAML list of entries as in users), read with the
	// config (again on SIGHUP): it keeps passwords out of the command line and can be a
	// systemd credential (LoadCredential=, ${CREDENTIALS_DIRECTORY}). Relative to the config
	// file's directory.
	UsersFile string `yaml:"users_file"`
	MySQL     MySQL  `yaml:"mysql"`
	// Rules are the query rules (rules.Rule, each with its name); PUT rule adds more at run
	// time, and a rule PUT under a name of these wins until it is deleted.
	Rules []rules.Rule `yaml:"rules"`
}

// LoadMySQL reads and validates mysql-proxy's configuration file.
func LoadMySQL(path string) (*MySQLFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	f, err := ParseMySQL(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f.resolveDir(path)
	if f.UsersFile != "" {
		if !filepath.IsAbs(f.UsersFile) {
			f.UsersFile = filepath.Join(filepath.Dir(path), f.UsersFile)
		}
		if err := f.AddUsersFile(f.UsersFile); err != nil {
			return nil, fmt.Errorf("config %s: users_file: %w", path, err)
		}
	}
	return f, nil
}

// AddUsersFile reads a file of users (a YAML list of user entries) into f.Users and checks
// them with the rest.
func (f *MySQLFile) AddUsersFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var users []MySQLUser
	if err := DecodeStrict(data, &users); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f.Users = append(f.Users, users...)
	return f.Validate()
}

// UsersFileReadable reports a users file that other users than its owner may read (the
// passwords in it are then as public as on the command line).
func UsersFileReadable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().Perm()&0o044 != 0
}

// ParseMySQL decodes and validates mysql-proxy configuration bytes.
func ParseMySQL(data []byte) (*MySQLFile, error) {
	f := &MySQLFile{}
	if err := DecodeStrict(data, f); err != nil {
		return nil, err
	}
	if err := f.File.finish(); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return f, nil
}

// Validate checks the users and MySQL settings (again after flags added users).
func (f *MySQLFile) Validate() error {
	seen := map[string]bool{}
	for i, u := range f.Users {
		switch {
		case u.Name == "":
			return fmt.Errorf("users[%d]: no name", i)
		case seen[u.Name]:
			return fmt.Errorf("users[%d]: user %q given twice", i, u.Name)
		}
		if err := u.Check(); err != nil {
			return fmt.Errorf("users[%d] (%s): %w", i, u.Name, err)
		}
		seen[u.Name] = true
	}
	if (f.MySQL.TLSCert == "") != (f.MySQL.TLSKey == "") {
		return fmt.Errorf("mysql: tls_cert and tls_key go together")
	}
	if f.MySQL.Window < 0 || f.MySQL.GTIDWaitTimeout < 0 || f.MySQL.ReadTimeout < 0 {
		return fmt.Errorf("mysql: window, gtid_wait_timeout and read_timeout must not be negative")
	}
	if _, err := rules.Build(f.Rules, nil); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	if d := f.MySQL.Digests; d.Max < 0 || d.Top != nil && *d.Top < 0 {
		return fmt.Errorf("mysql.digests: max and top must not be negative")
	}
	if p := f.MySQL.Pool; p.MaxConns < 0 || (p.MaxIdle != nil && *p.MaxIdle < 0) || p.WaitTimeout < 0 || p.IdleTimeout < 0 || p.MaxAge < 0 {
		return fmt.Errorf("mysql.pool: max_conns, max_idle, wait_timeout, idle_timeout and max_age must not be negative")
	}
	byUpstream := map[string]Listener{}
	for i, l := range f.Listeners {
		if l.Window < 0 {
			return fmt.Errorf("listeners[%d] (%s): window must not be negative", i, l.Listen)
		}
		if o, ok := byUpstream[l.Upstream]; ok && (o.Consistency != l.Consistency || o.Window != l.Window || o.Multiplex != l.Multiplex) {
			return fmt.Errorf("listeners %s and %s serve upstream %q with different consistency or multiplex settings", o.Listen, l.Listen, l.Upstream)
		}
		byUpstream[l.Upstream] = l
	}
	return nil
}

// Check refuses a user entry whose fields do not go together.
func (u MySQLUser) Check() error {
	switch {
	case u.Auth != "" && u.Auth != AuthNative && u.Auth != AuthCachingSha2:
		return fmt.Errorf("auth %q: want %s or %s", u.Auth, AuthNative, AuthCachingSha2)
	case u.BackendPassword != "" && u.BackendUser == "":
		return fmt.Errorf("backend_password without backend_user")
	}
	return nil
}

// ParseUserBody reads one user of the admin protocol's PUT user NAME (or a store's
// mysql_users/NAME): a JSON or YAML object of the fields of a users: entry but its name, which
// the command gives; unknown fields are refused with their position.
func ParseUserBody(name string, body []byte) (MySQLUser, error) {
	var u MySQLUser
	if name == "" {
		return u, fmt.Errorf("no user name")
	}
	if err := DecodeStrict(body, &u); err != nil {
		return u, err
	}
	if u.Name != "" && u.Name != name {
		return u, fmt.Errorf("name %q in the body of user %q", u.Name, name)
	}
	u.Name = name
	return u, u.Check()
}

// userJSON is a user as the admin protocol's PUT user carries it and store-sync compares it.
type userJSON struct {
	Password        string `json:"password,omitempty"`
	Auth            string `json:"auth,omitempty"`
	BackendUser     string `json:"backend_user,omitempty"`
	BackendPassword string `json:"backend_password,omitempty"`
	Schema          string `json:"schema,omitempty"`
}

// NormalizeUser checks a store's mysql_users/NAME value (ParseUserBody) and writes it back as
// compact JSON with sorted fields, the body store-sync sends and compares.
func NormalizeUser(name string, body []byte) ([]byte, error) {
	u, err := ParseUserBody(name, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(userJSON{Password: u.Password, Auth: u.Auth, BackendUser: u.BackendUser, BackendPassword: u.BackendPassword, Schema: u.Schema})
}

// ParseUser reads "NAME:PASSWORD" (the --user flag).
func ParseUser(s string) (MySQLUser, error) {
	name, password, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return MySQLUser{}, fmt.Errorf("user %q: want NAME:PASSWORD", s)
	}
	return MySQLUser{Name: name, Password: password}, nil
}

// ListenerConsistency is a listener's effective mode and window (its own, else the defaults).
func (f *MySQLFile) ListenerConsistency(l Listener) (mode session.Mode, window time.Duration) {
	mode, window = l.Consistency, l.Window
	if mode == "" {
		mode = f.MySQL.Consistency
	}
	mode = mode.Effective()
	if window == 0 {
		window = f.MySQL.Window
	}
	return mode, window
}
