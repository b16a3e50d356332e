// Package daemon is what the slardar daemons share around their data paths: the admin topics
// every daemon serves, the admin listener policy and signal handling.
package daemon

import (
	"context"
	"errors"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/version"
)

// RegisterUpstream serves the upstream topic from a registry, as the original's protocol.lua:
//
//	PUT upstream <name> + JSON body   {"servers":[...]} replaces level 1, {"cluster":...} the upstream
//	POST upstream <name> + body       reads the body, then "POST_upstreamnot allowed" (sic)
//	GET upstream info|status          all configs | checkups status; other names: "not allowed"
//	DELETE upstream <name>            removes it; "upstream <name> not found"
func RegisterUpstream(mux *admin.Mux, reg *checkups.Registry) {
	mux.Handle("PUT", "upstream", true, func(_ context.Context, name string, body []byte) admin.Reply {
		return replyErr(reg.PutJSON(name, body))
	})
	mux.Handle("POST", "upstream", true, func(context.Context, string, []byte) admin.Reply {
		return admin.Errorf("POST_upstream" + admin.ErrNotAllowed)
	})
	mux.Handle("GET", "upstream", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		switch name {
		case "info":
			return admin.Message(reg.Info())
		case "status":
			return admin.Message(reg.Status(version.SlardarVersion))
		}
		return admin.Errorf(admin.ErrNotAllowed)
	})
	mux.Handle("DELETE", "upstream", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		return replyErr(reg.Delete(name))
	})
}

// RegisterCodeUnavailable answers the code topic, with each method's original body rule so the
// connection stays in step, by saying scripts are not part of this build.
func RegisterCodeUnavailable(mux *admin.Mux) {
	for _, m := range []struct {
		method string
		body   bool
	}{{"POST", true}, {"PUT", false}, {"LOAD", true}, {"DELETE", false}, {"GET", false}} {
		mux.Handle(m.method, "code", m.body, func(context.Context, string, []byte) admin.Reply {
			return admin.Errorf("code topic unavailable: this slardar-proxy has no Lua script support yet")
		})
	}
}

func replyErr(err error) admin.Reply {
	if err == nil {
		return admin.OK()
	}
	var ve *checkups.ValidationError
	if errors.As(err, &ve) {
		return admin.Errorf("%s", ve.Msg)
	}
	return admin.Errorf("%s", err)
}
