package ctl

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cli"
	"github.com/slardar-go/slardar/pkg/mirror"
	"github.com/slardar-go/slardar/pkg/script"
	"github.com/slardar-go/slardar/pkg/store"
)

// EnvStore names the environment variable with the default --store.
const EnvStore = "SLARDAR_STORE"

type storeOptions struct {
	url    string
	prefix string
}

// kinds maps the command's kind words to the layout.
var kinds = map[string]string{"upstream": store.Upstreams, "code": store.Code, "route": store.Routes}

func newStoreCommand(g *Globals) *cobra.Command {
	o := &storeOptions{}
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Read and write upstreams, code and routes in Consul, etcd or a directory",
		Long: `Writes the store that store-sync mirrors to the proxies, with the same layout
(<prefix>upstreams_stream/<name>, <prefix>lua_stream/<name>, <prefix>routes/<pattern>), so a
change is persisted rather than pushed to one proxy. Values are checked before they are written:
an upstream or route must parse, Lua must compile. KIND is upstream, code or route.`,
		Example: `  slardarctl store --store consul://127.0.0.1:8500 put upstream 3131 -f upstream.yaml
  slardarctl store --store etcd://127.0.0.1:2379 put code script.preread3131 -f limit.lua
  slardarctl store --store dir:///etc/slardar/store list`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "store", os.Getenv(EnvStore), "consul://HOST:PORT, etcd://HOST:PORT or dir:///PATH (env "+EnvStore+")")
	pf.StringVar(&o.prefix, "prefix", store.DefaultPrefix, "key prefix")
	open := func() (store.Store, error) {
		if o.url == "" {
			return nil, cli.WithCode(cli.ExitBadArgs, fmt.Errorf("--store: no store given"))
		}
		st, err := store.Open(o.url)
		if err != nil {
			return nil, cli.WithCode(cli.ExitBadArgs, err)
		}
		return st, nil
	}
	// withKey opens the store for the key of KIND NAME and runs fn.
	withKey := func(args []string, fn func(st store.Store, key string) error) error {
		sub, ok := kinds[args[0]]
		if !ok {
			return cli.WithCode(cli.ExitBadArgs, fmt.Errorf("kind %q: want upstream, code or route", args[0]))
		}
		st, err := open()
		if err != nil {
			return err
		}
		defer st.Close()
		return fn(st, store.Key(o.prefix, sub, args[1]))
	}
	var file string
	put := &cobra.Command{
		Use:   "put KIND NAME -f FILE|-",
		Short: "Write a value (checked first)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			if args[0] != "code" {
				if data, err = toJSON(data, file); err != nil {
					return err
				}
			}
			if err := checkValue(args[0], args[1], data); err != nil {
				return cli.WithCode(cli.ExitBadArgs, fmt.Errorf("%s %s: %w", args[0], args[1], err))
			}
			return withKey(args, func(st store.Store, k string) error {
				if err := st.Put(cmd.Context(), k, data); err != nil {
					return cli.WithCode(cli.ExitUnreachable, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s written to %s\n", k, st)
				return nil
			})
		},
	}
	put.Flags().StringVarP(&file, "file", "f", "", "value: JSON or YAML (upstream, route) or Lua (code), - for stdin")
	put.MarkFlagRequired("file")
	get := &cobra.Command{
		Use:   "get KIND NAME",
		Short: "Print a value",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withKey(args, func(st store.Store, k string) error {
				v, ok, err := st.Get(cmd.Context(), k)
				if err != nil {
					return cli.WithCode(cli.ExitUnreachable, err)
				}
				if !ok {
					return fmt.Errorf("%s not found in %s", k, st)
				}
				cmd.OutOrStdout().Write(v)
				if len(v) > 0 && v[len(v)-1] != '\n' {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				return nil
			})
		},
	}
	del := &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a value",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withKey(args, func(st store.Store, k string) error {
				if err := st.Delete(cmd.Context(), k); err != nil {
					return cli.WithCode(cli.ExitUnreachable, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s deleted from %s\n", k, st)
				return nil
			})
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the layout's keys, and whether each value is valid",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := open()
			if err != nil {
				return err
			}
			defer st.Close()
			kv, err := st.List(cmd.Context(), o.prefix)
			if err != nil {
				return cli.WithCode(cli.ExitUnreachable, err)
			}
			d := mirror.ParseSnapshot(o.prefix, kv)
			bad := map[string]string{}
			for _, p := range d.Problems {
				bad[p.Key] = p.Err
			}
			type row struct {
				Key   string `json:"key"`
				Bytes int    `json:"bytes"`
				Error string `json:"error,omitempty"`
			}
			var rows []row
			for _, k := range slices.Sorted(maps.Keys(kv)) {
				rows = append(rows, row{k, len(kv[k]), bad[k]})
			}
			if g.Output == OutputJSON {
				return cli.PrintJSON(cmd.OutOrStdout(), rows)
			}
			var table [][]string
			for _, r := range rows {
				status := "ok"
				if r.Error != "" {
					status = "invalid: " + r.Error
				}
				table = append(table, []string{r.Key, fmt.Sprint(r.Bytes), status})
			}
			return cli.PrintTable(cmd.OutOrStdout(), []string{"KEY", "BYTES", "STATUS"}, table)
		},
	}
	cmd.AddCommand(put, get, del, list)
	return cli.Group(cmd)
}

// checkValue refuses what a proxy would refuse.
func checkValue(kind, name string, data []byte) error {
	var err error
	switch kind {
	case "upstream":
		_, err = mirror.NormalizeUpstream(data)
	case "route":
		_, err = mirror.NormalizeRoute(data)
	case "code":
		if strings.HasSuffix(name, "/version") || name == "version" {
			return nil
		}
		_, err = script.Compile(name, data)
	}
	return err
}
