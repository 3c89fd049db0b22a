package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// pause and resume rely on this power of the Redis broker.
var _ broker.Pauser = (*redis.Broker)(nil)

func newPauseCmd(a *app) *cobra.Command {
	return pauseCmd(a, true)
}

func newResumeCmd(a *app) *cobra.Command {
	return pauseCmd(a, false)
}

// pauseCmd builds the pause command, or resume.
func pauseCmd(a *app, pause bool) *cobra.Command {
	var (
		topic  string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "pause",
		Short: "Stop every worker from fetching a topic's jobs, until conveyor resume",
		Long: `pause stops every worker of the namespace from fetching the topic's jobs,
within about a second (Redis Block): jobs stay queued, jobs already running
finish and are settled as usual, delayed jobs wait past their due time, and
leases that expire meanwhile are recovered after resume. The pause is kept
in Redis, so it reaches every worker and outlives restarts; producers still
publish to the topic. conveyor health and the dashboard show it.

A --topic the namespace holds no trace of is an error (exit 1) that lists
the topics with close names. Pausing a paused topic changes nothing.`,
		Example: `  conveyor pause --topic orchestrate
  conveyor resume --topic orchestrate`,
		Args: cobra.NoArgs,
	}
	verb, done := "pause", "paused"
	if !pause {
		verb, done = "resume", "resumed"
		cmd.Use = "resume"
		cmd.Short = "Let workers fetch a paused topic's jobs again"
		cmd.Long = `resume lets the workers fetch a topic paused by conveyor pause again: they
take its jobs at their next fetch. Resuming a topic that is not paused
changes nothing.

A --topic the namespace holds no trace of is an error (exit 1) that lists
the topics with close names.`
		cmd.Example = `  conveyor resume --topic orchestrate`
	}
	cmd.RunE = run(func(cmd *cobra.Command, _ []string) error {
		if err := a.requireRedis(cmd); err != nil {
			return err
		}
		if topic == "" {
			return usagef("--topic is required")
		}
		return a.withBroker(func(b broker.Broker) error {
			ctx := cmd.Context()
			if err := a.requireTopic(ctx, b, topic); err != nil {
				return err
			}
			p, ok := b.(broker.Pauser)
			if !ok {
				return fmt.Errorf("the %T broker cannot pause topics", b)
			}
			var err error
			if pause {
				err = p.Pause(ctx, topic)
			} else {
				err = p.Resume(ctx, topic)
			}
			if err != nil {
				return fmt.Errorf("%s %s: %w", verb, printable(topic), err)
			}
			if asJSON {
				return writeJSON(a.stdout, struct {
					Topic  string `json:"topic"`
					Paused bool   `json:"paused"`
				}{topic, pause})
			}
			if pause {
				_, err = fmt.Fprintf(a.stdout, "%s %s: no worker fetches its jobs until conveyor resume --topic %s\n", done, printable(topic), printable(topic))
			} else {
				_, err = fmt.Fprintf(a.stdout, "%s %s: workers fetch its jobs again\n", done, printable(topic))
			}
			return err
		})
	})
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic to "+verb+" (required)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
