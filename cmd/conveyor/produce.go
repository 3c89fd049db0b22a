package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
)

// produceBatch is how many jobs one PublishBatch call carries.
const produceBatch = 500

// progressMin is the smallest count that shows a progress bar.
const progressMin = 1000

// listMax is the largest count whose IDs produce prints one per line;
// above it, it prints the count.
const listMax = 20

func newProduceCmd(a *app) *cobra.Command {
	var (
		topic, payload, file, id string
		uniqueKey                string
		key                      string
		count                    int
		delay, uniqueFor         time.Duration
		headers                  []string
		raw, asJSON              bool
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Publish jobs to a topic",
		Long: `produce publishes a job to a topic: the payload from --payload, from a file
(--file F, or --file - for standard input). Payloads must be JSON unless
--raw is given. With --count N it publishes N copies in batches (a progress
bar shows on a terminal for large counts); --delay makes them due later.

It prints the job IDs (one per line), or the count when there are more than
20; --json prints {"topic", "count", "ids"}.

--unique-key K makes the job unique in its topic: while a job with key K is
delayed, queued, running or waiting to retry, produce publishes nothing,
prints the ID of that job (--json: {"topic", "count": 0, "ids": [],
"existing_id"}), says so on standard error and exits with status 3.
The key is released when the job succeeds or is dead-lettered;
--unique-for D keeps it after success until D after the job was first
enqueued ("at most once per D").

--key K gives the jobs an ordering key (a tenant, a conversation): on a
topic split into partitions (conveyor topic partitions) the jobs of one key
go to one partition and are fetched in the order they were published.`,
		Example: `  conveyor produce --topic orchestrate --payload '{"prompt":"summarise the report"}'
  conveyor produce --topic orchestrate --file job.json --header tenant=acme
  conveyor produce --topic orchestrate --payload '{"fail":true}'      # demo a retry, then a dead letter
  conveyor produce --topic ingest --payload '{"n":1}' --count 10000 --delay 1m
  echo 'plain text' | conveyor produce --topic notes --file - --raw
  conveyor produce --topic reports --payload '{"day":"2026-12-06"}' --unique-key report-2026-12-06 --unique-for 24h`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			if topic == "" {
				return usagef("--topic is required")
			}
			if err := a.checkTopic(topic); err != nil {
				return err
			}
			if count < 1 {
				return usagef("--count must be at least 1, not %d", count)
			}
			if delay < 0 {
				return usagef("--delay must not be negative")
			}
			body, err := readPayload(a, payload, file, cmd.Flags().Changed("payload"))
			if err != nil {
				return err
			}
			if !raw && !json.Valid(body) {
				return usagef("the payload is not valid JSON (use --raw to send it as it is)")
			}
			hs, err := parseHeaders(headers)
			if err != nil {
				return err
			}
			if id != "" && count > 1 {
				return usagef("--id names one job: it cannot be used with --count")
			}
			if uniqueKey != "" && count > 1 {
				return usagef("--unique-key names one job: it cannot be used with --count")
			}
			if uniqueFor != 0 && uniqueKey == "" {
				return usagef("--unique-for needs --unique-key")
			}
			if uniqueFor < 0 || uniqueFor > broker.MaxUniqueFor {
				return usagef("--unique-for must be between 0 and %v, not %v", broker.MaxUniqueFor, uniqueFor)
			}
			return a.withBroker(func(b broker.Broker) error {
				bar := newProgress(a.stderr, "publishing", count, count >= progressMin && a.isTerminal != nil && a.isTerminal(a.stderr))
				m := broker.Message{Topic: topic, Payload: body, Headers: hs, Delay: delay, ID: id, UniqueKey: uniqueKey, UniqueFor: uniqueFor, Key: key}
				if uniqueKey != "" {
					bar.finish()
					return publishUnique(cmd.Context(), a, b, m, asJSON)
				}
				ids, err := publishCopies(cmd.Context(), b, m, count, bar)
				bar.finish()
				if err != nil {
					return fmt.Errorf("published %d of %s to %s: %w", len(ids), plural(count, "job", "jobs"), topic, err)
				}
				switch {
				case asJSON:
					return writeJSON(a.stdout, struct {
						Topic string   `json:"topic"`
						Count int      `json:"count"`
						IDs   []string `json:"ids"`
					}{topic, len(ids), ids})
				case len(ids) > listMax:
					_, err := fmt.Fprintf(a.stdout, "published %s to %s\n", plural(len(ids), "job", "jobs"), topic)
					return err
				default:
					_, err := fmt.Fprintln(a.stdout, strings.Join(ids, "\n"))
					return err
				}
			})
		}),
	}
	f := cmd.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic to publish to (required)")
	f.StringVarP(&payload, "payload", "p", "", "the job's payload (JSON unless --raw)")
	f.StringVarP(&file, "file", "f", "", "read the payload from this file (- for standard input)")
	f.IntVarP(&count, "count", "n", 1, "number of jobs to publish")
	f.DurationVar(&delay, "delay", 0, "make the jobs due after this long (such as 30s)")
	f.StringArrayVarP(&headers, "header", "H", nil, "header name=value (repeatable)")
	f.StringVar(&id, "id", "", "job ID (default: generated)")
	f.StringVar(&key, "key", "", "ordering key: jobs of one key keep their order on a partitioned topic")
	f.StringVar(&uniqueKey, "unique-key", "", "publish only if no job of the topic holds this key (exit 3 and print the holder's ID if one does)")
	f.DurationVar(&uniqueFor, "unique-for", 0, "keep the unique key after success until this long after the first enqueue (such as 1h)")
	f.BoolVar(&raw, "raw", false, "send the payload as it is, without checking that it is JSON")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// publishUnique publishes m, which has a unique key, and prints its ID; when
