package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
)

// cancel relies on this power of the Redis broker.
var _ broker.Canceller = (*redis.Broker)(nil)

func newCancelCmd(a *app) *cobra.Command {
	var (
		topic, id string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "cancel",
		Short: "Cancel a queued, delayed or running job by ID; it ends in the dead-letter topic with reason cancelled",
		Long: `cancel stops a job that has not finished, found by its job ID (as
produce prints it; for a job published without an ID, its stream entry ID).
Nothing vanishes: a cancelled job ends in its dead-letter topic (T.dlq) with
reason "cancelled", where dlq show, replay and purge reach it.

  queued   (waiting in the stream): removed and dead-lettered now.
  delayed  (waiting for its due time, or for its next retry): removed and
           dead-lettered now.
  running  (delivered to a worker, not yet settled): a cancel request is
           recorded. The worker ends the handler's context within about a
           second (server.Options.CancelInterval) and, when the handler
           returns, dead-letters the job with reason cancelled whatever it
           returned, unless it returned no error: the work was done, and
           the job is acknowledged ("finished before its cancel reached
           it" in the worker's log). If the worker dies first, the worker
           that recovers the job cancels it, while the request lasts
           (10 minutes by default).

The job is looked up by a scan of the topic's stream and delayed set, at
most 100,000 entries of each: fine for an operator, not for a program's hot
path.

Exit codes: 0 cancelled (queued, delayed) or requested (running); 1 no such
job in the topic (never published, or finished already: acknowledged or
dead-lettered).`,
		Example: `  conveyor cancel --topic orchestrate --id 5f0c9d1e-7c1b-4b7e-9d55-0c6f1f6a2b11
  conveyor cancel --topic orchestrate --id 1732590000000-0 --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			notFound := fmt.Sprintf("no job %s in %s: it was never published there, or it has finished (acknowledged, or dead-lettered: see conveyor dlq show --topic %s --id %s)",
				printable(id), printable(topic), printable(topic), printable(id))
			return a.withJob(cmd, topic, id, notFound, func(ctx context.Context, b broker.Broker) error {
				c, ok := b.(broker.Canceller)
				if !ok {
					return fmt.Errorf("the %T broker cannot cancel jobs", b)
				}
				res, err := c.Cancel(ctx, topic, id)
				if err != nil {
					return err
				}
				outcome := "cancelled"
				if res == broker.CancelRequested {
					outcome = "requested"
				}
				if asJSON {
					return writeJSON(a.stdout, struct {
						Topic   string `json:"topic"`
						ID      string `json:"id"`
						State   string `json:"state"`
						Outcome string `json:"outcome"`
					}{topic, id, res.String(), outcome})
				}
				dlq := printable(job.DeadLetterTopic(topic))
				if res == broker.CancelRequested {
					_, err = fmt.Fprintf(a.stdout, "job %s of %s is running: cancel requested; its worker ends the handler's context within about a second and moves the job to %s with reason cancelled when the handler returns (unless it returns no error: then the job completed)\n",
						printable(id), printable(topic), dlq)
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "cancelled %s job %s of %s: moved to %s with reason cancelled\n", res, printable(id), printable(topic), dlq)
				return err
			})
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic of the job (required)")
	f.StringVar(&id, "id", "", "job ID to cancel (required)")
	f.BoolVar(&asJSON, "json", false, `print the result as JSON: {"topic","id","state":"queued|delayed|running","outcome":"cancelled|requested"}`)
	return cmd
}

// withJob runs f, a command's work on the job id of topic (both flags
// required), with a broker. An error of f wrapping broker.ErrNotFound
// becomes the message that the topic does not exist when it does not, and
// notFound when it does.
func (a *app) withJob(cmd *cobra.Command, topic, id, notFound string, f func(ctx context.Context, b broker.Broker) error) error {
	if err := a.requireRedis(cmd); err != nil {
		return err
	}
	if topic == "" {
		return usagef("--topic is required")
	}
	if id == "" {
		return usagef("--id is required (the job ID produce printed)")
	}
	return a.withBroker(func(b broker.Broker) error {
		ctx := cmd.Context()
		err := f(ctx, b)
		if errors.Is(err, broker.ErrNotFound) {
			if msg, merr := a.missingTopic(ctx, b, topic); merr == nil && msg != "" {
				return errors.New(msg)
			}
			return errors.New(notFound)
		}
		return err
	})
}
