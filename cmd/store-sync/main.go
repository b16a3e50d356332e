// Command store-sync keeps slardar proxies in step with Consul, etcd or a directory. See pkg/syncd.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cli"
	"github.com/slardar-go/slardar/pkg/syncd"
)

func main() {
	os.Exit(cli.Main(syncd.NewCommand(), os.Args[1:], os.Stderr))
}
