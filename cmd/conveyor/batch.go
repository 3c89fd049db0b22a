package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// batch relies on this power of the Redis broker.
var _ broker.BatchStore = (*redis.Broker)(nil)

func newBatchCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "batch",
		Short: "Show or cancel a batch of jobs (package workflow): members by state, progress, callback",
		Long: `A batch is a set of member jobs whose callback job is enqueued once when
every member has ended (acknowledged, dead-lettered or cancelled). Programs
open batches and chains with package workflow; batch show reads the record
a batch keeps until 24 hours (by default) after it completed.`,
		Example: `  conveyor batch show --id 3f2a9c0e5b7d41a8c6e1f0b2
  conveyor batch cancel --id 3f2a9c0e5b7d41a8c6e1f0b2`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newBatchShowCmd(a), newBatchCancelCmd(a))
	return cmd
}

func batchStore(b broker.Broker) (broker.BatchStore, error) {
	s, ok := b.(broker.BatchStore)
	if !ok {
		return nil, fmt.Errorf("the %T broker keeps no batches", b)
	}
	return s, nil
}

func batchNotFound(id string) error {
	return fmt.Errorf("no batch %s: it was never opened in this namespace, or its record expired (24 hours after it completed, by default)", printable(id))
}

func newBatchShowCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a batch: state, counts, members by state, callback",
		Long: `show prints a batch's state (open, complete, cancelled), its progress
(members ended of total), its counts (succeeded, dead, cancelled), its
members grouped by state, and its callback and the callback's state:

  waiting        members are still running
  due            the batch completed; the callback is being enqueued
  enqueued       the callback was enqueued
  succeeded      the callback job was acknowledged
  dead           the callback job was dead-lettered
  dead-lettered  not run: a chain link before it did not succeed
  skipped        the batch was cancelled: the callback never runs
  none           the batch has no callback

--json prints the whole record, results of members included (bytes, base64).

Exit codes: 0 shown; 1 no such batch.`,
		Example: `  conveyor batch show --id 3f2a9c0e5b7d41a8c6e1f0b2
  conveyor batch show --id 3f2a9c0e5b7d41a8c6e1f0b2 --json`,
		Args: cobra.NoArgs,
	}
	batchRun(a, cmd, func(ctx context.Context, s broker.BatchStore, id string) (*broker.BatchInfo, error) {
		return s.BatchInfo(ctx, id)
	})
	return cmd
}

// printBatch writes bi for people.
func printBatch(w io.Writer, bi *broker.BatchInfo) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "batch      %s\n", printable(bi.ID))
	fmt.Fprintf(&sb, "state      %s\n", bi.State)
	pct := 0
	if bi.Total > 0 {
		pct = 100 * bi.Ended() / bi.Total
	}
	fmt.Fprintf(&sb, "progress   %d/%d ended (%d%%)\n", bi.Ended(), bi.Total, pct)
	fmt.Fprintf(&sb, "counts     %d succeeded, %d dead, %d cancelled, %d pending\n", bi.Succeeded, bi.Dead, bi.Cancelled, bi.Total-bi.Ended())
	if bi.CallbackTopic != "" {
		fmt.Fprintf(&sb, "callback   %s job %s: %s\n", printable(bi.CallbackTopic), printable(bi.CallbackID), bi.CallbackState)
	} else {
		fmt.Fprintf(&sb, "callback   %s\n", bi.CallbackState)
	}
	if bi.RequireSuccess {
		sb.WriteString("runs the callback only if every member succeeded (chain link)\n")
	}
	if bi.Parent != "" {
		fmt.Fprintf(&sb, "parent     %s\n", printable(bi.Parent))
	}
	if bi.Failed != "" {
		fmt.Fprintf(&sb, "failed     %s\n", printable(bi.Failed))
	}
	fmt.Fprintf(&sb, "created    %s\n", bi.CreatedAt.UTC().Format(time.RFC3339))
	if !bi.CompletedAt.IsZero() {
		fmt.Fprintf(&sb, "completed  %s\n", bi.CompletedAt.UTC().Format(time.RFC3339))
	}
	for _, state := range []string{broker.MemberPending, broker.MemberSucceeded, broker.MemberDead, broker.MemberCancelled} {
		var lines []string
		for _, m := range bi.Members {
			if m.State != state {
				continue
			}
			where := printable(m.Topic)
			if m.Topic == "" {
				where = "child batch"
			}
			line := fmt.Sprintf("  %s  %s", printable(m.ID), where)
			if m.Result != nil {
				line += fmt.Sprintf("  result %d bytes", len(m.Result))
			}
			lines = append(lines, line)
		}
		if len(lines) > 0 {
			fmt.Fprintf(&sb, "%s (%d):\n%s\n", state, len(lines), strings.Join(lines, "\n"))
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

func newBatchCancelCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cancel",
		Short: "Cancel an open batch: its pending members are cancelled and its callback never runs",
		Long: `cancel marks an open batch cancelled and cancels its pending members as
conveyor cancel does (waiting ones are dead-lettered with reason cancelled
now, running ones get a cancel request) and its child batches. The
callback of a cancelled batch never runs. A complete batch is left as it
is. It prints the batch as batch show does.

Exit codes: 0 done; 1 no such batch.`,
		Example: `  conveyor batch cancel --id 3f2a9c0e5b7d41a8c6e1f0b2`,
		Args:    cobra.NoArgs,
	}
	batchRun(a, cmd, func(ctx context.Context, s broker.BatchStore, id string) (*broker.BatchInfo, error) {
		return s.CancelBatch(ctx, id)
	})
	return cmd
}

// batchRun gives cmd the --id and --json flags and a body that calls op
// with the batch store and the ID, then prints the batch op returns.
func batchRun(a *app, cmd *cobra.Command, op func(context.Context, broker.BatchStore, string) (*broker.BatchInfo, error)) {
	var (
		id     string
		asJSON bool
	)
	cmd.RunE = run(func(cmd *cobra.Command, _ []string) error {
		if err := a.requireRedis(cmd); err != nil {
			return err
		}
		if id == "" {
			return usagef("--id is required")
		}
		return a.withBroker(func(b broker.Broker) error {
			s, err := batchStore(b)
			if err != nil {
				return err
			}
			bi, err := op(cmd.Context(), s, id)
			if errors.Is(err, broker.ErrNotFound) {
				return batchNotFound(id)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, bi)
			}
			return printBatch(a.stdout, bi)
		})
	})
	f := cmd.Flags()
	f.StringVar(&id, "id", "", "batch ID (required)")
	f.BoolVar(&asJSON, "json", false, "print the batch as JSON")
}
