// Command sni-router routes raw TLS by ClientHello server name. See pkg/snid.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cli"
	"github.com/slardar-go/slardar/pkg/snid"
)

func main() {
	os.Exit(cli.Main(snid.NewCommand(), os.Args[1:], os.Stderr))
}
