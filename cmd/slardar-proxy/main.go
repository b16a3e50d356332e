// Command slardar-proxy is the L4 TCP balancer. See pkg/proxyd.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cli"
	"github.com/slardar-go/slardar/pkg/proxyd"
)

func main() {
	os.Exit(cli.Main(proxyd.NewCommand(), os.Args[1:], os.Stderr))
}
