package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newConfigCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show the effective configuration",
		Long: `config print shows every setting conveyor would use, where each value came
from (default, the config file, .env or an environment variable) and the
variable that sets it. Passwords are redacted.`,
		Example: "  conveyor config print\n  conveyor --config config.yaml config print --json",
		Args:    cobra.NoArgs,
	}
	var asJSON bool
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the effective configuration with the source of each value",
		Long: `print shows every setting conveyor would use, where each value came from
(default, the config file, .env or an environment variable) and the variable
that sets it. Passwords are redacted. Invalid configuration exits with status
2 and names the key, the value and its source.`,
		Example: "  conveyor config print\n  REDIS_NAMESPACE=staging conveyor config print --json",
		Args:    cobra.NoArgs,
		RunE: run(func(*cobra.Command, []string) error {
			entries := a.cfg.Entries()
			if asJSON {
				return writeJSON(a.stdout, entries)
			}
			tw := newTable(a.stdout)
			fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE\tENV")
			for _, e := range entries {
				v := e.Value
				if v == "" {
					v = `""`
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Key, v, e.Source, e.Env)
			}
			return tw.Flush()
		}),
	}
	print.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	cmd.AddCommand(print)
	return cmd
}
