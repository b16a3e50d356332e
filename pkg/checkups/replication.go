package checkups

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

	"github.com/go-sql-driver/mysql"
)

// Roles a mysql upstream may have ("role" in the upstream, or implied by the daemon: mysql-proxy
// makes a listener's upstream N the primary and N_read the replicas).
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// StatusLagging is a replica the mysql heartbeat found behind its upstream's
// max_replication_lag, or with a replication thread stopped: it gets no connections until it
// catches up. It is never kept usable as the last server (protected), as an err one may be.
const StatusLagging Status = "lagging"

// replicaState is what the mysql heartbeat reads of a server after logging in: read_only,
// the replica's GTID position (MariaDB) and SHOW SLAVE STATUS (SHOW REPLICA STATUS on servers
// that dropped the old name).
type replicaState struct {
	readOnly   bool
	gtidPos    string // @@gtid_slave_pos; "" on servers without it (MySQL)
	replica    bool   // SHOW SLAVE STATUS returned a row
	ioRunning  string // Slave_IO_Running: Yes, No, Connecting
	sqlRunning string // Slave_SQL_Running
	lag        *int64 // Seconds_Behind_Master; nil when unknown (a thread stopped)
	lastError  string // Last_IO_Error or Last_SQL_Error
	statusErr  error  // SHOW SLAVE STATUS failed (no privilege): replication unknown
}

// readReplicaState runs the heartbeat's queries on a logged-in connection.
func readReplicaState(ctx context.Context, db *sql.DB) (replicaState, error) {
	var st replicaState
	if err := db.QueryRowContext(ctx, "SELECT @@read_only").Scan(&st.readOnly); err != nil {
		return st, fmt.Errorf("reading @@read_only: %w", err)
	}
	var pos sql.NullString
	if err := db.QueryRowContext(ctx, "SELECT @@gtid_slave_pos").Scan(&pos); err == nil {
		st.gtidPos = pos.String
	} else if !isMySQLError(err, 1193) { // unknown system variable: not MariaDB
		return st, fmt.Errorf("reading @@gtid_slave_pos: %w", err)
	}
	rows, err := db.QueryContext(ctx, "SHOW SLAVE STATUS")
	if isMySQLError(err, 1064) { // a server without the old name (MySQL 8.4)
		rows, err = db.QueryContext(ctx, "SHOW REPLICA STATUS")
	}
	if err != nil {
		if ctx.Err() != nil {
			return st, err
		}
		st.statusErr = err
		return st, nil
	}
	defer rows.Close()
	row, err := oneRow(rows)
	if err != nil || row == nil {
		return st, err
	}
	st.replica = true
	pick := func(names ...string) (string, bool) {
		for _, n := range names {
			if v, ok := row[n]; ok {
				return v.String, v.Valid
			}
		}
		return "", false
	}
	st.ioRunning, _ = pick("Slave_IO_Running", "Replica_IO_Running")
	st.sqlRunning, _ = pick("Slave_SQL_Running", "Replica_SQL_Running")
	if v, ok := pick("Seconds_Behind_Master", "Seconds_Behind_Source"); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			st.lag = &n
		}
	}
	if e, _ := pick("Last_SQL_Error"); e != "" {
		st.lastError = e
	} else if e, _ := pick("Last_IO_Error"); e != "" {
		st.lastError = e
	}
	return st, nil
}

// oneRow reads the first row of rows by column name (nil when there is none).
func oneRow(rows *sql.Rows) (map[string]sql.NullString, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if !rows.Next() {
		return nil, rows.Err()
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	row := make(map[string]sql.NullString, len(cols))
	for i, c := range cols {
		row[c] = vals[i]
	}
	return row, nil
}

func isMySQLError(err error, code uint16) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == code
}

// verdict turns what was read into the heartbeat's result: lagging beyond maxLag (when set),
// and a role that read_only contradicts flagged in msg (the server stays usable).
func (st replicaState) verdict(role string, maxLag float64) heartbeatResult {
	repl := map[string]any{"read_only": st.readOnly}
	if role != "" {
		repl["role"] = role
	}
	if st.gtidPos != "" {
		repl["gtid_slave_pos"] = st.gtidPos
	}
	switch {
	case st.statusErr != nil:
		repl["status_error"] = st.statusErr.Error()
	case st.replica:
		repl["io_running"], repl["sql_running"] = st.ioRunning, st.sqlRunning
		if st.lag != nil {
			repl["lag"] = *st.lag
		} else {
			repl["lag"] = nil
		}
		if st.lastError != "" {
			repl["last_error"] = st.lastError
		}
	}
	res := heartbeatResult{status: StatusOK, extra: map[string]any{"replication": repl}}
	switch {
	case role == RoleReplica && !st.readOnly:
		res.msg = "read_only is OFF on a server of a replica upstream"
	case role == RolePrimary && st.readOnly:
		res.msg = "read_only is ON on a server of a primary upstream"
	}
	if maxLag <= 0 || role == RolePrimary {
		return res
	}
	switch {
	case st.statusErr != nil:
		res.status, res.msg = StatusLagging, "replication status unknown: "+st.statusErr.Error()
	case !st.replica:
		res.status, res.msg = StatusLagging, "not replicating (SHOW SLAVE STATUS is empty)"
	case st.ioRunning != "Yes" || st.sqlRunning != "Yes":
		res.status, res.msg = StatusLagging, fmt.Sprintf("replication stopped (IO thread %s, SQL thread %s)", st.ioRunning, st.sqlRunning)
		if st.lastError != "" {
			res.msg += ": " + st.lastError
		}
	case st.lag == nil:
		res.status, res.msg = StatusLagging, "replication lag unknown"
	case float64(*st.lag) > maxLag:
		res.status, res.msg = StatusLagging, fmt.Sprintf("replication lag %ds > max_replication_lag %ss", *st.lag, strconv.FormatFloat(maxLag, 'f', -1, 64))
	}
	return res
}
