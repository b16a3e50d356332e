package snirouter

import (
	"context"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/sni"
)

// registerRoute serves sni-router's route topic (an extension of the protocol):
//
//	PUT route <pattern> + JSON   {"upstream":"<name>"} or {"target":"<host:port template>"},
//	                             optional "alpn" and "proxy_protocol":1|2; pattern default names
//	                             the default route
//	DELETE route <pattern>       "route <pattern> not found" if absent
//	GET route info               all routes by pattern; other names: "not allowed"
func registerRoute(mux *admin.Mux, table *sni.Table) {
	mux.Handle("PUT", "route", true, func(_ context.Context, pattern string, body []byte) admin.Reply {
		r, err := sni.ParseRoute(body)
		if err == nil {
			err = table.Put(pattern, r)
		}
		return admin.Result(err)
	})
	mux.Handle("DELETE", "route", false, func(_ context.Context, pattern string, _ []byte) admin.Reply {
		return admin.Result(table.Delete(pattern))
	})
	mux.Handle("GET", "route", false, func(_ context.Context, name string, _ []byte) admin.Reply {
		if name != "info" {
			return admin.Errorf(admin.ErrNotAllowed)
		}
		return admin.Message(table.Info())
	})
}