// another job holds the key, it prints that job's ID and returns an error
// with exit code exitDuplicate.
func publishUnique(ctx context.Context, a *app, p broker.Publisher, m broker.Message, asJSON bool) error {
	id, err := p.Publish(ctx, m)
	dup := errors.Is(err, broker.ErrDuplicate)
	if err != nil && !dup {
		return fmt.Errorf("published 0 of 1 job to %s: %w", m.Topic, err)
	}
	if asJSON {
		out := struct {
			Topic      string   `json:"topic"`
			Count      int      `json:"count"`
			IDs        []string `json:"ids"`
			ExistingID string   `json:"existing_id,omitempty"`
		}{Topic: m.Topic, Count: 1, IDs: []string{id}}
		if dup {
			out.Count, out.IDs, out.ExistingID = 0, []string{}, id
		}
		if werr := writeJSON(a.stdout, out); werr != nil {
			return werr
		}
	} else if _, werr := fmt.Fprintln(a.stdout, printableText(id)); werr != nil {
		return werr
	}
	if dup {
		return &exitError{code: exitDuplicate, err: fmt.Errorf("%w; nothing published", err)}
	}
	return nil
}

// publishCopies publishes count copies of m to p in batches of
// produceBatch, adding each batch's confirmed jobs to bar, and returns the
// IDs of the jobs enqueued. It stops at the first error: on a partial
// failure (broker.BatchError) the jobs not confirmed have no ID, and only
// those enqueued are returned.
func publishCopies(ctx context.Context, p broker.Publisher, m broker.Message, count int, bar *progress) ([]string, error) {
	ids := make([]string, 0, count)
	for len(ids) < count {
		ms := make([]broker.Message, min(produceBatch, count-len(ids)))
		for i := range ms {
			ms[i] = m
		}
		got, err := p.PublishBatch(ctx, ms)
		got = slices.DeleteFunc(got, func(id string) bool { return id == "" })
		ids = append(ids, got...)
		bar.add(len(got))
		if err != nil {
			return ids, err
		}
	}
	return ids, nil
}

// readPayload returns the payload from --payload or --file.
func readPayload(a *app, payload, file string, payloadSet bool) ([]byte, error) {
	switch {
	case payloadSet && file != "":
		return nil, usagef("give --payload or --file, not both")
	case payloadSet:
		return []byte(payload), nil
	case file == "-":
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		return b, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, usageError(err)
			}
			return nil, err
		}
		return b, nil
	default:
		return nil, usagef("give the payload with --payload JSON or --file F")
	}
}

// parseHeaders turns name=value flags into a map.
func parseHeaders(hs []string) (map[string]string, error) {
	if len(hs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		name, value, ok := strings.Cut(h, "=")
		if !ok || strings.TrimSpace(name) == "" {
			return nil, usagef("--header %q: write name=value", h)
		}
		out[strings.TrimSpace(name)] = value
	}
	return out, nil
}
