package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/job"
)

// jobView is a job as consume and dlq print it with --json. Exactly one of
// the payload fields is set: Payload when the payload is JSON, else
// PayloadText when it is UTF-8 text (empty included), else PayloadBase64.
type jobView struct {
	ID            string            `json:"id"`
	Topic         string            `json:"topic"`
	Attempt       int               `json:"attempt"`
	EnqueuedAt    time.Time         `json:"enqueued_at"`
	Headers       map[string]string `json:"headers,omitempty"`
	UniqueKey     string            `json:"unique_key,omitempty"`
	Payload       json.RawMessage   `json:"payload,omitempty"`
	PayloadText   *string           `json:"payload_text,omitempty"`
	PayloadBase64 string            `json:"payload_base64,omitempty"`
	Failure       *failureView      `json:"failure,omitempty"`
}

type failureView struct {
	Error   string    `json:"error"`
	Reason  string    `json:"reason"`
	Handler string    `json:"handler,omitempty"`
	Origin  string    `json:"origin,omitempty"`
	At      time.Time `json:"at"`
	Stack   string    `json:"stack,omitempty"` // a panicking handler's stack
}

func viewOf(j *job.Job) jobView {
	v := jobView{ID: j.ID, Topic: j.Topic, Attempt: j.Attempt, EnqueuedAt: j.EnqueuedAt.UTC(), Headers: j.Headers, UniqueKey: j.UniqueKey}
	v.Payload, v.PayloadText, v.PayloadBase64 = bodyOf(j.Payload)
	v.Failure = failureViewOf(j.Failure)
	return v
}

// bodyOf is how a payload or a result shows in JSON: as it is when it is
// JSON, as text when it is UTF-8 (empty included), else in base64.
func bodyOf(p []byte) (doc json.RawMessage, text *string, b64 string) {
	switch {
	case isJSON(p):
		return json.RawMessage(p), nil, ""
	case utf8.Valid(p):
		s := string(p)
		return nil, &s, ""
	default:
		return nil, nil, base64.StdEncoding.EncodeToString(p)
	}
}

// failureViewOf is f's JSON view; nil for no failure.
func failureViewOf(f *job.Failure) *failureView {
	if f == nil {
		return nil
	}
	return &failureView{Error: f.Error, Reason: f.Reason, Handler: f.Handler, Origin: f.Origin, At: f.At.UTC(), Stack: f.Stack}
}

// printBody prints p (a payload or a result) under name for a person: JSON
// indented, other text indented, anything else in base64, labelled with
// what it is.
func (a *app) printBody(name string, p []byte) {
	label, text := payloadLabel(p)
	if len(p) == 0 {
		fmt.Fprintf(a.stdout, "%s%s\n", name, label)
		return
	}
	fmt.Fprintf(a.stdout, "%s%s:\n", name, label)
	var pretty bytes.Buffer
	if isJSON(p) && json.Indent(&pretty, p, "  ", "  ") == nil {
		text = pretty.String()
	} else {
		text = indentLines(text, "  ")
	}
	fmt.Fprintf(a.stdout, "  %s\n", printableText(text))
}

// isJSON reports whether p is a JSON document (an empty payload is not).
func isJSON(p []byte) bool { return len(p) > 0 && json.Valid(p) }

// payloadLabel returns what follows "payload" in text output, so that a
// payload that is not JSON is never mistaken for one that is: "" for JSON,
// " (empty)", " (not JSON, 8 bytes)" for UTF-8 text, or " (not JSON, not
// UTF-8, 3 bytes, base64)"; and the payload as text to print (base64 when
// it is not UTF-8).
func payloadLabel(p []byte) (label, text string) {
	switch {
	case len(p) == 0:
		return " (empty)", ""
	case isJSON(p):
		return "", string(p)
	case utf8.Valid(p):
		return fmt.Sprintf(" (not JSON, %s)", plural(len(p), "byte", "bytes")), string(p)
	default:
		return fmt.Sprintf(" (not JSON, not UTF-8, %s, base64)", plural(len(p), "byte", "bytes")), base64.StdEncoding.EncodeToString(p)
	}
}

// indentLines puts indent before every line of s but the first.
func indentLines(s, indent string) string {
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}

// printJob writes j for people: a line of facts, its headers, its payload.
func printJob(w io.Writer, j *job.Job) {
	fmt.Fprintf(w, "job %s  topic=%s  attempt=%d  enqueued=%s\n", printable(j.ID), printable(j.Topic), j.Attempt, j.EnqueuedAt.UTC().Format(time.RFC3339))
	if len(j.Headers) > 0 {
		var hs []string
		for _, k := range slices.Sorted(maps.Keys(j.Headers)) {
			hs = append(hs, printable(k)+"="+printable(j.Headers[k]))
		}
		fmt.Fprintf(w, "  headers: %s\n", strings.Join(hs, " "))
	}
	label, text := payloadLabel(j.Payload)
	if len(j.Payload) == 0 {
		fmt.Fprintf(w, "  payload%s\n", label)
		return
	}
	fmt.Fprintf(w, "  payload%s: %s\n", label, indentLines(printableText(text), "    "))
}

