package testserver

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
)

// Replication is a MariaDB primary and a replica replicating from it by GTID.
type Replication struct {
	Primary, Replica *MariaDB
}

// StartReplication starts a primary (binary log on, server_id 1) and a replica (server_id 2,
// read_only) from copies of the cached template datadir, in subdirectories of dir, and starts
// GTID replication (MASTER_USE_GTID=slave_pos). Both start from the same data, so the replica
// needs no snapshot: it takes about a second. A port of 0 is a free one.
func StartReplication(ctx context.Context, dir string, primaryPort, replicaPort int) (*Replication, error) {
	return StartReplicationWith(ctx, dir, primaryPort, replicaPort)
}

// StartReplicationWith is StartReplication with more mariadbd options for both servers (they
// come last, so they override the defaults: --max-connections=50, --ssl-cert=...).
func StartReplicationWith(ctx context.Context, dir string, primaryPort, replicaPort int, args ...string) (*Replication, error) {
	mk := func(name string) (string, error) {
		d := filepath.Join(dir, name)
		return d, os.MkdirAll(d, 0o755)
	}
	pd, err := mk("primary")
	if err != nil {
		return nil, err
	}
	rd, err := mk("replica")
	if err != nil {
		return nil, err
	}
	primary, err := StartMariaDB(ctx, pd, primaryPort, append([]string{"--log-bin=mariadb-bin", "--server-id=1", "--binlog-format=ROW", "--max-allowed-packet=256M"}, args...)...)
	if err != nil {
		return nil, err
	}
	replica, err := StartMariaDB(ctx, rd, replicaPort, append([]string{"--server-id=2", "--read-only", "--log-slave-updates=0", "--max-allowed-packet=256M", "--slave-max-allowed-packet=1G"}, args...)...)
	if err != nil {
		primary.Stop()
		return nil, err
	}
	r := &Replication{Primary: primary, Replica: replica}
	if err := r.StartReplica(ctx); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// StartReplica (re)points the replica at the primary and starts replicating.
func (r *Replication) StartReplica(ctx context.Context) error {
	db, err := sql.Open("mysql", r.Replica.DSN("root"))
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range []string{
		"STOP SLAVE",
		fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='root', MASTER_PASSWORD='%s', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1",
			r.Primary.Port, RootPassword),
		"START SLAVE",
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("replica: %s: %w", s, err)
		}
	}
	return r.Sync(ctx)
}

// Sync waits until the replica has applied everything the primary has logged.
func (r *Replication) Sync(ctx context.Context) error {
	p, err := sql.Open("mysql", r.Primary.DSN("root"))
	if err != nil {
		return err
	}
	defer p.Close()
	var pos string
	if err := p.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		return err
	}
	rp, err := sql.Open("mysql", r.Replica.DSN("root"))
	if err != nil {
		return err
	}
	defer rp.Close()
	var waited int
	if err := rp.QueryRowContext(ctx, "SELECT MASTER_GTID_WAIT(?, 30)", pos).Scan(&waited); err != nil {
		return fmt.Errorf("replica waiting for %q: %w", pos, err)
	}
	if waited != 0 {
		return fmt.Errorf("replica did not reach %q within 30s", pos)
	}
	return nil
}

// Stop stops both servers.
func (r *Replication) Stop() {
	r.Replica.Stop()
	r.Primary.Stop()
}
