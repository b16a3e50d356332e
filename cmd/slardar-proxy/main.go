// Command slardar-proxy is the L4 TCP balancer. See pkg/cmd/slardarproxy.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cmd/slardarproxy"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func main() {
	os.Exit(cmdutil.Main(slardarproxy.NewCommand(), os.Args[1:], os.Stderr))
}
