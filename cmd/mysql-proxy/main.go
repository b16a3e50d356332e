// Command mysql-proxy is the MySQL-protocol proxy with read/write split. See pkg/cmd/mysqlproxy.
package main

import (
	"os"

	"github.com/slardar-go/slardar/pkg/cmd/mysqlproxy"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func main() {
	os.Exit(cmdutil.Main(mysqlproxy.NewCommand(), os.Args[1:], os.Stderr))
}
