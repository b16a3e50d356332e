package slardarctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/cmdutil"
)

func newRawCommand(g *Globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "raw METHOD TOPIC NAME [-f BODY|-]",
		Short: "Send any admin command and print its reply",
		Long: `Sends "METHOD TOPIC NAME" and, with -f, a body read from a file (- for stdin), exactly as given.
The reply's data is printed: "OK", or the MESSAGE JSON (indented with -o json). An ERROR reply
is printed on stderr and exits 4. A command the protocol knows must come with -f when it
carries a body (PUT upstream, LOAD code, ...) and without it when it does not.`,
		Example: `  slardarctl raw GET upstream status
  echo -n 'ngx.exit(1)' | slardarctl raw LOAD code script.preread3151 -f -`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			// A known command sent without the body it needs would leave the proxy waiting for
			// it until the timeout; one sent with a body it does not take would have the body
			// skipped. Unknown commands go as given: raw is also for trying the error replies.
			if needs, known := admin.CarriesBody(args[0], args[1]); known && needs != (file != "") {
				what := "needs a body: give -f FILE (or -f - for stdin)"
				if !needs {
					what = "takes no body: leave out -f"
				}
				return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s %s %s", strings.ToUpper(args[0]), strings.ToLower(args[1]), what))
			}
			var body []byte
			if file != "" {
				var err error
				if body, err = readInput(file, cmd.InOrStdin()); err != nil {
					return err
				}
			}
			results := g.do(cmd.Context(), args[0], args[1], args[2], body)
			for _, r := range results {
				if r.Err != nil {
					continue
				}
				prefix := ""
				if g.multi() {
					prefix = r.Addr + ": "
				}
				data := r.Reply.Data
				if r.Reply.Type == admin.TypeMessage && g.Output == OutputYAML {
					var v any
					if json.Unmarshal(data, &v) == nil {
						fmt.Fprint(cmd.OutOrStdout(), prefix)
						if err := cmdutil.PrintYAML(cmd.OutOrStdout(), v); err != nil {
							return err
						}
						continue
					}
				}
				if r.Reply.Type == admin.TypeMessage && g.Output == OutputJSON {
					var buf bytes.Buffer
					if json.Indent(&buf, data, "", "  ") == nil {
						data = buf.Bytes()
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s%s\n", prefix, data)
			}
			return failure(results)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "request body file, - for stdin")
	return cmd
}
