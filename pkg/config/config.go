// Package config reads the daemons' YAML configuration file. Decoding is strict: an unknown
// key is an error naming its line, so a typo never silently falls back to a default.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/mysql/session"
	"github.com/slardar-go/slardar/pkg/units"
)

// Admin configures the admin protocol server.
type Admin struct {
	Listen      string        `yaml:"listen"`       // default per daemon (127.0.0.1:1895 for slardar-proxy)
	Token       string        `yaml:"token"`        // shared secret; required to listen beyond loopback
	MaxBody     int           `yaml:"max_body"`     // bytes, default 1 MiB
	MaxLine     int           `yaml:"max_line"`     // bytes, default 4 KiB
	IdleTimeout time.Duration `yaml:"idle_timeout"` // default 60s
	MaxConns    int           `yaml:"max_conns"`    // open (with a token: authenticated) admin connections, default 64; one more is refused
}

// HTTP is a daemon's HTTP endpoint: /metrics, /livez, /readyz and, with Pprof, /debug/pprof/.
type HTTP struct {
	// Listen is its address; empty turns it off; absent (nil) takes the --http-listen flag's
	// default (127.0.0.1:1995 for slardar-proxy, 1996 mysql-proxy, 1997 sni-router).
	Listen *string `yaml:"listen"`
	Pprof  bool    `yaml:"pprof"` // serve the Go profiler (off by default: it costs CPU when used)
}

// Log configures logging.
type Log struct {
	Format string `yaml:"format"` // text (default) or json
	Level  string `yaml:"level"`  // debug, info (default), warn, error
}

// Proxy configures the data path.
type Proxy struct {
	IdleTimeout   time.Duration `yaml:"idle_timeout"`   // default 10m; nothing moving either way this long closes a connection
	ShutdownGrace time.Duration `yaml:"shutdown_grace"` // default 30s; open connections get this long to finish on SIGTERM
}

// Checkups configures the checkups engine (checkups' config.global).
type Checkups struct {
	Interval                time.Duration `yaml:"interval"`                  // checkup_timer_interval, default 5s
	DisableHeartbeatDefault bool          `yaml:"disable_heartbeat_default"` // default_heartbeat_enable = false
}

// Scripts configures the Lua hooks.
type Scripts struct {
	Dir        string        `yaml:"dir"`         // *.lua files loaded at start and on reload; the file name less .lua is the module name
	Timeout    time.Duration `yaml:"timeout"`     // Lua running time per hook call (sleeps and socket waits excluded), default 1s
	LogTimeout time.Duration `yaml:"log_timeout"` // a log hook's whole time, waits included, default 10s
	MaxHeap    units.Size    `yaml:"max_heap"`    // process heap size at which running scripts are stopped, e.g. 1g; default an eighth of the memory limit (RAM, RLIMIT_AS, cgroup), at most 1g
}

// Listener is one data port and the upstream it serves.
type Listener struct {
	Listen   string `yaml:"listen"`   // "3131" (all interfaces) or "127.0.0.1:3131"
	Upstream string `yaml:"upstream"` // default: the port, as in the original
	// Consistency and Window are mysql-proxy's read-after-write mode of the listener (session,
	// global, window or none; default mysql.consistency) and its window; other daemons refuse them.
	Consistency session.Mode  `yaml:"consistency,omitempty"`
	Window      time.Duration `yaml:"window,omitempty"`
	// ServerVersion is what mysql-proxy's handshake announces on the listener; default the
	// servers' own version, marked "-slardar" (mysql.server_version sets it for all).
	ServerVersion string `yaml:"server_version,omitempty"`
	// Multiplex: mysql-proxy gives a session's server connections back to the pool after each
	// statement when nothing ties the session to them (transaction-level multiplexing).
	Multiplex bool `yaml:"multiplex,omitempty"`
}

