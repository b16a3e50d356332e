package checkups

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReplicaVerdict(t *testing.T) {
	lag := func(n int64) *int64 { return &n }
	running := replicaState{readOnly: true, replica: true, ioRunning: "Yes", sqlRunning: "Yes", lag: lag(0), gtidPos: "0-1-9"}
	tests := []struct {
		name   string
		st     replicaState
		role   string
		maxLag float64
		status Status
		msg    string
	}{
		{"healthy replica", running, RoleReplica, 1, StatusOK, ""},
		{"lag under the limit", with(running, func(s *replicaState) { s.lag = lag(1) }), RoleReplica, 1, StatusOK, ""},
		{"lag over the limit", with(running, func(s *replicaState) { s.lag = lag(3) }), RoleReplica, 1.5, StatusLagging, "replication lag 3s > max_replication_lag 1.5s"},
		{"no limit: lag is shown, not acted on", with(running, func(s *replicaState) { s.lag = lag(300) }), RoleReplica, 0, StatusOK, ""},
		{"SQL thread stopped", with(running, func(s *replicaState) { s.sqlRunning, s.lag, s.lastError = "No", nil, "Duplicate entry" }), RoleReplica, 1, StatusLagging, "replication stopped (IO thread Yes, SQL thread No): Duplicate entry"},
		{"not a replica", replicaState{readOnly: true}, RoleReplica, 1, StatusLagging, "not replicating"},
		{"no privilege", replicaState{readOnly: true, statusErr: errors.New("Error 1227")}, RoleReplica, 1, StatusLagging, "replication status unknown"},
		{"writable replica flagged", with(running, func(s *replicaState) { s.readOnly = false }), RoleReplica, 0, StatusOK, "read_only is OFF"},
		{"read-only primary flagged", replicaState{readOnly: true}, RolePrimary, 1, StatusOK, "read_only is ON"},
		{"primary never lags", replicaState{}, RolePrimary, 1, StatusOK, ""},
	}
	for _, tt := range tests {
		res := tt.st.verdict(tt.role, tt.maxLag)
		if res.status != tt.status || !strings.HasPrefix(res.msg, tt.msg) || (tt.msg == "" && res.msg != "") {
			t.Errorf("%s: %s %q; want %s %q", tt.name, res.status, res.msg, tt.status, tt.msg)
		}
		repl := res.extra["replication"].(map[string]any)
		if tt.st.replica && repl["gtid_slave_pos"] != "0-1-9" {
			t.Errorf("%s: replication %v", tt.name, repl)
		}
	}
}

func with(st replicaState, f func(*replicaState)) replicaState {
	f(&st)
	return st
}

// A lagging replica is never kept usable as the last server, as a failed one is when the
// upstream is protected: reads must not go to it.
func TestLaggingNotProtected(t *testing.T) {
	r := &Registry{}
	up, err := ParseUpstream([]byte(`{"typ":"mysql","cluster":[{"servers":[{"host":"127.0.0.1","port":1},{"host":"127.0.0.1","port":2}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	r.Set("db_read", up)
	p := r.get("db_read")
	now := time.Now()
	r.apply(p, []heartbeatResult{{status: StatusLagging, msg: "lag"}, {status: StatusLagging, msg: "lag"}}, now)
	for _, pe := range p.all {
		if p.usable(pe, now) {
			t.Fatalf("%s usable while lagging", pe.srv.Addr())
		}
	}
	r.apply(p, []heartbeatResult{{status: StatusErr, msg: "down"}, {status: StatusErr, msg: "down"}}, now)
	if !p.usable(p.all[0], now) {
		t.Fatal("protected upstream: the first failed server should stay usable (unstable)")
	}
}

func TestRoleAndLagValidated(t *testing.T) {
	for body, want := range map[string]string{
		`{"role":"leader","servers":[{"host":"a","port":1}]}`:                            "role invalid",
		`{"max_replication_lag":-1,"servers":[{"host":"a","port":1}]}`:                   "max_replication_lag",
		`{"role":"replica","max_replication_lag":2.5,"servers":[{"host":"a","port":1}]}`: "",
	} {
		_, err := ParseUpstream([]byte(body))
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}
