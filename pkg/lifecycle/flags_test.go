package lifecycle

import (
	"testing"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

// The admin token has one flag and one environment variable in every binary.
func TestTokenEnv(t *testing.T) {
	if got := cmdutil.EnvName("token"); got != admin.EnvToken {
		t.Fatalf("--token reads %s, admin.EnvToken is %s", got, admin.EnvToken)
	}
}