// Common is the part of the configuration every proxy daemon has.
type Common struct {
	Admin     Admin                         `yaml:"admin"`
	HTTP      HTTP                          `yaml:"http"`
	Log       Log                           `yaml:"log"`
	Proxy     Proxy                         `yaml:"proxy"`
	Checkups  Checkups                      `yaml:"checkups"`
	Upstreams map[string]*checkups.Upstream `yaml:"-"`
	// RawUpstreams is the upstreams section; each value is checkups upstream JSON in YAML form.
	RawUpstreams map[string]yaml.Node `yaml:"upstreams"`
}

// CommonPart is the part every proxy's file has (lifecycle.Load puts the common flags on it).
func (c *Common) CommonPart() *Common { return c }

// Logging is the log section, for the daemons' start-up.
func (c *Common) Logging() Log { return c.Log }

// File is the whole configuration file of slardar-proxy.
type File struct {
	Common  `yaml:",inline"`
	Scripts Scripts `yaml:"scripts"`
	// SharedDicts declares ngx.shared dictionaries: name → size ("10m", "64k", bytes).
	SharedDicts map[string]units.Size `yaml:"shared_dicts"`
	Listeners   []Listener            `yaml:"listeners"`
}

// Load reads and validates a configuration file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	f.resolveDir(path)
	return f, nil
}

// resolveDir makes scripts.dir relative to the config file at path.
func (f *File) resolveDir(path string) {
	if f.Scripts.Dir != "" && !filepath.IsAbs(f.Scripts.Dir) {
		f.Scripts.Dir = filepath.Join(filepath.Dir(path), f.Scripts.Dir)
	}
}

// Parse decodes and validates configuration bytes.
func Parse(data []byte) (*File, error) {
	f := &File{}
	if err := DecodeStrict(data, f); err != nil {
		return nil, err
	}
	if err := f.finish(); err != nil {
		return nil, err
	}
	for i, l := range f.Listeners {
		if l.Consistency != "" || l.Window != 0 || l.ServerVersion != "" || l.Multiplex {
			return nil, fmt.Errorf("listeners[%d]: consistency, window, server_version and multiplex are mysql-proxy settings", i)
		}
	}
	return f, nil
}

// finish parses the upstreams, normalises the listeners and checks the script settings.
func (f *File) finish() error {
	if err := f.Common.parse(); err != nil {
		return err
	}
	for i := range f.Listeners {
		l, err := ParseListener(f.Listeners[i].Listen)
		if err != nil {
			return fmt.Errorf("listeners[%d]: %w", i, err)
		}
		if f.Listeners[i].Upstream == "" {
			f.Listeners[i].Upstream = l.Upstream
		}
		f.Listeners[i].Listen = l.Listen
	}
	return nil
}

// parse turns the upstreams section into checkups upstreams and checks the log settings.
func (c *Common) parse() error {
	c.Upstreams = make(map[string]*checkups.Upstream, len(c.RawUpstreams))
	for _, name := range slices.Sorted(maps.Keys(c.RawUpstreams)) {
		node := c.RawUpstreams[name]
		var raw any
		if err := node.Decode(&raw); err != nil {
			return fmt.Errorf("line %d: upstream %q: %w", node.Line, name, err)
		}
		js, err := json.Marshal(raw)
		if err != nil {
			return fmt.Errorf("line %d: upstream %q: %w", node.Line, name, err)
		}
		up, err := checkups.ParseUpstreamStrict(js)
		if err != nil {
			line, col := checkups.PositionIn(&node, err.Error())
			return fmt.Errorf("line %d column %d: upstream %q: %w", line, col, name, err)
		}
		c.Upstreams[name] = up
	}
	return c.Log.Validate()
}

// DecodeStrict decodes YAML into v, refusing unknown keys; empty input is fine. Errors name the
// line and the key, never the Go type behind it ("line 3: field wieght not found").
func DecodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = withoutGoTypes(m)
		}
		err = fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return withKeyPath(data, err)
}