// leaveGroup deletes the consumer b read topics as from the consumer group,
// where it holds nothing: a one-shot reader leaves no consumer behind. A
// consumer still holding a job (its acknowledgement failed) is kept, for
// the job to be recovered after its lease; the check and the deletion are
// one atomic step. Failures are warnings: the jobs are settled already.
func (a *app) leaveGroup(ctx context.Context, b broker.Broker, topics []string) {
	del, ok := b.(consumerDeleter)
	rb, isRedis := b.(*redis.Broker)
	if !ok || !isRedis {
		return
	}
	o := rb.Options()
	for _, t := range topics {
		_, err := del.DeleteIdleConsumer(ctx, t, o.Group, o.Consumer, 0)
		if err != nil && !errors.Is(err, broker.ErrNotFound) {
			fmt.Fprintf(a.stderr, "warning: could not remove consumer %s from group %s of %s: %v\n", printable(o.Consumer), printable(o.Group), printable(t), err)
		}
	}
}

func newConsumeCmd(a *app) *cobra.Command {
	var (
		topics  []string
		count   int
		timeout time.Duration
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Read jobs from a topic, print them and acknowledge them",
		Long: `consume fetches jobs from one or more topics as a member of the consumer group
(redis.group, REDIS_CONSUMER), prints each one (ID, attempt, headers,
payload) and acknowledges it: the job is done and removed. It stops after
--count jobs (0: no limit) or when --timeout passes.

A payload that is not JSON is marked "payload (not JSON, N bytes)" (shown in
base64 when it is not UTF-8 text); with --json it is under "payload_text" (or
"payload_base64") instead of "payload", which holds JSON payloads as they are.

It exits with status 1 when the timeout passes before --count jobs arrived.
A topic the namespace holds no trace of yet is not an error, since a
producer may be about to publish to it: consume warns on stderr, naming the
topics with close names, and waits.
Use it to check that producers and workers agree on REDIS_NAMESPACE and the
topic name; on a topic that workers serve, it takes jobs away from them.

On exit it removes its consumer (REDIS_CONSUMER) from the group of each
topic when the consumer holds nothing, so runs leave no consumer behind
(see conveyor consumers).`,
		Example: `  conveyor consume --topic orchestrate
  conveyor consume --topic orchestrate --count 10 --timeout 1m
  conveyor consume --topic orchestrate.dlq --json     # read dead letters as jobs`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			if len(topics) == 0 {
				return usagef("--topic is required")
			}
			for _, t := range topics {
				if err := a.checkTopic(t); err != nil {
					return err
				}
			}
			if count < 0 {
				return usagef("--count must not be negative")
			}
			return a.withBroker(func(b broker.Broker) error {
				ctx, cancel := commandContext(cmd.Context(), timeout)
				defer cancel()
				defer a.leaveGroup(context.WithoutCancel(ctx), b, topics)
				// A topic nobody has published to yet is not an error:
				// consume is how one checks that a producer about to
				// start reaches the worker. A warning catches a typo.
				for _, t := range topics {
					msg, err := a.missingTopic(ctx, b, t)
					if err != nil {
						return err
					}
					if msg != "" {
						fmt.Fprintf(a.stderr, "warning: %s; waiting for jobs on it anyway\n", msg)
					}
				}
				n := 0
				for count == 0 || n < count {
					max := 10
					if count > 0 {
						max = min(max, count-n)
					}
					ds, err := b.Fetch(ctx, topics, max)
					if err != nil {
						if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
							break
						}
						return err
					}
					for _, d := range ds {
						if asJSON {
							if err := json.NewEncoder(a.stdout).Encode(viewOf(&d.Job)); err != nil {
								return err
							}
						} else {
							printJob(a.stdout, &d.Job)
						}
					}
					if len(ds) > 0 {
						// Acknowledge even when ctx has just ended: these
						// jobs were printed.
						if err := b.Ack(context.WithoutCancel(ctx), ds...); err != nil {
							return fmt.Errorf("acknowledge: %w", err)
						}
					}
					n += len(ds)
				}
				if count > 0 && n < count {
					return fmt.Errorf("timed out after %v: consumed %d of %s from %s", timeout, n, plural(count, "job", "jobs"), strings.Join(topics, ", "))
				}
				if !asJSON && count == 0 {
					fmt.Fprintf(a.stderr, "consumed %s\n", plural(n, "job", "jobs"))
				}
				return nil
			})
		}),
	}
	f := cmd.Flags()
	f.StringArrayVarP(&topics, "topic", "t", nil, "topic to read (repeatable)")
	f.IntVarP(&count, "count", "n", 1, "stop after this many jobs (0: no limit)")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "stop waiting after this long (0: never)")
	f.BoolVar(&asJSON, "json", false, "print each job as a line of JSON")
	return cmd
}
