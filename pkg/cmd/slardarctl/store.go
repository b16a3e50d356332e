package slardarctl

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/reconcile"
	"github.com/slardar-go/slardar/pkg/script"
	"github.com/slardar-go/slardar/pkg/store"
)

// storeOptions are the flags of the store commands.
type storeOptions struct {
	url    string
	prefix string
}

// kinds maps the command's kind words to the layout.
var kinds = map[string]string{"upstream": store.Upstreams, "code": store.Code, "route": store.Routes, "user": store.Users, "rule": store.Rules}

func newStoreCommand(g *Globals) *cobra.Command {
	o := &storeOptions{}
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Read and write upstreams, code and routes in Consul, etcd or a directory",
		Long: `Writes the store that store-sync mirrors to the proxies, with the same layout
(<prefix>upstreams_stream/<name>, <prefix>lua_stream/<name>, <prefix>routes/<pattern>,
<prefix>mysql_users/<name>, <prefix>mysql_rules/<name>), so a change is persisted rather than
pushed to one proxy. Values are checked before they are written: an upstream, route, user or
rule must parse (a rule compile), Lua must compile. KIND is upstream, code, route, user or rule
(mysql-proxy's users and query rules, as "mysql user put" and "mysql rule put" take them).`,
		Example: `  slardarctl store --store consul://127.0.0.1:8500 put upstream 3131 -f upstream.yaml
  slardarctl store --store etcd://127.0.0.1:2379 put code script.preread3131 -f limit.lua
  slardarctl store --store dir:///etc/slardar/store list`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "store", "", "consul://HOST:PORT, etcd://HOST:PORT or dir:///PATH")
	pf.StringVar(&o.prefix, "prefix", store.DefaultPrefix, "key prefix")
	cmd.AddCommand(o.newPut(), o.newGet(), o.newDelete(), o.newList(g))
	return cmdutil.Group(cmd)
}

// open opens the store of --store.
func (o *storeOptions) open() (store.Store, error) {
	if o.url == "" {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, errors.New("--store: no store given"))
	}
	st, err := store.Open(o.url)
	if err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, err)
	}
	return st, nil
}

// withKey opens the store for the key of KIND NAME and runs fn; a store error exits 3.
func (o *storeOptions) withKey(args []string, fn func(st store.Store, key string) error) error {
	sub, ok := kinds[args[0]]
	if !ok {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("kind %q: want upstream, code, route, user or rule", args[0]))
	}
	st, err := o.open()
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st, store.Key(o.prefix, sub, args[1]))
}

func (o *storeOptions) newPut() *cobra.Command {
	var file string
	cmd := &cobra.Command{
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
				return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s %s: %w", args[0], args[1], err))
			}
			return o.withKey(args, func(st store.Store, k string) error {
				if err := st.Put(cmd.Context(), k, data); err != nil {
					return cmdutil.WithCode(cmdutil.ExitUnreachable, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s written to %s\n", k, st)
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "value: JSON or YAML (upstream, route) or Lua (code), - for stdin")
	cmd.MarkFlagRequired("file")
	return cmd
}

func (o *storeOptions) newGet() *cobra.Command {
	return &cobra.Command{
		Use:   "get KIND NAME",
		Short: "Print a value",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withKey(args, func(st store.Store, k string) error {
				v, ok, err := st.Get(cmd.Context(), k)
				if err != nil {
					return cmdutil.WithCode(cmdutil.ExitUnreachable, err)
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
}

func (o *storeOptions) newDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a value",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.withKey(args, func(st store.Store, k string) error {
				if err := st.Delete(cmd.Context(), k); err != nil {
					return cmdutil.WithCode(cmdutil.ExitUnreachable, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "%s deleted from %s\n", k, st)
				return nil
			})
		},
	}
}

// storeKey is one key of a store listing.
type storeKey struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
	Error string `json:"error,omitempty"`
}

func (o *storeOptions) newList(g *Globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List the layout's keys, and whether each value is valid",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := o.open()
			if err != nil {
				return err
			}
			defer st.Close()
			kv, err := st.List(cmd.Context(), o.prefix)
			if err != nil {
				return cmdutil.WithCode(cmdutil.ExitUnreachable, err)
			}
			bad := map[string]string{}
			for _, p := range reconcile.ParseSnapshot(o.prefix, kv, config.NormalizeUser).Problems {
				bad[p.Key] = p.Err
			}
			var keys []storeKey
			for _, k := range slices.Sorted(maps.Keys(kv)) {
				keys = append(keys, storeKey{k, len(kv[k]), bad[k]})
			}
			var rows [][]string
			for _, k := range keys {
				status := "ok"
				if k.Error != "" {
					status = "invalid: " + k.Error
				}
				rows = append(rows, []string{k.Key, strconv.Itoa(k.Bytes), status})
			}
			return g.emit(cmd, keys, []string{"KEY", "BYTES", "STATUS"}, rows, true)
		},
	}
}

// checkValue refuses what a proxy would refuse.
func checkValue(kind, name string, data []byte) error {
	var err error
	switch kind {
	case "upstream":
		_, err = reconcile.NormalizeUpstream(data)
	case "route":
		_, err = reconcile.NormalizeRoute(data)
	case "user":
		_, err = config.NormalizeUser(name, data)
	case "rule":
		_, err = reconcile.NormalizeRule(name, data)
	case "code":
		if strings.HasSuffix(name, "/version") || name == "version" {
			return nil
		}
		_, err = script.Compile(name, data)
	}
	return err
}
