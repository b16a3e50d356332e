package lifecycle

import (
	"testing"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/spf13/pflag"
)

// The admin token has one flag and one environment variable in every binary.
func TestTokenEnv(t *testing.T) {
	if got := cmdutil.EnvName("token"); got != admin.EnvToken {
		t.Fatalf("--token reads %s, admin.EnvToken is %s", got, admin.EnvToken)
	}
}

// TestLoad: the file when --config names one (else an empty configuration), with the common
// flags that were set over it and the rest kept.
func TestLoad(t *testing.T) {
	var o CommonFlags
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	o.Register(fs, "127.0.0.1:1895", "", "test")
	if err := fs.Parse([]string{"--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	read := func(path string) (*config.File, error) {
		return config.Parse([]byte("admin: {listen: '127.0.0.1:7000'}\nlog: {format: json}\n"))
	}
	cfg, err := Load(&o, fs, read)
	if err != nil || cfg.Admin.Listen != "127.0.0.1:1895" || cfg.Log.Level != "debug" {
		t.Fatalf("without a file: %+v %v", cfg, err)
	}
	o.ConfigPath = "given"
	cfg, err = Load(&o, fs, read)
	if err != nil || cfg.Admin.Listen != "127.0.0.1:7000" || cfg.Log.Format != "json" || cfg.Log.Level != "debug" {
		t.Fatalf("with a file: %+v %v", cfg, err)
	}
}
