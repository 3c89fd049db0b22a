package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// The dry run relies on these powers of the Redis broker.
var (
	_ broker.Trimmer       = (*redis.Broker)(nil)
	_ broker.TrimDryRunner = (*redis.Broker)(nil)
)

func newTrimCmd(a *app) *cobra.Command {
	var (
		topic         string
		maxLen        int64
		olderThan     time.Duration
		includeUnread bool
		dryRun        bool
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "trim",
		Short: "Remove old entries from a topic's stream, never a pending job and, by default, never an unread one",
		Long: `trim keeps a topic's stream bounded: --maxlen N keeps the newest N entries,
--older-than D removes entries enqueued more than D ago.

Acknowledged jobs are already deleted, so every entry left is a live job.
trim never removes an entry that is still pending (delivered to a worker,
not yet settled), nor any entry newer than it, so no job in flight is lost.
By default it also keeps every entry not yet delivered to every consumer
group (and every entry of a stream no group reads), and anything newer:
jobs waiting to run are not dropped. --include-unread removes unread jobs
too (pending ones are still kept): use it to drop a backlog on purpose, or
for retention of a dead-letter stream nobody reads (--topic T.dlq). trim may
therefore remove fewer entries than asked.

--dry-run prints the stream's size and exactly how many entries the trim would
remove now (jobs published, read or settled meanwhile change what a later
trim removes).

A --topic the namespace holds no trace of is an error (exit 1) that lists
the topics with close names.`,
		Example: `  conveyor trim --topic orchestrate.dlq --older-than 720h --include-unread
  conveyor trim --topic orchestrate --maxlen 100000 --include-unread --dry-run`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
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
			opts := broker.TrimOptions{MaxLen: maxLen, OlderThan: olderThan, IncludeUnread: includeUnread}
			if byLen && maxLen == 0 {
				// TrimOptions treats 0 as unset; trimming to zero keeps
				// nothing but the pending (and, by default, unread)
				// entries.
				opts = broker.TrimOptions{OlderThan: time.Nanosecond, IncludeUnread: includeUnread}
			}
			return a.withBroker(func(b broker.Broker) error {
				ctx := cmd.Context()
				if err := a.requireTopic(ctx, b, topic); err != nil {
					return err
				}
				if dryRun {
					what := fmt.Sprintf("entries enqueued before %s", time.Now().Add(-olderThan).UTC().Format(time.RFC3339))
					if byLen {
						what = fmt.Sprintf("the oldest entries beyond the newest %d", maxLen)
					}
					return trimDryRun(ctx, a, b, topic, opts, what, asJSON)
				}
				tr, ok := b.(broker.Trimmer)
				if !ok {
					return fmt.Errorf("the %T broker cannot trim", b)
				}
				n, err := tr.Trim(ctx, topic, opts)
				if err != nil {
					return err
				}
				unread := int64(-1) // unknown
				if !includeUnread {
					unread = keptUnread(cmd, b, topic, byLen, maxLen)
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						Topic      string `json:"topic"`
						Removed    int64  `json:"removed"`
						KeptUnread *int64 `json:"kept_unread,omitempty"`
					}{topic, n, nonNegative(unread)})
				}
				if _, err := fmt.Fprintf(a.stdout, "removed %s from %s\n", plural(n, "entry", "entries"), topic); err != nil {
					return err
				}
				switch {
				case includeUnread || unread == 0:
				case unread > 0:
					_, err = fmt.Fprintf(a.stdout, "kept %s; pass --include-unread to remove them\n", plural(unread, "unread entry", "unread entries"))
				default:
					_, err = fmt.Fprintln(a.stdout, "unread entries, if any, were kept; pass --include-unread to remove them")
				}
				return err
			})
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic whose stream to trim (required)")
	f.Int64Var(&maxLen, "maxlen", 0, "keep at most this many newest entries")
	f.DurationVar(&olderThan, "older-than", 0, "remove entries enqueued longer ago than this (such as 72h)")
	f.BoolVar(&includeUnread, "include-unread", false, "also remove entries no consumer group has read yet (jobs that never ran); pending entries are always kept")
	f.BoolVar(&dryRun, "dry-run", false, "report how many entries the trim would remove now, change nothing")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// trimDryRun prints topic's size and how many entries a trim with opts
// would remove now (the broker runs the trim's own selection and removes
// nothing); what describes the entries the trim asks for.
func trimDryRun(ctx context.Context, a *app, b broker.Broker, topic string, opts broker.TrimOptions, what string, asJSON bool) error {
	dr, ok := b.(broker.TrimDryRunner)
	if !ok {
		return fmt.Errorf("the %T broker cannot count what a trim would remove", b)
	}
	in, err := inspector(b)
	if err != nil {
		return err
	}
	info, err := in.Inspect(ctx, topic)
	if err != nil {
		return err
	}
	n, err := dr.TrimDryRun(ctx, topic, opts)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(a.stdout, struct {
			DryRun      bool   `json:"dry_run"`
			Topic       string `json:"topic"`
			Length      int64  `json:"length"`
			Pending     int64  `json:"pending"`
			WouldRemove int64  `json:"would_remove"`
		}{true, topic, info.Length, info.Pending, n})
	}
	keeping := "every pending entry and all entries after the oldest pending one"
	if !opts.IncludeUnread {
		keeping = "every pending or unread entry and all entries after the oldest one of those"
	}
	_, err = fmt.Fprintf(a.stdout,
		"dry run: %s holds %s (%d pending, %d unread); trim would remove %s now (%s), keeping %s\n",
		topic, plural(info.Length, "entry", "entries"), info.Pending, info.Lag, plural(n, "entry", "entries"), what, keeping)
	return err
}

// keptUnread returns how many unread entries topic still holds after a trim
// that kept them, when that may have limited the trim (0 when it did not),
// or -1 when the broker cannot tell.
func keptUnread(cmd *cobra.Command, b broker.Broker, topic string, byLen bool, maxLen int64) int64 {
	in, ok := b.(broker.Inspector)
	if !ok {
		return -1
	}
	info, err := in.Inspect(cmd.Context(), topic)
	if errors.Is(err, broker.ErrNotFound) {
		return 0 // no such topic: nothing kept
	}
	if err != nil {
		return -1
	}
	if byLen && info.Length <= maxLen {
		return 0 // the trim got what it asked for
	}
	return info.Lag
}

// nonNegative returns &n, or nil when n is negative (unknown).
func nonNegative(n int64) *int64 {
	if n < 0 {
		return nil
	}
	return &n
}
