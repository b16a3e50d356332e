// Package daemon is what the slardar daemons share around their data paths: the admin topics
// every daemon serves, the admin listener policy and signal handling.
package daemon

import (
	"context"
	"errors"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/script"
	"github.com/slardar-go/slardar/pkg/sni"
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

// RegisterCode serves the code topic from a code registry, as the original's lua-resty-load:
//
//	POST code <name> + source     stage (refused if it does not compile, or is already staged)
//	PUT code <name>               install the staged version
//	LOAD code <name> + source     stage and install
//	DELETE code <name>            uninstall (always OK)
//	GET code info | <name>        all installed modules | one ({} when not installed)
func RegisterCode(mux *admin.Mux, code *script.Code) {
	mux.Handle("POST", "code", true, func(_ context.Context, name string, body []byte) admin.Reply {
		return replyErr(code.Stage(name, body))
	})
	mux.Handle("PUT", "code", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		return replyErr(code.Install(name))
	})
	mux.Handle("LOAD", "code", true, func(_ context.Context, name string, body []byte) admin.Reply {
		return replyErr(code.Load(name, body))
	})
	mux.Handle("DELETE", "code", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		code.Delete(name)
		return admin.OK()
	})
	mux.Handle("GET", "code", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name == "info" {
			return admin.Message(code.Info())
		}
		return admin.Message(code.Get(name))
	})
}

func replyErr(err error) admin.Reply {
	if err == nil {
		return admin.OK()
	}
	var ve *checkups.ValidationError
	if errors.As(err, &ve) {
		return admin.Errorf("%s", ve.Msg)
	}
	var ce *script.CodeError
	if errors.As(err, &ce) {
		return admin.Errorf("%s", ce.Msg)
	}
	return admin.Errorf("%s", err)
}

// RegisterRoute serves sni-router's route topic (an extension of the protocol):
//
//	PUT route <pattern> + JSON   {"upstream":"<name>"} or {"target":"<host:port template>"},
//	                             optional "alpn" and "proxy_protocol":1|2; pattern default names
//	                             the default route
//	DELETE route <pattern>       "route <pattern> not found" if absent
//	GET route info               all routes by pattern; other names: "not allowed"
func RegisterRoute(mux *admin.Mux, table *sni.Table) {
	mux.Handle("PUT", "route", true, func(_ context.Context, pattern string, body []byte) admin.Reply {
		r, err := sni.ParseRoute(body)
		if err == nil {
			err = table.Put(pattern, r)
		}
		return replyErr(err)
	})
	mux.Handle("DELETE", "route", false, func(_ context.Context, pattern string, _ []byte) admin.Reply {
		return replyErr(table.Delete(pattern))
	})
	mux.Handle("GET", "route", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name != "info" {
			return admin.Errorf(admin.ErrNotAllowed)
		}
		return admin.Message(table.Info())
	})
}
