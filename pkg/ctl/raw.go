package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/slardar-go/slardar/pkg/admin"
)

func newRawCommand(g *Globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "raw METHOD TOPIC NAME [-f BODY|-]",
		Short: "Send any admin command and print its reply",
		Long: `Sends "METHOD TOPIC NAME" and, with -f, a body read from a file (- for stdin), exactly as given.
The reply's data is printed: "OK", or the MESSAGE JSON (indented with -o json). An ERROR reply
is printed on stderr and exits 4.`,
		Example: `  slardarctl raw GET upstream status
  echo -n 'ngx.exit(1)' | slardarctl raw LOAD code script.preread3151 -f -`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
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