// positioned is the start of an error of a value that decodes itself (units.Size,
// session.Mode): "line L column C: ".
var positioned = regexp.MustCompile(`^line (\d+) column (\d+): `)

// withKeyPath puts the key of the value an error is about after its line: "line 4 column 17:
// size ..." becomes "line 4: mysql.max_packet: size ...".
func withKeyPath(data []byte, err error) error {
	m := positioned.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return err
	}
	line, _ := strconv.Atoi(m[1])
	col, _ := strconv.Atoi(m[2])
	path := keyAt(&root, line, col, "")
	if path == "" {
		return err
	}
	return fmt.Errorf("line %d: %s: %s", line, path, strings.TrimPrefix(err.Error(), m[0]))
}

// keyAt is the dotted path of the value at line:col under n ("listeners[1].consistency").
func keyAt(n *yaml.Node, line, col int, path string) string {
	if n.Line == line && n.Column == col && n.Kind != yaml.DocumentNode {
		return path
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := keyAt(c, line, col, path); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if path != "" {
				key = path + "." + key
			}
			if p := keyAt(n.Content[i+1], line, col, key); p != "" {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p := keyAt(c, line, col, fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	}
	return ""
}

// withoutGoTypes rewrites a yaml.v3 message that names Go types ("field x not found in type
// config.Sync", "cannot unmarshal !!str `soon` into time.Duration") in the file's terms.
func withoutGoTypes(msg string) string {
	if head, _, ok := strings.Cut(msg, " in type "); ok && strings.Contains(head, "field ") {
		return head
	}
	head, typ, ok := strings.Cut(msg, " into ")
	if !ok {
		return msg
	}
	want := "a mapping"
	switch {
	case typ == "time.Duration":
		want = "a duration such as 5s or 100ms"
	case strings.HasPrefix(typ, "int") || strings.HasPrefix(typ, "uint"):
		want = "an integer"
	case strings.HasPrefix(typ, "float"):
		want = "a number"
	case typ == "bool":
		want = "true or false"
	case typ == "string":
		want = "a string"
	case strings.HasPrefix(typ, "[]"):
		want = "a list"
	}
	return head + ", want " + want
}

// ParseListener reads "PORT", "HOST:PORT" or either with "=UPSTREAM" appended. The upstream
// defaults to the port, as the original named stream upstreams by listening port.
func ParseListener(s string) (Listener, error) {
	spec, upstream, _ := strings.Cut(s, "=")
	addr := spec
	if _, err := strconv.Atoi(spec); err == nil {
		addr = ":" + spec
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Listener{}, fmt.Errorf("listen address %q: want PORT or HOST:PORT[=UPSTREAM]", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return Listener{}, fmt.Errorf("listen address %q: port must be 1..65535", s)
	}
	if upstream == "" {
		upstream = port
	}
	return Listener{Listen: addr, Upstream: upstream}, nil
}

// AddListeners adds the listeners of --listen flags (see ParseListener) that the file does not
// already have.
func (f *File) AddListeners(specs []string) error {
	type key struct{ listen, upstream string }
	seen := make(map[key]bool)
	for _, l := range f.Listeners {
		seen[key{l.Listen, l.Upstream}] = true
	}
	for _, s := range specs {
		l, err := ParseListener(s)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		if k := (key{l.Listen, l.Upstream}); !seen[k] {
			seen[k] = true
			f.Listeners = append(f.Listeners, l)
		}
	}
	return nil
}

// ParseSharedDict reads "NAME=SIZE" (the --shared-dict flag).
func ParseSharedDict(s string) (name string, size units.Size, err error) {
	name, text, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return "", 0, fmt.Errorf("shared dict %q: want NAME=SIZE, e.g. stream_limit_req_store=10m", s)
	}
	if size, err = units.ParseSize(text); err != nil {
		return "", 0, fmt.Errorf("shared dict %q: %w", s, err)
	}
	return name, size, nil
}
