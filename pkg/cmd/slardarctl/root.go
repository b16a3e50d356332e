// Package slardarctl is slardarctl, the operator CLI for the Slardar admin protocol: upstreams,
// status, code, routes, the store and raw commands, against one proxy or a fleet of them. One
// file per command group; printer.go is the one way read commands print.
package slardarctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/version"
)

// DefaultAddr is slardar-proxy's admin address.
const DefaultAddr = admin.DefaultAddr

// Globals are the flags every command shares.
type Globals struct {
	Addrs     []string // --addr, split on commas and checked
	Token     string
	Output    string
	NoHeaders bool
	Timeout   time.Duration

	addrFlag []string
}

// NewCommand builds the slardarctl root command.
func NewCommand() *cobra.Command {
	g := &Globals{}
	cmd := &cobra.Command{
		Use:   "slardarctl",
		Short: "Operate slardar proxies over the admin protocol",
		Long: `slardarctl talks the Slardar admin protocol (port 1895 for slardar-proxy) to one proxy or to
several: change upstreams without a restart, read checkups status, or send any raw command.

--addr may be repeated or comma-separated; commands that change something are applied to every
proxy and report each one. Exit codes: 0 ok, 1 error (a name a proxy does not have, too), 2 bad
arguments or input, 3 a proxy could not be reached, 4 a proxy answered with another error.

` + cmdutil.EnvHelp,
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return g.resolve()
		},
	}
	cmd.SetVersionTemplate(version.Template)
	pf := cmd.PersistentFlags()
	pf.StringSliceVar(&g.addrFlag, "addr", []string{DefaultAddr}, "admin address(es) of the proxies, repeatable or comma-separated")
	pf.StringVar(&g.Token, "token", "", "admin token, sent as AUTH token <token>")
	pf.StringVarP(&g.Output, "output", "o", OutputTable, "output format: table, json or yaml")
	pf.BoolVar(&g.NoHeaders, "no-headers", false, "print tables without their header line")
	pf.DurationVar(&g.Timeout, "timeout", 5*time.Second, "timeout for each proxy's whole exchange")
	cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return outputs, cobra.ShellCompDirectiveNoFileComp
	})
	cmd.AddCommand(newUpstreamCommand(g), newStatusCommand(g), newCodeCommand(g), newRouteCommand(g), newServerCommand(g), newStoreCommand(g), newMySQLCommand(g), newRawCommand(g))
	return cmd
}

// resolve checks the global flags once they are parsed.
func (g *Globals) resolve() error {
	g.Addrs = nil
	for _, a := range g.addrFlag {
		for _, s := range strings.Split(a, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			if _, _, err := net.SplitHostPort(s); err != nil {
				return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("--addr %q: want HOST:PORT", s))
			}
			g.Addrs = append(g.Addrs, s)
		}
	}
	if len(g.Addrs) == 0 {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, errors.New("--addr: no address given"))
	}
	if !slices.Contains(outputs, g.Output) {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("--output %q: want table, json or yaml", g.Output))
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
			out[i].Reply, out[i].Err = admin.Do(ctx, addr, g.Token, method, topic, name, body)
		}()
	}
	wg.Wait()
	return out
}

// failure turns failed results into one error with the right exit code, or nil.
func failure(results []result) error {
	var errs []error
	code := cmdutil.ExitOK
	for _, r := range results {
		if r.Err == nil {
			continue
		}
		var re *admin.ReplyError
		var ce *cmdutil.CodeError
		if errors.As(r.Err, &ce) {
			code = max(code, ce.Code)
			errs = append(errs, ce.Err)
		} else if errors.As(r.Err, &re) && strings.HasSuffix(re.Msg, " not found") {
			// The admin protocol's reply for a missing name: the exit code of a get of one.
			code = max(code, cmdutil.ExitError)
			errs = append(errs, fmt.Errorf("%s: %s", r.Addr, re.Msg))
		} else if errors.As(r.Err, &re) {
			code = max(code, cmdutil.ExitReplyError)
			errs = append(errs, fmt.Errorf("%s: %s", r.Addr, re.Msg))
		} else if unreachable(r.Err) {
			code = max(code, cmdutil.ExitUnreachable)
			errs = append(errs, r.Err)
		} else {
			code = max(code, cmdutil.ExitError)
			errs = append(errs, r.Err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return cmdutil.WithCode(code, errors.Join(errs...))
}

// checkFirst is a fleet change's check before it is made: given every proxy's answer to a read
// of what the change needs, nil when all of them answered, or the failures (with their exit code)
// and that nothing was changed.
func (g *Globals) checkFirst(results []result) error {
	err := failure(results)
	if err == nil {
		return nil
	}
	var ce *cmdutil.CodeError
	code := cmdutil.ExitError
	if errors.As(err, &ce) {
		code = ce.Code
	}
	if g.multi() {
		return cmdutil.WithCode(code, fmt.Errorf("%w\nnothing changed on any proxy (every one is checked first; --best-effort changes those that can)", err))
	}
	return err
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
	return cmdutil.WithCode(cmdutil.ExitError, fmt.Errorf("%s: %s %s not found", addr, what, name))
}

// multi reports whether output needs a PROXY column.
func (g *Globals) multi() bool { return len(g.Addrs) > 1 }

// unreachable reports a failure to reach or talk to a proxy (as opposed to a reply it sent).
func unreachable(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, admin.ErrNotAdmin) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
