package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/slardar-go/slardar/pkg/admin"
)

// registerServer serves the server topic (an extension, as HAProxy's "set server state"):
//
//	PUT server <upstream>/<host:port> + {"state":"drain"|"maint"|"ready"}
//	                                  drain: no new connections, open ones finish;
//	                                  maint: also no heartbeats; ready: back in rotation
//	GET server <upstream>/<host:port> the server's status, its state and open connections
func (c *Core) registerServer() {
	c.Mux.Handle("PUT", "server", true, func(_ context.Context, name string, body []byte) admin.Reply {
		upstream, addr, err := splitServer(name)
		if err != nil {
			return admin.Result(err)
		}
		var req struct {
			State string `json:"state"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.State == "" {
			return admin.Errorf(`invalid body: want {"state":"drain"|"maint"|"ready"}`)
		}
		return admin.Result(c.Reg.SetServerState(upstream, addr, req.State))
	})
	c.Mux.Handle("GET", "server", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		upstream, addr, err := splitServer(name)
		if err != nil {
			return admin.Result(err)
		}
		st, err := c.Reg.Server(upstream, addr)
		if err != nil {
			return admin.Result(err)
		}
		return admin.Message(st)
	})
}

// splitServer reads "<upstream>/<host:port>" (the last slash splits: upstream names may hold one).
func splitServer(name string) (upstream, addr string, err error) {
	i := strings.LastIndexByte(name, '/')
	if i <= 0 || i == len(name)-1 {
		return "", "", fmt.Errorf("server %q: want UPSTREAM/HOST:PORT", name)
	}
	return name[:i], name[i+1:], nil
}
