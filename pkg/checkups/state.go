package checkups

import (
	"sync"
	"sync/atomic"
	"time"
)

// Status of a server as checkups shows it.
type Status string

const (
	StatusOK        Status = "ok"
	StatusErr       Status = "err"
	StatusUnstable  Status = "unstable"
	StatusUnchecked Status = "unchecked"
	// StatusMaint is a server in maintenance: heartbeats paused, no connections.
	StatusMaint Status = "maint"
)

// Admin states of a server, set by an operator (PUT server), as HAProxy's "set server state".
const (
	StateReady = "ready" // chosen as its health allows
	StateDrain = "drain" // no new connections; open ones finish
	StateMaint = "maint" // no new connections, heartbeats paused
)

// peerState is the health of one server of one upstream. It outlives upstream replacements:
// a PUT that keeps a server keeps its state.
type peerState struct {
	active atomic.Int64 // open proxied connections

	mu sync.Mutex
	// passive health (failures seen by connections)
	pStatus  Status
	pFails   int
	pLastMod time.Time
	// active health (heartbeats)
	hStatus  Status
	hFailNum int
	hOKNum   int
	hMsg     string
	hLastMod time.Time
	hExtra   map[string]any
	// operator's state: StateReady (""), StateDrain or StateMaint
	admin string
}

// adminState is the operator's state of the server.
func (st *peerState) adminState() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.admin == "" {
		return StateReady
	}
	return st.admin
}

func newPeerState(now time.Time) *peerState {
	return &peerState{pStatus: StatusOK, hStatus: StatusOK, hLastMod: now}
}

// passive returns the passive status: the recorded one while inside fail_timeout, ok after.
func (st *peerState) passive(srv Server, now time.Time) Status {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.passiveLocked(srv, now)
}

// A server whose max_fails is 0 has passive health off: a mark left from before a PUT that set
// max_fails 0 no longer counts.
func (st *peerState) passiveLocked(srv Server, now time.Time) Status {
	if srv.MaxFails <= 0 || st.pLastMod.IsZero() || !st.pLastMod.Add(srv.failTimeout()).After(now) {
		return StatusOK
	}
	return st.pStatus
}

// message is the last heartbeat's message.
func (st *peerState) message() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.hMsg
}

// heartbeat returns the active status.
func (st *peerState) heartbeat() Status {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.hStatus
}

// recordPassive is checkups' set_srv_status: a window of fail_timeout opens at the first report
// after the previous window expired; max_fails failures inside it mark the server err, unless
// othersOK says no other server of the upstream is usable. Successes do not reset the count.
func (st *peerState) recordPassive(srv Server, failed bool, now time.Time, othersOK func() bool) (down bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pLastMod.IsZero() || st.pLastMod.Add(srv.failTimeout()).Before(now) {
		st.pStatus, st.pFails, st.pLastMod = StatusOK, 0, now
	}
	if !failed || srv.MaxFails <= 0 {
		return false
	}
	st.pFails++
	if st.pFails >= srv.MaxFails && st.pStatus != StatusErr {
		st.mu.Unlock()
		others := othersOK()
		st.mu.Lock()
		if others {
			st.pStatus = StatusErr
			st.pLastMod = now
			return true
		}
	}
	return false
}

// heartbeatResult is one active check outcome.
type heartbeatResult struct {
	status Status // ok, err or unstable
	msg    string
	extra  map[string]any
}

// recordHeartbeat is checkups' update_peer_status, with a rise threshold added: ok needs rise
// consecutive good checks (default 1) to bring a server back, a failure needs sensibility
// consecutive bad ones. It reports whether the status changed.
func (st *peerState) recordHeartbeat(r heartbeatResult, sensibility, rise int, now time.Time) (changed bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.hExtra = r.extra
	if r.status == StatusOK {
		st.hFailNum = 0
		st.hOKNum++
		st.hMsg = r.msg // a flag on a usable server (mysql: read_only against the role), or ""
		if st.hStatus != StatusOK && st.hOKNum >= rise {
			st.hStatus, st.hLastMod = StatusOK, now
			return true
		}
		return false
	}
	st.hOKNum = 0
	st.hFailNum++
	st.hMsg = r.msg
	if st.hStatus != r.status && st.hFailNum >= sensibility {
		st.hStatus, st.hLastMod = r.status, now
		return true
	}
	return false
}
