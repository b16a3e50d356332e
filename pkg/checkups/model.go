// Package checkups is the upstream model, balancing and health checking of lua-resty-checkups,
// rebuilt for goroutines: an upstream is a list of levels (tried in order) of servers; a server
// is chosen by smooth weighted round robin, a checkups-compatible consistent hash or least
// connections; passive health (max_fails within fail_timeout) and active heartbeats (general,
// mysql, http, redis) decide which servers may be chosen. State is shared by every connection.
package checkups

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Upstream is the checkups upstream JSON object. Zero fields take the defaults documented on
// their getters; the JSON form keeps what was given.
type Upstream struct {
	Enable      *bool     `json:"enable,omitempty"`       // active heartbeat; default true
	Typ         string    `json:"typ,omitempty"`          // general|mysql|http|redis; another is an error, or general over 1895 (as the original)
	Timeout     Seconds   `json:"timeout,omitempty"`      // heartbeat and dial timeout, default 5s
	SendTimeout Seconds   `json:"send_timeout,omitempty"` // accepted for compatibility
	ReadTimeout Seconds   `json:"read_timeout,omitempty"` // accepted for compatibility
	Sensibility int       `json:"sensibility,omitempty"`  // consecutive failed heartbeats to mark down; default 1
	Rise        int       `json:"rise,omitempty"`         // consecutive good heartbeats to mark up; default 1 (extension)
	Protected   *bool     `json:"protected,omitempty"`    // keep one server usable when all fail; default true
	HTTPOpts    *HTTPOpts `json:"http_opts,omitempty"`
	Mode        string    `json:"mode,omitempty"`        // ""|rr, hash, ip_hash, url_hash, header_hash, least_conn
	HashRing    string    `json:"hash_ring,omitempty"`   // checkups (default) or ketama (extension)
	Try         int       `json:"try,omitempty"`         // attempts per connection; default: number of servers
	TryTimeout  Seconds   `json:"try_timeout,omitempty"` // cumulative dialing; 0 means no limit
	Name        string    `json:"name,omitempty"`        // mysql heartbeat database
	User        string    `json:"user,omitempty"`        // mysql heartbeat user
	Pass        string    `json:"pass,omitempty"`        // mysql heartbeat password
	Charset     string    `json:"charset,omitempty"`     // mysql heartbeat charset
	// Role is primary or replica (mysql, extension): the heartbeat flags a server whose
	// read_only says otherwise. mysql-proxy implies it for its upstreams N and N_read.
	Role string `json:"role,omitempty"`
	// MaxReplicationLag, in seconds (mysql, extension): a replica further behind, or with a
	// replication thread stopped, is lagging and gets no connections until it catches up.
	MaxReplicationLag float64 `json:"max_replication_lag,omitempty"`
	// TLS to the servers (mysql, extension): mysql-proxy's sessions and the mysql heartbeat.
	TLS     *TLSOptions `json:"tls,omitempty"`
	Cluster Cluster     `json:"cluster"`

	tlsConf *tls.Config // built from TLS by validate
}

