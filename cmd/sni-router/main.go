// Command sni-router routes raw TLS by ClientHello server name. See pkg/cmd/snirouter.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cmd/snirouter"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func main() {
	os.Exit(cmdutil.Main(snirouter.NewCommand(), os.Args[1:], os.Stderr))
}
