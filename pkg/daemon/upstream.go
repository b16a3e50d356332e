package daemon

import (
	"context"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/version"
)

// registerUpstream serves the upstream topic from a registry, as the original's protocol.lua:
//
//	PUT upstream <name> + JSON body   {"servers":[...]} replaces level 1, {"cluster":...} the upstream
//	POST upstream <name> + body       reads the body, then "POST_upstreamnot allowed" (sic)
//	GET upstream info|status          all configs | checkups status; other names: "not allowed".
//	                                  Heartbeat passwords are masked (checkups.MaskPass) unless
//	                                  the connection authenticated with the daemon's token.
//	DELETE upstream <name>            removes it; "upstream <name> not found"
func (c *Core) registerUpstream() {
	mux, reg := c.Mux, c.Reg
	mux.Handle("PUT", "upstream", true, func(_ context.Context, name string, body []byte) admin.Reply {
		err := reg.PutJSON(name, body)
		c.forgetGone()
		return admin.Result(err)
	})
	mux.Handle("POST", "upstream", true, func(context.Context, string, []byte) admin.Reply {
		return admin.Errorf("POST_upstream" + admin.ErrNotAllowed)
	})
	mux.Handle("GET", "upstream", false, func(ctx context.Context, name string, _ []byte) admin.Reply {
		switch name {
		case "info":
			if !admin.Authenticated(ctx) {
				return admin.Message(checkups.MaskPasswords(reg.Info()))
			}
			return admin.Message(reg.Info())
		case "status":
			st := reg.Status(version.SlardarVersion)
			r := c.LastReload()
			st["last_reload"] = map[string]any{"time": r.Time.Format(checkups.TimeLayout), "ok": r.OK, "error": r.Error}
			return admin.Message(st)
		}
		return admin.Errorf(admin.ErrNotAllowed)
	})
	mux.Handle("DELETE", "upstream", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		err := reg.Delete(name)
		c.forgetGone()
		return admin.Result(err)
	})
}
