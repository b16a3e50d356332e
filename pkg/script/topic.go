package script

import (
	"context"

	"github.com/slardar-go/slardar/pkg/admin"
)

// Register serves the code topic from the registry on mux, as the original's lua-resty-load
// (every daemon that runs hooks serves it):
//
//	POST code <name> + source     stage (refused if it does not compile, or is already staged)
//	PUT code <name>               install the staged version
//	LOAD code <name> + source     stage and install
//	DELETE code <name>            uninstall (always OK)
//	GET code info | <name>        all installed modules | one ({} when not installed)
func (c *Code) Register(mux *admin.Mux) {
	mux.Handle("POST", "code", true, func(_ context.Context, name string, body []byte) admin.Reply {
		return admin.Result(c.Stage(name, body))
	})
	mux.Handle("PUT", "code", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		return admin.Result(c.Install(name))
	})
	mux.Handle("LOAD", "code", true, func(_ context.Context, name string, body []byte) admin.Reply {
		return admin.Result(c.Load(name, body))
	})
	mux.Handle("DELETE", "code", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		c.Delete(name)
		return admin.OK()
	})
	mux.Handle("GET", "code", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name == "info" {
			return admin.Message(c.Info())
		}
		return admin.Message(c.Get(name))
	})
}
