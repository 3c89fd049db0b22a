package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
)

func newTrimCmd(a *app) *cobra.Command {
	var (
		topic     string
		maxLen    int64
		olderThan time.Duration
		dryRun    bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "trim",
		Short: "Remove old entries from a topic's stream, never below the oldest pending job",
		Long: `trim keeps a topic's stream bounded: --maxlen N keeps the newest N entries,
--older-than D removes entries enqueued more than D ago. It never removes an
entry that is still pending (delivered to a worker, not yet settled), nor any
entry newer than it, so no job in flight is lost; it may therefore remove
fewer entries than asked. Acknowledged jobs are already deleted, so trimming
mostly matters for streams read by other tools.

--dry-run prints the stream's size and the most that would be removed.`,
		Example: `  conveyor trim --topic orchestrate --maxlen 100000
  conveyor trim --topic orchestrate --older-than 168h --dry-run`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if topic == "" {
				return usagef("--topic is required")
			}
			byLen, byAge := cmd.Flags().Changed("maxlen"), cmd.Flags().Changed("older-than")
			switch {
			case byLen == byAge:
				return usagef("give exactly one of --maxlen N and --older-than D")
			case byLen && maxLen < 0:
				return usagef("--maxlen must not be negative")
			case byAge && olderThan <= 0:
				return usagef("--older-than must be positive")
			}
			return a.withBroker(func(b broker.Broker) error {
				ctx := cmd.Context()
				if dryRun {
					in, err := inspector(b)
					if err != nil {
						return err
					}
					info, err := in.Inspect(ctx, topic)
					if err != nil {
						return err
					}
					upTo := info.Length
					what := fmt.Sprintf("entries enqueued before %s", time.Now().Add(-olderThan).UTC().Format(time.RFC3339))
					if byLen {
						upTo = max(0, info.Length-maxLen)
						what = fmt.Sprintf("the oldest entries beyond the newest %d", maxLen)
					}
					if asJSON {
						return writeJSON(a.stdout, struct {
							DryRun  bool   `json:"dry_run"`
							Topic   string `json:"topic"`
							Length  int64  `json:"length"`
							Pending int64  `json:"pending"`
							AtMost  int64  `json:"at_most"`
						}{true, topic, info.Length, info.Pending, upTo})
					}
					_, err = fmt.Fprintf(a.stdout,
						"dry run: %s holds %d entries (%d pending); trim would remove %s, at most %d, keeping every pending entry and all entries after the oldest pending one\n",
						topic, info.Length, info.Pending, what, upTo)
					return err
				}
				tr, ok := b.(broker.Trimmer)
				if !ok {
					return fmt.Errorf("the %T broker cannot trim", b)
				}
				opts := broker.TrimOptions{MaxLen: maxLen, OlderThan: olderThan}
				if byLen && maxLen == 0 {
					// TrimOptions treats 0 as unset; trimming to zero keeps
					// nothing but the pending entries.
					opts = broker.TrimOptions{OlderThan: time.Nanosecond}
				}
				n, err := tr.Trim(ctx, topic, opts)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						Topic   string `json:"topic"`
						Removed int64  `json:"removed"`
					}{topic, n})
				}
				_, err = fmt.Fprintf(a.stdout, "removed %d entries from %s\n", n, topic)
				return err
			})
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic whose stream to trim (required)")
	f.Int64Var(&maxLen, "maxlen", 0, "keep at most this many newest entries")
	f.DurationVar(&olderThan, "older-than", 0, "remove entries enqueued longer ago than this (such as 72h)")
	f.BoolVar(&dryRun, "dry-run", false, "report what would be removed, change nothing")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
