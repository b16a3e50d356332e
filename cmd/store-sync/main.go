// Command store-sync keeps slardar proxies in step with Consul, etcd or a directory. See pkg/cmd/storesync and pkg/syncer.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cmd/storesync"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func main() {
	os.Exit(cmdutil.Main(storesync.NewCommand(), os.Args[1:], os.Stderr))
}
