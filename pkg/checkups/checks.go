package checkups

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// maxCheckReply bounds what a heartbeat reads from a server.
const maxCheckReply = 64 << 10

func dialCheck(ctx context.Context, srv Server) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", srv.Addr())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", srv.Addr(), unwrapOpError(err))
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	return c, nil
}

// unwrapOpError drops net.OpError's "dial tcp a->b:" prefix, which repeats the address.
func unwrapOpError(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// checkTCP is the general heartbeat: a TCP connect.
func checkTCP(ctx context.Context, srv Server) error {
	c, err := dialCheck(ctx, srv)
	if err != nil {
		return err
	}
	return c.Close()
}

// checkHTTP sends http_opts.query and reads the status line; a status mapped to false in
// http_opts.statuses fails. Without a query a connect is enough.
func checkHTTP(ctx context.Context, up *Upstream, srv Server) error {
	c, err := dialCheck(ctx, srv)
	if err != nil {
		return err
	}
	defer c.Close()
	if up.HTTPOpts == nil || up.HTTPOpts.Query == "" {
		return nil
	}
	if _, err := io.WriteString(c, up.HTTPOpts.Query); err != nil {
		return fmt.Errorf("sending query to %s: %w", srv.Addr(), unwrapOpError(err))
	}
	line, err := bufio.NewReaderSize(io.LimitReader(c, maxCheckReply), 4096).ReadString('\n')
	if err != nil && line == "" {
		return fmt.Errorf("reading status line from %s: %w", srv.Addr(), unwrapOpError(err))
	}
	code, ok := parseStatusLine(line)
	if !ok {
		return fmt.Errorf("bad status line %q", strings.TrimSpace(line))
	}
	if good, listed := up.HTTPOpts.Statuses[code]; listed && !good {
		return fmt.Errorf("bad status code %s", code)
	}
	return nil
}

// parseStatusLine matches ^HTTP/\d+\.\d+\s+(\d+) and returns the code.
func parseStatusLine(line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, "HTTP/")
	if !ok {
		return "", false
	}
	digits := func(s string) int {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return n
	}
	n := digits(rest)
	if n == 0 || n >= len(rest) || rest[n] != '.' {
		return "", false
	}
	rest = rest[n+1:]
	if n = digits(rest); n == 0 {
		return "", false
	}
	rest = rest[n:]
	trimmed := strings.TrimLeft(rest, " \t\r\n\f") // \s as in RE2
	if len(trimmed) == len(rest) {
		return "", false
	}
	if n = digits(trimmed); n == 0 {
		return "", false
	}
	return trimmed[:n], true
}

// checkMySQL logs in with the upstream's user, pass and name (database), as the original's
// resty.mysql connect did, then reads the server's replication state (replicaState): a
// replica behind max_replication_lag is lagging, and read_only contradicting the upstream's
// role is flagged.
func checkMySQL(ctx context.Context, up *Upstream, role string, srv Server) (heartbeatResult, error) {
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr = "tcp", srv.Addr()
	cfg.User, cfg.Passwd, cfg.DBName = up.User, up.Pass, up.Name
	cfg.Timeout = up.DialTimeout()
	cfg.Logger = discardMySQLLog{}
	if conf, preferred := up.ClientTLS(); conf != nil {
		cfg.TLS = conf.Clone()
		if cfg.TLS.ServerName == "" {
			cfg.TLS.ServerName = srv.Host
		}
		cfg.AllowFallbackToPlaintext = preferred
	}
	if up.Charset != "" {
		if err := cfg.Apply(mysql.Charset(up.Charset, "")); err != nil {
			return heartbeatResult{}, fmt.Errorf("mysql charset %q: %w", up.Charset, err)
		}
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return heartbeatResult{}, fmt.Errorf("mysql config: %w", err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		return heartbeatResult{}, fmt.Errorf("mysql login to %s: %w", srv.Addr(), unwrapOpError(err))
	}
	st, err := readReplicaState(ctx, db)
	if err != nil {
		return heartbeatResult{}, fmt.Errorf("mysql %s: %w", srv.Addr(), unwrapOpError(err))
	}
	res := st.verdict(role, up.MaxReplicationLag)
	if role == RoleReplica {
		if routines, err := readRoutines(ctx, db); err == nil {
			res.extra["routines"] = routines
		}
	}
	return res, nil
}

// accessRank orders SQL_DATA_ACCESS values by what they may do; an unknown value ranks last.
func accessRank(access string) int {
	switch access {
	case "NO SQL":
		return 0
	case "READS SQL DATA":
		return 1
	case "CONTAINS SQL":
		return 2
	case "MODIFIES SQL DATA":
		return 3
	}
	return 4
}

// readRoutines reads what each stored function the checkup's user can see declares of its
// data access (information_schema.ROUTINES.SQL_DATA_ACCESS), by "schema.name" lower-cased;
// of two that differ only in case, the one that may write more is kept.
func readRoutines(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, SQL_DATA_ACCESS FROM information_schema.ROUTINES WHERE ROUTINE_TYPE = 'FUNCTION'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[string]string)
	for rows.Next() {
		var schema, name, access string
		if err := rows.Scan(&schema, &name, &access); err != nil {
			return nil, err
		}
		key := strings.ToLower(schema + "." + name)
		access = strings.ToUpper(access)
		if old, ok := out[key]; !ok || accessRank(access) > accessRank(old) {
			out[key] = access
		}
	}
	return out, rows.Err()
}

type discardMySQLLog struct{}

func (discardMySQLLog) Print(...any) {}

// checkRedis sends PING, then reads INFO replication and INFO server; a replica whose
// master_link_status is down is unstable.
func checkRedis(ctx context.Context, srv Server) (heartbeatResult, error) {
	c, err := dialCheck(ctx, srv)
	if err != nil {
		return heartbeatResult{}, err
	}
	defer c.Close()
	r := bufio.NewReader(io.LimitReader(c, maxCheckReply))
	cmd := func(args ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := io.WriteString(c, b.String()); err != nil {
			return "", fmt.Errorf("sending %s to %s: %w", args[0], srv.Addr(), unwrapOpError(err))
		}
		return readRESP(r)
	}
	if pong, err := cmd("PING"); err != nil {
		return heartbeatResult{}, err
	} else if pong != "PONG" {
		return heartbeatResult{}, fmt.Errorf("unexpected PING reply %q", pong)
	}
	repl, err := cmd("INFO", "replication")
	if err != nil {
		return heartbeatResult{}, err
	}
	server, err := cmd("INFO", "server")
	if err != nil {
		return heartbeatResult{}, err
	}
	info := parseInfo(repl)
	replication := map[string]any{}
	for _, k := range []string{"role", "master_host", "master_port", "master_link_status", "master_link_down_since_seconds", "master_last_io_seconds_ago"} {
		if v, ok := info[k]; ok {
			replication[k] = v
		}
	}
	res := heartbeatResult{status: StatusOK, extra: map[string]any{"replication": replication}}
	if v, ok := parseInfo(server)["redis_version"]; ok {
		res.extra["redis_version"] = v
	}
	if info["master_link_status"] == "down" {
		res.status, res.msg = StatusUnstable, "master link status: down"
	}
	return res, nil
}

// readRESP reads a simple string, error or bulk string reply.
func readRESP(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading redis reply: %w", unwrapOpError(err))
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty redis reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis error: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 || n > maxCheckReply {
			return "", fmt.Errorf("bad redis bulk length %q", line[1:])
		}
		if n == -1 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("reading redis bulk reply: %w", unwrapOpError(err))
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unexpected redis reply %q", line)
}

// parseInfo reads "key:value" lines.
func parseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}
