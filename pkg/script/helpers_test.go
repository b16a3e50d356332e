package script

import (
	"fmt"
	"net"
	"testing"

	"github.com/slardar-go/slardar/internal/testutil"
)

func fmtSscan(s string, v *float64) (int, error) { return fmt.Sscan(s, v) }

// listenT returns one end of a loopback connection for benchmarks.
func listenT(tb testing.TB) net.Conn {
	_, server := testutil.Pair(tb)
	return server
}
