package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
)

// job show relies on this power of the Redis broker.
var _ broker.JobReader = (*redis.Broker)(nil)

func newJobCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job",
		Short: "Show one job by ID: its state, progress and result",
		Long: `job works on one job found by its ID.

  show    the job's state (delayed, queued, running, succeeded, dead), its
          attempt, the progress a running job reported, the result a
          succeeded job recorded, and the failure of a dead or retried job`,
		Example: `  conveyor job show --topic orchestrate --id 5f0c9d1e-7c1b-4b7e-9d55-0c6f1f6a2b11`,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(newJobShowCmd(a))
	return cmd
}

// jobStateView is the JSON form of a job's state.
type jobStateView struct {
	Topic      string        `json:"topic"`
	ID         string        `json:"id"`
	State      string        `json:"state"`
	Attempt    int           `json:"attempt"`
	Entry      string        `json:"entry,omitempty"`
	EnqueuedAt *time.Time    `json:"enqueued_at,omitempty"`
	Due        *time.Time    `json:"due,omitempty"`
	FinishedAt *time.Time    `json:"finished_at,omitempty"`
	ExpiresAt  *time.Time    `json:"expires_at,omitempty"`
	Progress   *progressView `json:"progress,omitempty"`
	// Result holds a JSON result as it is; ResultText a result that is
	// UTF-8 text but not JSON; ResultBase64 any other.
	Result       json.RawMessage `json:"result,omitempty"`
	ResultText   *string         `json:"result_text,omitempty"`
	ResultBase64 string          `json:"result_base64,omitempty"`
	Failure      *failureView    `json:"failure,omitempty"`
}

type progressView struct {
	Fraction float64   `json:"fraction"`
	Message  string    `json:"message"`
	At       time.Time `json:"at"`
}

// timePtr returns &t in UTC, or nil for the zero time.
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func viewOfJobState(js *broker.JobState) jobStateView {
	v := jobStateView{
		Topic: js.Topic, ID: js.ID, State: js.State, Attempt: js.Attempt, Entry: js.Receipt,
		EnqueuedAt: timePtr(js.EnqueuedAt), Due: timePtr(js.Due),
		FinishedAt: timePtr(js.FinishedAt), ExpiresAt: timePtr(js.ExpiresAt),
	}
	if p := js.Progress; p != nil {
		v.Progress = &progressView{Fraction: p.Fraction, Message: p.Message, At: p.At.UTC()}
	}
	if js.Result != nil {
		v.Result, v.ResultText, v.ResultBase64 = bodyOf(js.Result)
	}
	v.Failure = failureViewOf(js.Failure)
	return v
}

func newJobShowCmd(a *app) *cobra.Command {
	var (
		topic, id string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a job's state, attempt, progress, result and failure",
		Long: `show finds the job with --id in --topic and prints where it is:

  delayed    waiting for its due time (published with a delay, retried or
             snoozed); the due time and the last failure are shown
  queued     waiting for a worker
  running    delivered to a worker and not settled; with the progress the
             handler last reported (job.Progress), written at most once a
             second
  succeeded  acknowledged with a result (job.SetResult); the result is kept
             for redis.result_retention (24h by default) after the job
             succeeded
  dead       in the dead-letter topic, with its failure

A job acknowledged without a result is not kept: once it succeeded, show
reports that no such job is held (exit 1), as for an unknown ID or a result
that expired. The result is printed pretty when it is JSON, as escaped text
otherwise ("result (not JSON, N bytes)"); with --json, a JSON result is under
"result" as it is, text under "result_text", other bytes under
"result_base64".

Only a succeeded job is found without a scan; the other states are found by
a scan of the topic's stream, delayed set and dead-letter stream (at most
100,000 entries of each): fine for an operator.

Exit codes: 0 found; 1 no such job held (or Redis unreachable).`,
		Example: `  conveyor job show --topic orchestrate --id 5f0c9d1e-7c1b-4b7e-9d55-0c6f1f6a2b11
  conveyor job show --topic orchestrate --id 5f0c9d1e-7c1b-4b7e-9d55-0c6f1f6a2b11 --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			notFound := fmt.Sprintf("no job %s held in %s: never published there, acknowledged without a result (such jobs are not kept), or its result expired",
				printable(id), printable(topic))
			return a.withJob(cmd, topic, id, notFound, func(ctx context.Context, b broker.Broker) error {
				r, ok := b.(broker.JobReader)
				if !ok {
					return fmt.Errorf("the %T broker cannot look jobs up", b)
				}
				js, err := r.JobState(ctx, topic, id)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, viewOfJobState(js))
				}
				printJobState(a, js)
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic of the job (required)")
	f.StringVar(&id, "id", "", "job ID (required)")
	f.BoolVar(&asJSON, "json", false, `print the job as JSON: {"topic","id","state","attempt","progress","result"|"result_text"|"result_base64","failure",…}`)
	return cmd
}

// progressBar draws fraction as a bar of width cells and a percentage.
func progressBar(fraction float64, width int) string {
	fraction = min(max(fraction, 0), 1)
	n := int(fraction*float64(width) + 0.5)
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + fmt.Sprintf("] %3.0f%%", fraction*100)
}

func printJobState(a *app, js *broker.JobState) {
	tw := newTable(a.stdout)
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	fmt.Fprintf(tw, "job id\t%s\n", printable(js.ID))
	fmt.Fprintf(tw, "topic\t%s\n", printable(js.Topic))
	fmt.Fprintf(tw, "state\t%s\n", js.State)
	fmt.Fprintf(tw, "attempt\t%d\n", js.Attempt)
	if js.Receipt != "" {
		fmt.Fprintf(tw, "entry\t%s\n", printable(js.Receipt))
	}
	if !js.EnqueuedAt.IsZero() {
		fmt.Fprintf(tw, "enqueued at\t%s\n", rfc(js.EnqueuedAt))
	}
	if !js.Due.IsZero() {
		fmt.Fprintf(tw, "due\t%s\n", rfc(js.Due))
	}
	if !js.FinishedAt.IsZero() {
		fmt.Fprintf(tw, "finished at\t%s\n", rfc(js.FinishedAt))
	}
	if !js.ExpiresAt.IsZero() {
		fmt.Fprintf(tw, "result kept until\t%s\n", rfc(js.ExpiresAt))
	}
	switch p := js.Progress; {
	case p != nil:
		line := progressBar(p.Fraction, 20)
		if p.Message != "" {
			line += "  " + printable(p.Message)
		}
		fmt.Fprintf(tw, "progress\t%s (at %s)\n", line, rfc(p.At))
	case js.State == broker.StateRunning:
		fmt.Fprintf(tw, "progress\tnone reported\n")
	}
	if f := js.Failure; f != nil {
		fmt.Fprintf(tw, "failed at\t%s\n", rfc(f.At))
		fmt.Fprintf(tw, "reason\t%s\n", printable(f.Reason))
		if f.Handler != "" {
			fmt.Fprintf(tw, "handler\t%s\n", printable(f.Handler))
		}
		fmt.Fprintf(tw, "error\t%s\n", printable(f.Error))
	}
	_ = tw.Flush()
	if js.State != broker.StateSucceeded {
		return
	}
	a.printBody("result", js.Result)
}