// TLSOptions are an upstream's TLS to its servers.
type TLSOptions struct {
	// Mode: off (default), preferred (TLS when the server offers it), required (no login
	// without it).
	Mode string `json:"mode,omitempty"`
	// CA verifies the server's certificate (a PEM file) and its name: ServerName, else the
	// server's host. Without it the connection is encrypted, not authenticated (MySQL's
	// REQUIRED).
	CA         string `json:"ca,omitempty"`
	ServerName string `json:"server_name,omitempty"`
	// Cert and Key are a client certificate (PEM files) for servers that require one.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// TLS modes.
const (
	TLSOff       = "off"
	TLSPreferred = "preferred"
	TLSRequired  = "required"
)

// ClientTLS is the TLS configuration to the upstream's servers (nil: none) and whether a
// server without TLS may be used anyway (preferred). The configuration is the same value for
// the life of the upstream's config (a pool may key connections on it); set ServerName on a
// clone where it is empty and verification is on.
func (u *Upstream) ClientTLS() (*tls.Config, bool) {
	if u.tlsConf == nil {
		return nil, false
	}
	return u.tlsConf, u.TLS.Mode == TLSPreferred
}

// buildTLS loads the TLS files of the upstream.
func (u *Upstream) buildTLS() error {
	u.tlsConf = nil
	if u.TLS == nil {
		return nil
	}
	switch u.TLS.Mode {
	case "", TLSOff:
		return nil
	case TLSPreferred, TLSRequired:
	default:
		return invalid("tls.mode invalid: %q (want off, preferred or required)", u.TLS.Mode)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.TLS.ServerName, InsecureSkipVerify: u.TLS.CA == ""}
	if u.TLS.CA != "" {
		pem, err := os.ReadFile(u.TLS.CA)
		if err != nil {
			return invalid("tls.ca: %v", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return invalid("tls.ca: no certificate in %s", u.TLS.CA)
		}
	}
	if (u.TLS.Cert == "") != (u.TLS.Key == "") {
		return invalid("tls.cert and tls.key go together")
	}
	if u.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(u.TLS.Cert, u.TLS.Key)
		if err != nil {
			return invalid("tls.cert: %v", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	u.tlsConf = conf
	return nil
}

// HTTPOpts configures the http heartbeat.
type HTTPOpts struct {
	Query    string          `json:"query,omitempty"`    // raw request bytes to send
	Statuses map[string]bool `json:"statuses,omitempty"` // status code -> false marks it a failure
}

// Cluster is the ordered list of levels. In JSON it is an array, or an object keyed by level
// name; named levels are tried in name order (the original used Lua's hash order).
type Cluster struct {
	Levels []Level
	Named  bool
}

// Level is one tier of servers.
type Level struct {
	Name    string   `json:"-"`
	Servers []Server `json:"servers"`
}

// Server is one backend. Host may be a name; it is resolved when dialled.
type Server struct {
	Host        string  `json:"host"`
	Port        int     `json:"port"`
	Weight      int     `json:"weight"`       // default 1
	MaxFails    int     `json:"max_fails"`    // default 0: passive health off
	FailTimeout Seconds `json:"fail_timeout"` // default 10s
	// MaxConns bounds the connections mysql-proxy opens to the server (0: its
	// @@max_connections less a tenth).
	MaxConns int `json:"max_conns,omitempty"`
}

// Addr is host:port.
func (s Server) Addr() string { return joinHostPort(s.Host, s.Port) }

func (s Server) failTimeout() time.Duration { return seconds(s.FailTimeout) }

// Modes.
const (
	ModeRR         = "rr"
	ModeHash       = "hash"
	ModeIPHash     = "ip_hash"
	ModeURLHash    = "url_hash"
	ModeHeaderHash = "header_hash"
	ModeLeastConn  = "least_conn"
)

// Heartbeat types.
const (
	TypGeneral = "general"
	TypMySQL   = "mysql"
	TypHTTP    = "http"
	TypRedis   = "redis"
)

func (u *Upstream) enabled(def bool) bool {
	if u.Enable == nil {
		return def
	}
	return *u.Enable
}

func (u *Upstream) typ() string {
	switch u.Typ {
	case TypMySQL, TypHTTP, TypRedis:
		return u.Typ
	}
	return TypGeneral
}

// DialTimeout is the upstream's timeout, used to dial servers and for heartbeats.
func (u *Upstream) DialTimeout() time.Duration {
	if u.Timeout > 0 {
		return seconds(u.Timeout)
	}
	return 5 * time.Second
}

func (u *Upstream) sensibility() int { return max(u.Sensibility, 1) }
func (u *Upstream) rise() int        { return max(u.Rise, 1) }

func (u *Upstream) protected() bool { return u.Protected == nil || *u.Protected }

func (u *Upstream) hashed() bool {
	switch u.Mode {
	case ModeHash, ModeIPHash, ModeURLHash, ModeHeaderHash:
		return true
	}
	return false
}

// servers counts the servers of every level.
func (u *Upstream) servers() int {
	n := 0
	for _, l := range u.Cluster.Levels {
		n += len(l.Servers)
	}
	return n
}

// MarshalJSON writes an array, or an object for named levels.
func (c Cluster) MarshalJSON() ([]byte, error) {
	if !c.Named {
		if c.Levels == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(c.Levels)
	}
	m := make(map[string]Level, len(c.Levels))
	for _, l := range c.Levels {
		m[l.Name] = l
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads an array or an object of levels, validating as an admin PUT does.
func (c *Cluster) UnmarshalJSON(data []byte) error {
	parsed, err := parseCluster(data, false)
	if err != nil {
		return err
	}
	*c = parsed
	return nil
}

// Errors with the original's strings.
const (
	errClusterInvalid = "cluster invalid"
	errEmptyLevel     = "can not update empty level"
	errServersInvalid = "servers invalid"
	errNoHostPort     = "no server.host nor server.port found"
)

// ValidationError is an upstream that cannot be accepted.
type ValidationError struct{ Msg string }

// msgInvalidBody is the original's reply to a PUT upstream body that is not an upstream.
const msgInvalidBody = "invalid body"

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

func parseCluster(raw json.RawMessage, strict bool) (Cluster, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) > 0 && raw[0] == '[':
		var levels []json.RawMessage
		if err := json.Unmarshal(raw, &levels); err != nil {
			return Cluster{}, invalid(errClusterInvalid)
		}
		c := Cluster{Levels: make([]Level, 0, len(levels))}
		for _, l := range levels {
			lv, err := parseLevel(l, strict)
			if err != nil {
				return Cluster{}, err
			}
			c.Levels = append(c.Levels, lv)
		}
		return c, nil
	case len(raw) > 0 && raw[0] == '{':
		var levels map[string]json.RawMessage
		if err := json.Unmarshal(raw, &levels); err != nil {
			return Cluster{}, invalid(errClusterInvalid)
		}
		names := make([]string, 0, len(levels))
		for n := range levels {
			names = append(names, n)
		}
		sort.Strings(names)
		c := Cluster{Named: true, Levels: make([]Level, 0, len(levels))}
		for _, n := range names {
			lv, err := parseLevel(levels[n], strict)
			if err != nil {
				return Cluster{}, err
			}
			lv.Name = n
			c.Levels = append(c.Levels, lv)
		}
		return c, nil
	}
	return Cluster{}, invalid(errClusterInvalid)
}

func parseLevel(raw json.RawMessage, strict bool) (Level, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || len(fields) == 0 {
		return Level{}, invalid(errEmptyLevel)
	}
	if strict {
		if err := onlyKnown(fields, "level", "servers"); err != nil {
			return Level{}, err
		}
	}
	servers, err := parseServers(fields["servers"], strict)
	if err != nil {
		return Level{}, err
	}
	return Level{Servers: servers}, nil
}

func parseServers(raw json.RawMessage, strict bool) ([]Server, error) {
	var items []map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &items) != nil || len(items) == 0 {
		return nil, invalid(errServersInvalid)
	}
	out := make([]Server, 0, len(items))
	for i, it := range items {
		if strict {
			if err := onlyKnown(it, fmt.Sprintf("server %d", i+1), "host", "port", "weight", "max_fails", "fail_timeout", "max_conns"); err != nil {
				return nil, err
			}
		}
		if it["host"] == nil || it["port"] == nil {
			return nil, invalid(errNoHostPort)
		}
		s := Server{Weight: 1, FailTimeout: 10}
		if err := json.Unmarshal(it["host"], &s.Host); err != nil || s.Host == "" {
			return nil, invalid("server %d: host must be a non-empty string", i+1)
		}
		if err := json.Unmarshal(it["port"], &s.Port); err != nil || s.Port < 1 || s.Port > 65535 {
			return nil, invalid("server %d: port must be an integer in 1..65535, got %s", i+1, it["port"])
		}
		for _, f := range []struct {
			key string
			dst *int
			min int
		}{{"weight", &s.Weight, 1}, {"max_fails", &s.MaxFails, 0}, {"max_conns", &s.MaxConns, 0}} {
			if v, ok := it[f.key]; ok {
				if err := json.Unmarshal(v, f.dst); err != nil || *f.dst < f.min {
					return nil, invalid("server %d: %s must be an integer >= %d, got %s", i+1, f.key, f.min, v)
				}
			}
		}
		if v, ok := it["fail_timeout"]; ok {
			if err := json.Unmarshal(v, &s.FailTimeout); err != nil || s.FailTimeout <= 0 {
				return nil, invalid("server %d: fail_timeout must be a number of seconds > 0, got %s", i+1, v)
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// ParseUpstream reads an upstream object: {"cluster":...} with the other fields, or the store's
// short form {"servers":[...], ...}, whose servers become the only level. Unknown fields are
// ignored, as the original's admin protocol does.
func ParseUpstream(data []byte) (*Upstream, error) { return parseUpstream(data, false) }

// ParseUpstreamStrict is ParseUpstream refusing unknown fields, by name (a "wieght" is an
// error, not a server of weight 1): for config files, slardarctl input and store values.
func ParseUpstreamStrict(data []byte) (*Upstream, error) { return parseUpstream(data, true) }

// onlyKnown refuses a field not in known.
func onlyKnown(fields map[string]json.RawMessage, where string, known ...string) error {
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if !slices.Contains(known, k) {
			return invalid("%s: unknown field %q", where, k)
		}
	}
	return nil
}

func parseUpstream(data []byte, strict bool) (*Upstream, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return nil, invalid(msgInvalidBody)
	}
	var cluster Cluster
	var err error
	switch {
	case fields["cluster"] != nil:
		cluster, err = parseCluster(fields["cluster"], strict)
	case fields["servers"] != nil:
		var servers []Server
		servers, err = parseServers(fields["servers"], strict)
		cluster = Cluster{Levels: []Level{{Servers: servers}}}
	default:
		return nil, invalid(msgInvalidBody)
	}
	if err != nil {
		return nil, err
	}
	delete(fields, "cluster")
	delete(fields, "servers")
	for _, name := range durationFields {
		if v, ok := fields[name]; ok {
			var sec Seconds
			if err := json.Unmarshal(v, &sec); err != nil {
				return nil, invalid("%s: %v", name, err)
			}
		}
	}
	rest, _ := json.Marshal(fields)
	u := &Upstream{}
	dec := json.NewDecoder(bytes.NewReader(rest))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(u); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, invalid("unknown field %s", name)
		}
		return nil, invalid("upstream field: %v", unwrapJSON(err))
	}
	u.Cluster = cluster
	switch u.Typ {
	case "", TypGeneral, TypMySQL, TypHTTP, TypRedis:
	default:
		if strict { // the admin protocol, as the original, checks such an upstream as general
			return nil, invalid("typ invalid: %q (want general, mysql, http or redis)", u.Typ)
		}
	}
	if err := u.validate(); err != nil {
		return nil, err
	}
	return u, nil
}

func (u *Upstream) validate() error {
	switch u.Mode {
	case "", ModeRR, ModeHash, ModeIPHash, ModeURLHash, ModeHeaderHash, ModeLeastConn:
	default:
		return invalid("mode invalid: %q (want rr, hash, ip_hash, url_hash, header_hash or least_conn)", u.Mode)
	}
	switch u.HashRing {
	case "", RingCheckups, RingKetama:
	default:
		return invalid("hash_ring invalid: %q (want checkups or ketama)", u.HashRing)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"timeout", float64(u.Timeout)}, {"try_timeout", float64(u.TryTimeout)}, {"send_timeout", float64(u.SendTimeout)}, {"read_timeout", float64(u.ReadTimeout)}} {
		if f.v < 0 {
			return invalid("%s must not be negative", f.name)
		}
	}
	switch u.Role {
	case "", RolePrimary, RoleReplica:
	default:
		return invalid("role invalid: %q (want primary or replica)", u.Role)
	}
	if u.MaxReplicationLag < 0 {
		return invalid("max_replication_lag must not be negative")
	}
	if u.Try < 0 || u.Sensibility < 0 || u.Rise < 0 {
		return invalid("try, sensibility and rise must not be negative")
	}
	return u.buildTLS()
}

func unwrapJSON(err error) string {
	if te, ok := err.(*json.UnmarshalTypeError); ok {
		want := te.Type.String()
		switch te.Type.Kind() {
		case reflect.Float32, reflect.Float64, reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
			want = "a number"
		case reflect.String:
			want = "a string"
		case reflect.Bool:
			want = "true or false"
		case reflect.Slice:
			want = "a list"
		case reflect.Map, reflect.Struct:
			want = "an object"
		case reflect.Pointer:
			if te.Type.Elem().Kind() == reflect.Bool {
				want = "true or false"
			} else {
				want = "an object"
			}
		}
		return fmt.Sprintf("%s must be %s, got %s", te.Field, want, te.Value)
	}
	return err.Error()
}

func seconds(s Seconds) time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// Seconds is a timeout: a number of seconds, as the original's JSON has it (2, 0.5), or a
// duration ("2s", "500ms"), as people write in YAML; it is written back as seconds.
type Seconds float64

// UnmarshalJSON reads a number of seconds or a duration string.
func (s *Seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err == nil {
		*s = Seconds(f)
		return nil
	}
	var text string
	if err := json.Unmarshal(b, &text); err != nil {
		return fmt.Errorf("want a duration (2s, 500ms) or a number of seconds, got %s", b)
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		if f, ferr := strconv.ParseFloat(text, 64); ferr == nil {
			*s = Seconds(f)
			return nil
		}
		return fmt.Errorf("want a duration (2s, 500ms) or a number of seconds, got %q", text)
	}
	*s = Seconds(d.Seconds())
	return nil
}

// durationFields are the upstream's timeouts (Seconds), checked one by one so that an error
// names the field.
var durationFields = []string{"timeout", "send_timeout", "read_timeout", "try_timeout"}
