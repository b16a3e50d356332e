// Command slardarctl operates slardar proxies over the admin protocol. See pkg/ctl.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cli"
	"github.com/slardar-go/slardar/pkg/ctl"
)

func main() {
	os.Exit(cli.Main(ctl.NewCommand(), os.Args[1:], os.Stderr))
}
