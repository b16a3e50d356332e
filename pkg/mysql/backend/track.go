package backend

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/slardar-go/slardar/pkg/mysql/wire"
)

// Tracking is what a client's own session tracking settings are (session_track_*): the proxy
// turns tracking on for every variable, the schema and state changes on its connections, and
// gives a client only what its settings ask for.
type Tracking struct {
	AllVariables bool            // session_track_system_variables = '*'
	Variables    map[string]bool // the variables tracked, lower-cased
	Schema       bool            // session_track_schema
	State        bool            // session_track_state_change
	names        string          // Variables sorted, comma-separated (for Key)
}

// Key is the settings as a string: equal settings give equal keys.
func (t *Tracking) Key() string {
	return strconv.FormatBool(t.AllVariables) + "," + strconv.FormatBool(t.Schema) + "," + strconv.FormatBool(t.State) + "," + t.names
}

// ParseVariables reads a session_track_system_variables value into t.
func (t *Tracking) ParseVariables(v string) {
	t.AllVariables, t.Variables = false, map[string]bool{}
	for name := range strings.SplitSeq(v, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		switch name {
		case "":
		case "*":
			t.AllVariables = true
		default:
			t.Variables[name] = true
		}
	}
	t.names = strings.Join(slices.Sorted(maps.Keys(t.Variables)), ",")
}

// Wants reports whether a change of the variable name is tracked.
func (t *Tracking) Wants(name string) bool {
	return t.AllVariables || t.Variables[strings.ToLower(name)]
}

// onOff reads a boolean system variable's value.
func onOff(v string) bool { return v == "1" || strings.EqualFold(v, "ON") }

// readDefaults reads, on a new connection, what a client's session would track (the server's
// defaults for the user) and whether the server reports last_gtid (MariaDB).
func (c *Conn) readDefaults(ctx context.Context) error {
	row, err := c.Row(ctx, "SELECT @@session.session_track_system_variables, @@session.session_track_schema, "+
		"@@session.session_track_state_change, @@global.max_connections, @@session.last_gtid")
	var ep *wire.ErrPacket
	if errors.As(err, &ep) && ep.Code == mysql.ER_UNKNOWN_SYSTEM_VARIABLE {
		row, err = c.Row(ctx, "SELECT @@session.session_track_system_variables, @@session.session_track_schema, "+
			"@@session.session_track_state_change, @@global.max_connections, NULL")
		c.noLastGTID = true
	}
	if errors.As(err, &ep) {
		c.Defaults, c.Untracked = Tracking{Schema: true}, true // a server without session tracking
		return nil
	}
	if err != nil {
		return err
	}
	str := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	c.Defaults.ParseVariables(str(row[0]))
	c.Defaults.Schema, c.Defaults.State = onOff(str(row[1])), onOff(str(row[2]))
	c.maxConnections, _ = strconv.Atoi(str(row[3]))
	return nil
}

// track turns on the session tracking the proxy reads (every system variable, the schema,
// state changes), and for a connection used on a replica makes the session read-only: a
// statement that slipped past the classifier fails with 1792 instead of changing the replica.
// It runs on every new connection and after every reset (which restores the defaults).
func (c *Conn) track(ctx context.Context) error {
	if c.Untracked && !c.Login.ReadOnly {
		return nil
	}
	set := "SET @@session.session_track_system_variables = '*', @@session.session_track_schema = ON, " +
		"@@session.session_track_state_change = ON"
	if c.Untracked {
		set = "SET @@session.tx_read_only = 1"
	} else if c.Login.ReadOnly {
		set += ", @@session.tx_read_only = 1"
	}
	err := c.Exec(ctx, mysql.COM_QUERY, set)
	var ep *wire.ErrPacket
	if c.Login.ReadOnly && errors.As(err, &ep) && ep.Code == mysql.ER_UNKNOWN_SYSTEM_VARIABLE {
		// MySQL 8 knows the variable only as transaction_read_only.
		err = c.Exec(ctx, mysql.COM_QUERY, strings.Replace(set, "tx_read_only", "transaction_read_only", 1))
	}
	if errors.As(err, &ep) && !c.Login.ReadOnly {
		c.Untracked = true // the server refused tracking: sessions on it stay on the primary
		return nil
	}
	return err
}

// Retrack turns the proxy's session tracking on again after a client changed a session_track_*
// variable on the connection.
func (c *Conn) Retrack(ctx context.Context) error { return c.track(ctx) }

// LastGTID reports whether the server reports the GTID of each write (MariaDB's last_gtid).
func (c *Conn) LastGTID() bool { return !c.noLastGTID && !c.Untracked }
