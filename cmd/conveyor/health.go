package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
)

// inspector returns b's Inspector, or an error saying the backend has none.
func inspector(b broker.Broker) (broker.Inspector, error) {
	in, ok := b.(broker.Inspector)
	if !ok {
		return nil, fmt.Errorf("the %T broker cannot describe its topics", b)
	}
	return in, nil
}

func newHealthCmd(a *app) *cobra.Command {
	var (
		topics []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Show stream length, lag, pending, delayed and dead-letter counts per topic",
		Long: `health describes topics: the stream length (unread plus pending jobs), the
last entry ID, how many jobs are pending (delivered, not yet settled), the lag
(not yet delivered to the group), delayed jobs waiting for their time, and the
dead-letter depth; then each consumer group and consumer with its pending
count and idle time. A topic paused by conveyor pause is marked (PAUSED)
(--json: "paused": true).

Without --topic it describes every topic in the namespace. A --topic the
namespace holds no trace of (no jobs, dead letters or consumer group, never
published to) is an error (exit 1) that lists the topics with close names
("did you mean") and the other namespaces on the same Redis that hold it.
When the whole namespace, or a known topic, is empty but other namespaces
hold it, health says so on stderr: producer and worker probably use
different REDIS_NAMESPACE values.

Idle times are rounded to the millisecond; --json gives them in seconds
("idle_seconds"). Names and other text that producers control are printed
with control characters escaped (\x1b, \n); --json prints them as they are.`,
		Example: `  conveyor health
  conveyor health --topic orchestrate
  conveyor health --topic orchestrate --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			return a.withBroker(func(b broker.Broker) error {
				in, err := inspector(b)
				if err != nil {
					return err
				}
				ctx := cmd.Context()
				if len(topics) == 0 {
					if topics, err = listTopics(ctx, a, b, in); err != nil {
						return err
					}
				} else {
					for _, t := range topics {
						if err := a.requireTopic(ctx, b, t); err != nil {
							return err
						}
					}
				}
				infos := make([]*broker.TopicInfo, 0, len(topics))
				for _, t := range topics {
					info, err := in.Inspect(ctx, t)
					if err != nil {
						return fmt.Errorf("inspect %s: %w", printable(t), err)
					}
					infos = append(infos, info)
					if isEmpty(info) {
						if other := namespacesWith(ctx, b, a.cfg.Redis.Namespace, t); len(other) > 0 {
							fmt.Fprintf(a.stderr, "hint: topic %s is empty in namespace %s but exists in namespace %s: do producer and worker use the same REDIS_NAMESPACE?\n",
								printable(t), a.cfg.Redis.Namespace, printable(strings.Join(other, ", ")))
						}
					}
				}
				if asJSON {
					return writeJSON(a.stdout, infos)
				}
				if len(infos) == 0 {
					fmt.Fprintf(a.stdout, "no topics in namespace %s\n", a.cfg.Redis.Namespace)
					if other := namespacesWith(ctx, b, a.cfg.Redis.Namespace, ""); len(other) > 0 {
						fmt.Fprintf(a.stderr, "hint: this Redis holds topics in namespace %s: is REDIS_NAMESPACE right?\n", printable(strings.Join(other, ", ")))
					}
					return nil
				}
				printHealth(a, infos)
				return nil
			})
		}),
	}
	cmd.Flags().StringArrayVarP(&topics, "topic", "t", nil, "topic to describe (repeatable; default: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}

func printHealth(a *app, infos []*broker.TopicInfo) {
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "TOPIC\tLENGTH\tPENDING\tLAG\tDELAYED\tDEAD LETTERS\tLAST ID")
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\n", printable(in.Topic)+pausedMark(in), in.Length, in.Pending, in.Lag, in.Delayed, in.DeadLetters, orDash(in.LastID))
	}
	_ = tw.Flush()

	fmt.Fprintln(a.stdout)
	tw = newTable(a.stdout)
	fmt.Fprintln(tw, "TOPIC\tGROUP\tCONSUMER\tPENDING\tIDLE")
	rows := 0
	for _, in := range infos {
		for _, g := range in.Groups {
			if len(g.Consumers) == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", printable(in.Topic), printable(g.Name), "-", g.Pending, "-")
				rows++
			}
			for _, c := range g.Consumers {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", printable(in.Topic), printable(g.Name), printable(c.Name), c.Pending, c.Idle.Round(time.Millisecond))
				rows++
			}
		}
	}
	if rows == 0 {
		fmt.Fprintln(tw, "(no consumer groups yet: no worker has read these topics)")
	}
	_ = tw.Flush()
}

// pausedMark marks a paused topic's name in health's table.
func pausedMark(in *broker.TopicInfo) string {
	if in.Paused {
		return " (PAUSED)"
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// listTopics lists the topics of the namespace. A one-shot command makes a
// single listing, so with a broker that can it scans the whole keyspace
// for topics other producers wrote (DiscoverTopics) rather than the part a
// long-running process's listing covers; when that scan fails (an ACL
// without SCAN, a timeout), it says so and lists the registered topics.
func listTopics(ctx context.Context, a *app, b broker.Broker, in broker.Inspector) ([]string, error) {
	d, ok := b.(interface {
		DiscoverTopics(context.Context) ([]string, error)
	})
	if !ok {
		return in.Topics(ctx)
	}
	ts, err := d.DiscoverTopics(ctx)
	if err == nil || ctx.Err() != nil {
		return ts, err
	}
	fmt.Fprintf(a.stderr, "warning: could not scan for topics written only by other producers, listing the registered ones: %v\n", err)
	return in.Topics(ctx)
}
