// Package ctl is slardarctl, the operator CLI for the Slardar admin protocol: upstreams, status
// and raw commands, against one proxy or a fleet of them.
package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cli"
	"github.com/slardar-go/slardar/pkg/version"
)

// Environment variables read by slardarctl (flags win).
const (
	EnvAddr   = "SLARDAR_ADDR"
	EnvToken  = "SLARDAR_TOKEN"
	EnvOutput = "SLARDAR_OUTPUT"
)

// DefaultAddr is slardar-proxy's admin address.
const DefaultAddr = "127.0.0.1:1895"

// Globals are the flags every command shares.
type Globals struct {
	Addrs   []string
	Token   string
	Output  string
	Timeout time.Duration
}

// NewCommand builds the slardarctl root command.
func NewCommand() *cobra.Command {
	g := &Globals{}
	v := viper.New()
	cmd := &cobra.Command{
		Use:   "slardarctl",
		Short: "Operate slardar proxies over the admin protocol",
		Long: `slardarctl talks the Slardar admin protocol (port 1895 for slardar-proxy) to one proxy or to
several: change upstreams without a restart, read checkups status, or send any raw command.

--addr may be repeated or comma-separated; commands that change something are applied to every
proxy and report each one. Exit codes: 0 ok, 1 error, 2 bad arguments or input, 3 a proxy could
not be reached, 4 a proxy answered with an error.`,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return g.resolve(v)
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringSlice("addr", []string{DefaultAddr}, "admin address(es) of the proxies, repeatable or comma-separated (env "+EnvAddr+")")
	pf.String("token", "", "admin token, sent as AUTH token <token> (env "+EnvToken+")")
	pf.StringP("output", "o", OutputTable, "output format: table or json (env "+EnvOutput+")")
	pf.DurationVar(&g.Timeout, "timeout", 5*time.Second, "timeout for each proxy's whole exchange")
	for _, k := range []string{"addr", "token", "output"} {
		v.BindPFlag(k, pf.Lookup(k))
	}
	v.BindEnv("addr", EnvAddr)
	v.BindEnv("token", EnvToken)
	v.BindEnv("output", EnvOutput)
	cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{OutputTable, OutputJSON}, cobra.ShellCompDirectiveNoFileComp
	})
	cmd.AddCommand(newUpstreamCommand(g), newStatusCommand(g), newCodeCommand(g), newRouteCommand(g), newStoreCommand(g), newRawCommand(g))
	return cmd
}

func (g *Globals) resolve(v *viper.Viper) error {
	g.Addrs = nil
	for _, a := range v.GetStringSlice("addr") {
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(s); err != nil {
				return cli.WithCode(cli.ExitBadArgs, fmt.Errorf("--addr %q: want HOST:PORT", s))
			}
			g.Addrs = append(g.Addrs, s)
		}
	}
	if len(g.Addrs) == 0 {
		return cli.WithCode(cli.ExitBadArgs, errors.New("--addr: no address given"))
	}
	g.Token = v.GetString("token")
	g.Output = v.GetString("output")
	if g.Output != OutputTable && g.Output != OutputJSON {
		return cli.WithCode(cli.ExitBadArgs, fmt.Errorf("--output %q: want table or json", g.Output))
	}
	return nil
}

// result is one proxy's answer.
type result struct {
	Addr  string
	Reply admin.Reply
	Err   error
}

// do sends one request to every proxy concurrently and returns the answers in --addr order.
func (g *Globals) do(ctx context.Context, method, topic, name string, body []byte) []result {
	out := make([]result, len(g.Addrs))
	var wg sync.WaitGroup
	for i, addr := range g.Addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, g.Timeout)
			defer cancel()
			out[i].Addr = addr
			c, err := admin.Dial(ctx, addr, g.Token)
			if err != nil {
				out[i].Err = err
				return
			}
			defer c.Close()
			out[i].Reply, out[i].Err = c.Do(ctx, method, topic, name, body)
		}()
	}
	wg.Wait()
	return out
}

// failure turns failed results into one error with the right exit code, or nil.
func failure(results []result) error {
	var errs []error
	code := cli.ExitOK
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		var re *admin.ReplyError
		var ce *cli.CodeError
		if errors.As(r.Err, &ce) {
			code = max(code, ce.Code)
			errs = append(errs, ce.Err)
		} else if errors.As(r.Err, &re) {
			code = max(code, cli.ExitReplyError)
			errs = append(errs, fmt.Errorf("%s: %s", r.Addr, re.Msg))
		} else if unreachable(r.Err) {
			code = max(code, cli.ExitUnreachable)
			errs = append(errs, r.Err)
		} else {
			code = max(code, cli.ExitError)
			errs = append(errs, r.Err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return cli.WithCode(code, errors.Join(errs...))
}

// decodeEach decodes every successful reply's JSON into a T, by proxy address; a reply that
// does not decode becomes that proxy's error.
func decodeEach[T any](results []result, what string) map[string]T {
	out := make(map[string]T, len(results))
	for i, r := range results {
		if r.Err != nil {
			continue
		}
		var v T
		if err := json.Unmarshal(r.Reply.Data, &v); err != nil {
			results[i].Err = fmt.Errorf("%s: decoding %s: %w", r.Addr, what, err)
			continue
		}
		out[r.Addr] = v
	}
	return out
}

// notFound is the error for a name a proxy does not have (exit code 1).
func notFound(what, name, addr string) error {
	return cli.WithCode(cli.ExitError, fmt.Errorf("%s: %s %s not found", addr, what, name))
}

// multi reports whether output needs a PROXY column.
func (g *Globals) multi() bool { return len(g.Addrs) > 1 }

// unreachable reports a failure to reach or talk to a proxy (as opposed to a reply it sent).
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, admin.ErrNotAdmin) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
