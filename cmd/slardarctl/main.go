// Command slardarctl operates slardar proxies over the admin protocol. See pkg/cmd/slardarctl.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cmd/slardarctl"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func main() {
	os.Exit(cmdutil.Main(slardarctl.NewCommand(), os.Args[1:], os.Stderr))
}
