package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// topic partitions relies on these powers of the Redis broker.
var (
	_ broker.Partitioner        = (*redis.Broker)(nil)
	_ broker.PartitionInspector = (*redis.Broker)(nil)
)

func newTopicCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Change how a topic is laid out in Redis",
		Example: `  conveyor topic partitions --topic orchestrate
  conveyor topic partitions --topic orchestrate --count 12`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newTopicPartitionsCmd(a))
	return cmd
}

func newTopicPartitionsCmd(a *app) *cobra.Command {
	var (
		topic  string
		count  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "partitions",
		Short: "Show a topic's partitions, or set how many it has",
		Long: `partitions shows, one line each, the partitions of a topic: jobs in the
stream, pending (delivered, not settled), lag (not yet delivered), delayed,
dead letters, and the Redis master that holds the partition (on Cluster).
Partitions left over from an earlier count are listed while they still hold
jobs.

With --count N it sets the topic's partition count (1 to 1024), kept in
Redis so that every producer and worker of the namespace uses it: producers
switch at once, and workers keep reading the partitions of the earlier
count until they are empty, so no job is stranded. Jobs with one key
(Message.Key) go to one partition and keep their order; on Redis Cluster
the partitions spread over the masters.

A --topic the namespace holds no trace of is an error (exit 1) that lists
the topics with close names.`,
		Example: `  conveyor topic partitions --topic orchestrate
  conveyor topic partitions --topic orchestrate --count 12`,
		Args: cobra.NoArgs,
	}
	cmd.RunE = run(func(cmd *cobra.Command, _ []string) error {
		if err := a.requireRedis(cmd); err != nil {
			return err
		}
		if topic == "" {
			return usagef("--topic is required")
		}
		set := cmd.Flags().Changed("count")
		if set && (count < 1 || count > broker.MaxPartitions) {
			return usagef("--count %d: a topic has 1 to %d partitions", count, broker.MaxPartitions)
		}
		return a.withBroker(func(b broker.Broker) error {
			ctx := cmd.Context()
			if err := a.requireTopic(ctx, b, topic); err != nil {
				return err
			}
			p, ok := b.(broker.Partitioner)
			if !ok {
				return fmt.Errorf("the %T broker cannot partition topics", b)
			}
			was, err := p.Partitions(ctx, topic)
			if err != nil {
				return fmt.Errorf("partitions of %s: %w", printable(topic), err)
			}
			if set {
				if err := p.SetPartitions(ctx, topic, count); err != nil {
					return fmt.Errorf("set partitions of %s: %w", printable(topic), err)
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						Topic      string `json:"topic"`
						Partitions int    `json:"partitions"`
						Was        int    `json:"was"`
					}{topic, count, was})
				}
				msg := fmt.Sprintf("%s: %d partitions (was %d)", printable(topic), count, was)
				if count != was {
					msg += "; producers use them now, and workers drain the earlier partitions until they are empty"
				}
				_, err := fmt.Fprintln(a.stdout, msg)
				return err
			}
			var parts []broker.PartitionInfo
			if pi, ok := b.(broker.PartitionInspector); ok {
				if parts, err = pi.InspectPartitions(ctx, topic); err != nil {
					return fmt.Errorf("inspect partitions of %s: %w", printable(topic), err)
				}
			}
			if asJSON {
				if parts == nil {
					parts = []broker.PartitionInfo{}
				}
				return writeJSON(a.stdout, struct {
					Topic      string                 `json:"topic"`
					Partitions int                    `json:"partitions"`
					Breakdown  []broker.PartitionInfo `json:"breakdown"`
				}{topic, was, parts})
			}
			fmt.Fprintf(a.stdout, "%s: %d partitions\n", printable(topic), was)
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION\tLENGTH\tPENDING\tLAG\tDELAYED\tDEAD\tNODE")
			for _, pi := range parts {
				mark := ""
				if pi.Draining {
					mark = " (draining)"
				}
				fmt.Fprintf(tw, "%d%s\t%d\t%d\t%d\t%d\t%d\t%s\n", pi.Partition, mark, pi.Length, pi.Pending, pi.Lag, pi.Delayed, pi.DeadLetters, orDash(printable(pi.Node)))
			}
			return tw.Flush()
		})
	})
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic (required)")
	f.IntVar(&count, "count", 1, "set the topic's partition count (1 to 1024)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
