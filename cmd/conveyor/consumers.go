package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// consumerDeleter is the power of brokers whose group consumers can be
// deleted (the Redis broker).
type consumerDeleter interface {
	DeleteIdleConsumer(ctx context.Context, topic, group, consumer string, minIdle time.Duration) (bool, error)
}

var _ consumerDeleter = (*redis.Broker)(nil)

// consumerRow is one consumer of one group of one topic, as consumers list
// and prune print it (Idle as idle_seconds in JSON).
type consumerRow struct {
	Topic string `json:"topic"`
	Group string `json:"group"`
	broker.ConsumerInfo
}

// MarshalJSON flattens the consumer's fields into the row.
func (r consumerRow) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Topic       string  `json:"topic"`
		Group       string  `json:"group"`
		Name        string  `json:"name"`
		Pending     int64   `json:"pending"`
		IdleSeconds float64 `json:"idle_seconds"`
	}{r.Topic, r.Group, r.Name, r.Pending, r.Idle.Seconds()})
}

func newConsumersCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consumers",
		Short: "List the consumers of consumer groups and prune idle ones",
		Long: `consumers lists the consumers of each topic's consumer groups, and prunes
those that hold nothing and have been idle for long.

Redis keeps every consumer that ever read a stream in its group until it is
deleted: workers that are gone, and one-shot readers, stay listed (in health
and the dashboard) with nothing pending and a growing idle time. consume
deletes its own consumer when it exits holding nothing; prune deletes the
others.

  list   every consumer: topic, group, name, pending entries, idle time
  prune  delete consumers of a group holding nothing, idle for --idle

A consumer deleted by prune that reads again is created again: pruning a
live worker that was idle does it no harm.`,
		Example: `  conveyor consumers list
  conveyor consumers prune --idle 1h --dry-run
  conveyor consumers prune --idle 24h --topic orchestrate`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newConsumersListCmd(a), newConsumersPruneCmd(a))
	return cmd
}

// consumerRows returns the consumers of topics (every topic of the
// namespace when empty), of group only when group is not "".
func consumerRows(ctx context.Context, a *app, b broker.Broker, topics []string, group string) ([]consumerRow, error) {
	in, err := inspector(b)
	if err != nil {
		return nil, err
	}
	if len(topics) == 0 {
		if topics, err = listTopics(ctx, a, b, in); err != nil {
			return nil, err
		}
	} else {
		for _, t := range topics {
			if err := a.requireTopic(ctx, b, t); err != nil {
				return nil, err
			}
		}
	}
	rows := []consumerRow{}
	for _, t := range topics {
		info, err := in.Inspect(ctx, t)
		if err != nil {
			return nil, fmt.Errorf("inspect %s: %w", printable(t), err)
		}
		for _, g := range info.Groups {
			if group != "" && g.Name != group {
				continue
			}
			for _, c := range g.Consumers {
				rows = append(rows, consumerRow{Topic: t, Group: g.Name, ConsumerInfo: c})
			}
		}
	}
	return rows, nil
}

func printConsumers(w io.Writer, rows []consumerRow) {
	tw := newTable(w)
	fmt.Fprintln(tw, "TOPIC\tGROUP\tCONSUMER\tPENDING\tIDLE")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", printable(r.Topic), printable(r.Group), printable(r.Name), r.Pending, r.Idle.Round(time.Second))
	}
	_ = tw.Flush()
}

func newConsumersListCmd(a *app) *cobra.Command {
	var (
		topics []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List consumers: topic, group, name, pending entries, idle time",
		Example: `  conveyor consumers list
  conveyor consumers list --topic orchestrate --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			return a.withBroker(func(b broker.Broker) error {
				rows, err := consumerRows(cmd.Context(), a, b, topics, "")
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, rows)
				}
				if len(rows) == 0 {
					_, err := fmt.Fprintln(a.stdout, "no consumers: no worker has read these topics")
					return err
				}
				printConsumers(a.stdout, rows)
				return nil
			})
		}),
	}
	cmd.Flags().StringArrayVarP(&topics, "topic", "t", nil, "topic whose consumers to list (repeatable; default: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (idle time as idle_seconds)")
	return cmd
}

func newConsumersPruneCmd(a *app) *cobra.Command {
	var (
		topics []string
		group  string
		idle   time.Duration
		dryRun bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Delete consumers that hold nothing and have been idle for --idle",
		Long: `prune deletes (XGROUP DELCONSUMER) the consumers of a consumer group
(--group, default redis.group) that hold no pending entry and have been idle
for at least --idle, on the given topics or on every topic. Each deletion
checks "nothing pending, idle long enough" again in the same atomic step, so
a consumer that has just been delivered a job is kept, and no pending job
is ever lost with a deleted consumer.

--dry-run lists the consumers prune would delete now and deletes none.`,
		Example: `  conveyor consumers prune --idle 1h --dry-run
  conveyor consumers prune --idle 1h
  conveyor consumers prune --idle 24h --topic orchestrate --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			if idle <= 0 {
				return usagef("--idle must be positive (such as 1h)")
			}
			if group == "" {
				group = a.cfg.Redis.Group
			}
			return a.withBroker(func(b broker.Broker) error {
				del, ok := b.(consumerDeleter)
				if !ok {
					return fmt.Errorf("the %T broker cannot delete consumers", b)
				}
				ctx := cmd.Context()
				rows, err := consumerRows(ctx, a, b, topics, group)
				if err != nil {
					return err
				}
				var idleRows []consumerRow
				for _, r := range rows {
					if r.Pending == 0 && r.Idle >= idle {
						idleRows = append(idleRows, r)
					}
				}
				pruned := []consumerRow{}
				kept := 0
				if dryRun {
					pruned = append(pruned, idleRows...)
				} else {
					for _, r := range idleRows {
						ok, err := del.DeleteIdleConsumer(ctx, r.Topic, r.Group, r.Name, idle)
						switch {
						case errors.Is(err, broker.ErrNotFound): // deleted meanwhile
						case err != nil:
							return fmt.Errorf("prune after %s: %w", plural(len(pruned), "consumer", "consumers"), err)
						case ok:
							pruned = append(pruned, r)
						default:
							kept++ // it read or took a job since the listing
						}
					}
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						DryRun bool          `json:"dry_run,omitempty"`
						Count  int           `json:"count"`
						Pruned []consumerRow `json:"consumers"`
						Kept   int           `json:"kept_active,omitempty"`
					}{dryRun, len(pruned), pruned, kept})
				}
				verb := "pruned"
				if dryRun {
					verb = "dry run: would prune"
				}
				fmt.Fprintf(a.stdout, "%s %s of group %s idle for %v or more, holding nothing\n", verb, plural(len(pruned), "consumer", "consumers"), printable(group), idle)
				if len(pruned) > 0 {
					printConsumers(a.stdout, pruned)
				}
				if kept > 0 {
					fmt.Fprintf(a.stdout, "kept %s that became active meanwhile\n", plural(kept, "consumer", "consumers"))
				}
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.StringArrayVarP(&topics, "topic", "t", nil, "topic whose consumers to prune (repeatable; default: all)")
	f.StringVar(&group, "group", "", "consumer group (default redis.group)")
	f.DurationVar(&idle, "idle", time.Hour, "prune consumers idle for at least this long")
	f.BoolVar(&dryRun, "dry-run", false, "list the consumers that would be pruned, delete none")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON (idle time as idle_seconds)")
	return cmd
}
