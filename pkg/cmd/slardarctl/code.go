package slardarctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/script"
)

func newCodeCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "code",
		Short: "Load, stage, install, delete and list Lua scripts and modules",
		Long: `Lua code on the proxies, as the original's code topic. script.preread<port>,
script.content<port> and script.log<port> are hooks of the listener on <port>; other names are
modules that scripts require. A new version applies to the next connection.`,
	}
	body := func(use, short, method string) *cobra.Command {
		var file string
		c := &cobra.Command{
			Use:   use + " NAME -f FILE|-",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				src, err := readInput(file, cmd.InOrStdin())
				if err != nil {
					return err
				}
				return g.report(cmd, g.do(cmd.Context(), method, "code", args[0], src), "code "+args[0]+" "+use+"ed")
			},
		}
		c.Flags().StringVarP(&file, "file", "f", "", "Lua source file, - for stdin")
		c.MarkFlagRequired("file")
		return c
	}
	noBody := func(use, short, method, done string) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return g.report(cmd, g.do(cmd.Context(), method, "code", args[0], nil), "code "+args[0]+" "+done)
			},
		}
	}
	load := body("load", "Stage and install a script or module (LOAD code NAME)", "LOAD")
	load.Example = `  slardarctl code load script.content3351 -f - <<< 'ngx.say("Hello, Lua!")'
  slardarctl code load script.preread3151 -f limit.lua`
	cmd.AddCommand(load,
		body("post", "Stage a version without running it (POST code NAME)", "POST"),
		noBody("install", "Install the staged version (PUT code NAME)", "PUT", "installed"),
		noBody("delete", "Uninstall (DELETE code NAME)", "DELETE", "deleted"),
		newCodeGet(g), newCodeInfo(g))
	return cmdutil.Group(cmd)
}

// moduleHeader heads the tables of installed scripts and modules.
var moduleHeader = []string{"NAME", "VERSION", "TIME"}

func newCodeGet(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: "Show one installed module's version and time (GET code NAME)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			results := g.do(cmd.Context(), "GET", "code", args[0], nil)
			byAddr := decodeEach[script.ModuleInfo](results, "code info")
			for i, r := range results {
				if m, ok := byAddr[r.Addr]; ok && m.Name == "" {
					results[i].Err = cmdutil.WithCode(cmdutil.ExitError, fmt.Errorf("%s: code %s is not installed", r.Addr, args[0]))
					delete(byAddr, r.Addr)
				}
			}
			return show(g, cmd, results, byAddr, table[script.ModuleInfo]{header: moduleHeader,
				rows: func(m script.ModuleInfo) [][]string { return [][]string{{m.Name, m.Version, m.Time}} }})
		},
	}
}

func newCodeInfo(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "info",
		Aliases: []string{"list", "ls"},
		Short:   "List installed scripts and modules (GET code info)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			results := g.do(cmd.Context(), "GET", "code", "info", nil)
			return show(g, cmd, results, decodeEach[script.Info](results, "code info"), table[script.Info]{header: moduleHeader, listing: true,
				rows: func(info script.Info) (rows [][]string) {
					for _, m := range info.Modules {
						rows = append(rows, []string{m.Name, m.Version, m.Time})
					}
					return rows
				}})
		},
	}
}
