package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// dlqFlags are the flags the dlq subcommands share.
type dlqFlags struct {
	topic  string
	ids    []string
	all    bool
	dryRun bool
	limit  int
	asJSON bool
	yes    bool
}

// origin returns the topic whose dead letters to manage: --topic, with a
// trailing ".dlq" accepted.
func (f *dlqFlags) origin() (string, error) {
	t := strings.TrimSuffix(f.topic, job.DeadLetterSuffix)
	if t == "" {
		return "", usagef("--topic is required (the topic the jobs failed on, such as orchestrate)")
	}
	return t, nil
}

// selection checks that exactly one of --id and --all is given.
func (f *dlqFlags) selection() error {
	switch {
	case len(f.ids) > 0 && f.all:
		return usagef("give --id or --all, not both")
	case len(f.ids) == 0 && !f.all:
		return usagef("say which dead letters: --id ID (repeatable) or --all")
	}
	return nil
}

// deadLetterAdmin returns b's DeadLetterAdmin, or an error saying the
// backend has none.
func deadLetterAdmin(b broker.Broker) (broker.DeadLetterAdmin, error) {
	if adm, ok := b.(broker.DeadLetterAdmin); ok {
		return adm, nil
	}
	return nil, fmt.Errorf("the %T broker cannot manage dead letters", b)
}

func newDLQCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "List, show, replay and purge dead letters",
		Long: `dlq manages the dead letters of a topic: jobs that failed on their last
attempt, failed permanently, could not be decoded, had no handler, or were
delivered too many times. They live in <topic>.dlq with the error, the
reason, the attempts and the time of the failure.

  list    a table of dead letters, oldest first
  show    dead letters in full (by dead letter ID or job ID), payload
          pretty-printed
  replay  move dead letters back to the topic, attempts reset to 1
  purge   delete dead letters for good (--all asks first, or needs --yes)

A --topic the namespace holds no trace of is an error (exit 1) that lists
the topics with close names.

Payloads are shown as consume shows them: a payload that is not JSON is
marked "payload (not JSON, N bytes)", and --json puts it under
"payload_text" (or "payload_base64" when it is not UTF-8) instead of
"payload". Text that producers control (job IDs, headers, errors, reasons,
payloads) is printed with control characters escaped (\x1b, \u009b);
--json prints it as it is.`,
		Example: `  conveyor dlq list --topic orchestrate
  conveyor dlq show --topic orchestrate --id 1732590000000-0
  conveyor dlq replay --topic orchestrate --all --dry-run
  conveyor dlq replay --topic orchestrate --all
  conveyor dlq purge --topic orchestrate --id 1732590000000-0`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newDLQListCmd(a), newDLQShowCmd(a), newDLQReplayCmd(a), newDLQPurgeCmd(a))
	return cmd
}

func addTopicFlag(cmd *cobra.Command, f *dlqFlags) {
	cmd.Flags().StringVarP(&f.topic, "topic", "t", "", "topic the jobs failed on (required); orchestrate and orchestrate.dlq both work")
}

func newDLQListCmd(a *app) *cobra.Command {
	var f dlqFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List dead letters: id, job id, attempts, reason, error, failed at",
		Example: `  conveyor dlq list --topic orchestrate
  conveyor dlq list --topic orchestrate --limit 500 --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			topic, err := f.origin()
			if err != nil {
				return err
			}
			if f.limit < 1 {
				return usagef("--limit must be at least 1")
			}
			return a.withBroker(func(b broker.Broker) error {
				adm, err := deadLetterAdmin(b)
				if err != nil {
					return err
				}
				if err := a.requireTopic(cmd.Context(), b, topic); err != nil {
					return err
				}
				dls, err := adm.DeadLetters(cmd.Context(), topic, "", f.limit)
				if err != nil {
					return err
				}
				if f.asJSON {
					views := make([]deadLetterView, len(dls))
					for i := range dls {
						views[i] = deadLetterView{ID: dls[i].ID, Job: viewOf(&dls[i].Job)}
					}
					return writeJSON(a.stdout, views)
				}
				if len(dls) == 0 {
					_, err := fmt.Fprintf(a.stdout, "no dead letters for %s\n", topic)
					return err
				}
				printDeadLetters(a, dls)
				if len(dls) == f.limit {
					fmt.Fprintf(a.stderr, "(first %d shown; use --limit to see more)\n", f.limit)
				}
				return nil
			})
		}),
	}
	addTopicFlag(cmd, &f)
	cmd.Flags().IntVar(&f.limit, "limit", 50, "list at most this many")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print as JSON")
	return cmd
}

// deadLetterView is a dead letter as --json prints it.
type deadLetterView struct {
	ID  string  `json:"id"`
	Job jobView `json:"job"`
}

func printDeadLetters(a *app, dls []broker.DeadLetter) {
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "ID\tJOB ID\tATTEMPTS\tREASON\tERROR\tFAILED AT")
	for _, dl := range dls {
		reason, errText, at := "-", "-", "-"
		if f := dl.Job.Failure; f != nil {
			reason, errText = orDash(printable(f.Reason)), orDash(printable(truncate(f.Error, 50)))
			if !f.At.IsZero() {
				at = f.At.UTC().Format(time.RFC3339)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", dl.ID, printable(dl.Job.ID), dl.Job.Attempt, reason, errText, at)
	}
	_ = tw.Flush()
}

func newDLQShowCmd(a *app) *cobra.Command {
	var f dlqFlags
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show dead letters in full, payload pretty-printed",
		Long: `show prints dead letters in full: IDs, attempts, times, the failure, the
headers and the payload, pretty-printed when it is JSON.

--id takes a dead letter ID (as dlq list prints it) or a job ID. A dead
letter ID names one dead letter. A job ID names every dead letter of that job
(a job replayed and failed again has several), and show prints them all,
oldest first, saying how many there are. A value that is both a dead letter
ID and another dead letter's job ID is taken as the dead letter ID.`,
		Example: `  conveyor dlq show --topic orchestrate --id 1732590000000-0
  conveyor dlq show --topic orchestrate --id 5f0c9d1e-7c1b-4b7e-9d55-0c6f1f6a2b11`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			topic, err := f.origin()
			if err != nil {
				return err
			}
			if len(f.ids) == 0 {
				return usagef("--id is required (see conveyor dlq list)")
			}
			return a.withBroker(func(b broker.Broker) error {
				adm, err := deadLetterAdmin(b)
				if err != nil {
					return err
				}
				ctx := cmd.Context()
				if err := a.requireTopic(ctx, b, topic); err != nil {
					return err
				}
				views := []deadLetterView{}
				shown := 0
				for _, id := range unique(f.ids) {
					dls, err := resolveDeadLetters(ctx, adm, topic, id)
					if err != nil {
						return err
					}
					if len(dls) == 0 {
						return fmt.Errorf("no dead letter or job %s in %s (see conveyor dlq list --topic %s)", printable(id), job.DeadLetterTopic(topic), topic)
					}
					if len(dls) > 1 && !f.asJSON {
						fmt.Fprintf(a.stderr, "job %s has %s in %s, oldest first\n", printable(id), plural(len(dls), "dead letter", "dead letters"), job.DeadLetterTopic(topic))
					}
					for i := range dls {
						if f.asJSON {
							views = append(views, deadLetterView{ID: dls[i].ID, Job: viewOf(&dls[i].Job)})
							continue
						}
						if shown > 0 {
							fmt.Fprintln(a.stdout)
						}
						printDeadLetter(a, &dls[i])
						shown++
					}
				}
				if f.asJSON {
					return writeJSON(a.stdout, views)
				}
				return nil
			})
		}),
	}
	addTopicFlag(cmd, &f)
	cmd.Flags().StringArrayVar(&f.ids, "id", nil, "dead letter ID or job ID (repeatable)")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print as JSON")
	return cmd
}

// resolveDeadLetters returns the dead letters of topic that id names: the
// one whose dead letter ID is id, if any; else every dead letter whose job
// ID is id, oldest first (a job dead-lettered, replayed and dead-lettered
// again has several); else none. Looking a job ID up reads the whole
// dead-letter topic.
func resolveDeadLetters(ctx context.Context, adm broker.DeadLetterAdmin, topic, id string) ([]broker.DeadLetter, error) {
	dl, err := adm.DeadLetterByID(ctx, topic, id)
	if err == nil {
		return []broker.DeadLetter{*dl}, nil
	}
	if !errors.Is(err, broker.ErrNotFound) {
		return nil, err
	}
	var out []broker.DeadLetter
	err = eachDeadLetter(ctx, adm, topic, func(dl *broker.DeadLetter) {
		if dl.Job.ID == id {
			out = append(out, *dl)
		}
	})
	return out, err
}

// deadLetterPage is how many dead letters one listing call reads when
// commands walk a whole dead-letter topic.
const deadLetterPage = 1000

// eachDeadLetter calls fn with every dead letter of topic, oldest first,
// reading them by pages.
func eachDeadLetter(ctx context.Context, adm broker.DeadLetterAdmin, topic string, fn func(*broker.DeadLetter)) error {
	after := ""
	for {
		page, err := adm.DeadLetters(ctx, topic, after, deadLetterPage)
		if err != nil {
			return err
		}
		for i := range page {
			fn(&page[i])
		}
		if len(page) < deadLetterPage {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

func printDeadLetter(a *app, dl *broker.DeadLetter) {
	j := &dl.Job
	tw := newTable(a.stdout)
	fmt.Fprintf(tw, "dead letter\t%s\n", dl.ID)
	fmt.Fprintf(tw, "job id\t%s\n", printable(j.ID))
	fmt.Fprintf(tw, "topic\t%s\n", printable(j.Topic))
	fmt.Fprintf(tw, "attempts\t%d\n", j.Attempt)
	fmt.Fprintf(tw, "enqueued at\t%s\n", j.EnqueuedAt.UTC().Format(time.RFC3339))
	if j.UniqueKey != "" {
		fmt.Fprintf(tw, "unique key\t%s\n", printable(j.UniqueKey))
	}
	if f := j.Failure; f != nil {
		fmt.Fprintf(tw, "failed at\t%s\n", f.At.UTC().Format(time.RFC3339))
		fmt.Fprintf(tw, "reason\t%s\n", printable(f.Reason))
		fmt.Fprintf(tw, "origin\t%s\n", printable(f.Origin))
		if f.Handler != "" {
			fmt.Fprintf(tw, "handler\t%s\n", printable(f.Handler))
		}
		fmt.Fprintf(tw, "error\t%s\n", printable(f.Error))
	}
	for _, k := range slices.Sorted(maps.Keys(j.Headers)) {
		fmt.Fprintf(tw, "header\t%s=%s\n", printable(k), printable(j.Headers[k]))
	}
	_ = tw.Flush()
	if f := j.Failure; f != nil && f.Stack != "" {
		fmt.Fprintf(a.stdout, "stack:\n  %s\n", indentLines(strings.TrimRight(f.Stack, "\n"), "  "))
	}
	a.printBody("payload", j.Payload)
}

// dlqChunk is how many IDs one replay or purge call carries when IDs are
// given, so that long runs show progress.
const dlqChunk = 500

// collect returns the dead letters --id or --all select, for --dry-run,
// and the IDs given with --id that are not dead letters of topic.
func collect(ctx context.Context, adm broker.DeadLetterAdmin, topic string, f *dlqFlags) ([]broker.DeadLetter, []string, error) {
	if !f.all {
		return find(ctx, adm, topic, f.ids)
	}
	var out []broker.DeadLetter
	err := eachDeadLetter(ctx, adm, topic, func(dl *broker.DeadLetter) { out = append(out, *dl) })
	return out, nil, err
}

// find looks ids up among the dead letters of topic: it returns those found
// and the IDs of the others.
func find(ctx context.Context, adm broker.DeadLetterAdmin, topic string, ids []string) (found []broker.DeadLetter, missing []string, err error) {
	for _, id := range ids {
		dl, err := adm.DeadLetterByID(ctx, topic, id)
		if errors.Is(err, broker.ErrNotFound) {
			missing = append(missing, id)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		found = append(found, *dl)
	}
	return found, missing, nil
}

// unique returns ids without repeats, in their first order.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool {
		dup := seen[id]
		seen[id] = true
		return dup
	})
}

// notFound is the error for the dead letters --id named that topic does not
// hold; tail says what was done with the others ("" for none).
func notFound(topic string, missing []string, tail string) error {
	msg := fmt.Sprintf("dead letter %s not found in %s (see conveyor dlq list --topic %s)",
		strings.Join(missing, ", "), job.DeadLetterTopic(topic), topic)
	if len(missing) > 1 {
		msg = "dead letters" + strings.TrimPrefix(msg, "dead letter")
	}
	if tail != "" {
		msg += "; " + tail
	}
	return errors.New(msg)
}

// dlqAction is what a command that changes the dead letters --id or --all
// select does (replay, purge); its verb is the command's name.
type dlqAction struct {
	past string // the verb in the past tense: "replayed"
	done string // the result line, given the count and the topic: "replayed %s to %s"
	// ask makes --all change nothing unless the operator confirms: on a
	// terminal the command asks, elsewhere it needs --yes.
	ask   bool
	apply func(adm broker.DeadLetterAdmin, ctx context.Context, topic string, ids []string) (int, error)
}

// newDLQActionCmd completes cmd, which holds the command's name and help,
// into a command doing act to the dead letters --id or --all select, with
// --dry-run and --json (and --yes when act asks).
func newDLQActionCmd(a *app, cmd *cobra.Command, act dlqAction) *cobra.Command {
	var f dlqFlags
	verb := cmd.Name()
	cmd.Args = cobra.NoArgs
	cmd.RunE = run(func(cmd *cobra.Command, _ []string) error {
		if err := a.requireRedis(cmd); err != nil {
			return err
		}
		topic, err := f.origin()
		if err != nil {
			return err
		}
		if err := f.selection(); err != nil {
			return err
		}
		f.ids = unique(f.ids)
		ctx := cmd.Context()
		return a.withBroker(func(b broker.Broker) error {
			adm, err := deadLetterAdmin(b)
			if err != nil {
				return err
			}
			if err := a.requireTopic(ctx, b, topic); err != nil {
				return err
			}
			if f.dryRun {
				return a.dlqDryRun(ctx, adm, topic, verb, &f)
			}
			if act.ask && f.all && !f.yes {
				if err := a.confirmAll(ctx, b, topic, verb); err != nil {
					return err
				}
			}
			n, missing, err := a.dlqApply(ctx, adm, topic, verb, &f, act)
			if err != nil {
				return fmt.Errorf("%s after %s: %w", verb, plural(n, "dead letter", "dead letters"), err)
			}
			return a.dlqReport(topic, verb, &f, act, n, missing)
		})
	})
	addTopicFlag(cmd, &f)
	cmd.Flags().StringArrayVar(&f.ids, "id", nil, "dead letter ID (repeatable)")
	cmd.Flags().BoolVar(&f.all, "all", false, "every dead letter of the topic")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "list what would be done, change nothing")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	if act.ask {
		cmd.Flags().BoolVarP(&f.yes, "yes", "y", false, "with --all, do it without asking (required when stdin is not a terminal)")
	}
	return cmd
}

// dlqDryRun prints the dead letters f selects, which verb would change.
func (a *app) dlqDryRun(ctx context.Context, adm broker.DeadLetterAdmin, topic, verb string, f *dlqFlags) error {
	dls, missing, err := collect(ctx, adm, topic, f)
	if err != nil {
		return err
	}
	switch {
	case f.asJSON:
		if err := writeJSON(a.stdout, struct {
			DryRun  bool     `json:"dry_run"`
			Topic   string   `json:"topic"`
			Count   int      `json:"count"`
			IDs     []string `json:"ids"`
			Missing []string `json:"missing,omitempty"`
		}{true, topic, len(dls), idsOf(dls), missing}); err != nil {
			return err
		}
	case f.all && len(dls) == 0:
		fmt.Fprintf(a.stdout, "dry run: no dead letters in %s: nothing to %s\n", job.DeadLetterTopic(topic), verb)
	case len(dls) > 0:
		fmt.Fprintf(a.stdout, "dry run: would %s %s of %s\n", verb, plural(len(dls), "dead letter", "dead letters"), topic)
		printDeadLetters(a, dls)
	}
	if len(missing) > 0 {
		return notFound(topic, missing, "")
	}
	return nil
}

// dlqApply does act to the dead letters f selects and returns how many it
// changed, with the IDs given with --id that are not dead letters of topic.
func (a *app) dlqApply(ctx context.Context, adm broker.DeadLetterAdmin, topic, verb string, f *dlqFlags, act dlqAction) (n int, missing []string, err error) {
	if f.all {
		if a.isTerminal != nil && a.isTerminal(a.stderr) {
			fmt.Fprintf(a.stderr, "%s: all dead letters of %s…\n", verb, topic)
		}
		n, err = act.apply(adm, ctx, topic, nil) // the broker snapshots the IDs first
		return n, nil, err
	}
	// Look the IDs up first: the broker skips unknown IDs without saying
	// which.
	bar := newProgress(a.stderr, verb, len(f.ids), len(f.ids) >= dlqChunk && a.isTerminal != nil && a.isTerminal(a.stderr))
	defer bar.finish()
	var dups []error
	for ids := range slices.Chunk(f.ids, dlqChunk) {
		found, lost, err := find(ctx, adm, topic, ids)
		if err != nil {
			return n, missing, err
		}
		missing = append(missing, lost...)
		if len(found) > 0 { // never nil: nil means all
			m, err := act.apply(adm, ctx, topic, idsOf(found))
			n += m
			if errors.Is(err, broker.ErrDuplicate) {
				// A replay refused for a unique job whose key another
				// job holds: the others go on.
				dups = append(dups, err)
			} else if err != nil {
				bar.add(len(ids))
				return n, missing, err
			}
		}
		bar.add(len(ids))
	}
	return n, missing, errors.Join(dups...)
}

// dlqReport prints the result of act: n dead letters of topic changed, and
// the IDs given with --id that were missing.
func (a *app) dlqReport(topic, verb string, f *dlqFlags, act dlqAction, n int, missing []string) error {
	switch {
	case f.asJSON:
		if err := writeJSON(a.stdout, struct {
			Topic   string   `json:"topic"`
			Count   int      `json:"count"`
			Missing []string `json:"missing,omitempty"`
		}{topic, n, missing}); err != nil {
			return err
		}
	case f.all && n == 0:
		fmt.Fprintf(a.stdout, "no dead letters in %s: nothing to %s\n", job.DeadLetterTopic(topic), verb)
	case n > 0 || len(missing) == 0:
		fmt.Fprintf(a.stdout, act.done+"\n", plural(n, "dead letter", "dead letters"), topic)
	}
	if len(missing) > 0 {
		tail := "nothing " + act.past
		if n > 0 {
			tail = act.past + " " + plural(n, "dead letter", "dead letters")
		}
		return notFound(topic, missing, tail)
	}
	return nil
}

// errNotConfirmed is the error of a destructive command the operator did not
// confirm at its question.
var errNotConfirmed = errors.New("not confirmed: nothing changed")

// confirmAll asks the operator to confirm that verb applies to every dead
// letter of topic, on a terminal; elsewhere it returns a usage error that
// asks for --yes. A topic without dead letters needs no confirmation.
func (a *app) confirmAll(ctx context.Context, b broker.Broker, topic, verb string) error {
	what := "every dead letter of " + topic
	if in, ok := b.(broker.Inspector); ok {
		info, err := in.Inspect(ctx, topic)
		if err != nil {
			return err
		}
		if info.DeadLetters == 0 {
			return nil
		}
		what = fmt.Sprintf("all %s of %s", plural(info.DeadLetters, "dead letter", "dead letters"), topic)
	}
	if a.stdinIsTerminal == nil || !a.stdinIsTerminal() {
		return usagef("%s --all would %s %s: pass --yes to confirm (stdin is not a terminal, so conveyor cannot ask)", verb, verb, what)
	}
	if !a.confirm(fmt.Sprintf("%s %s for good?", titleCase(verb), what)) {
		return errNotConfirmed
	}
	return nil
}

// titleCase returns s with its first letter in upper case.
func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func idsOf(dls []broker.DeadLetter) []string {
	ids := make([]string, len(dls))
	for i, dl := range dls {
		ids[i] = dl.ID
	}
	return ids
}

func newDLQReplayCmd(a *app) *cobra.Command {
	return newDLQActionCmd(a, &cobra.Command{
		Use:   "replay",
		Short: "Move dead letters back to their topic with attempts reset",
		Long: `replay moves dead letters back to the topic they failed on, as new jobs with
attempt 1 and no failure recorded; payload, ID, headers and first-enqueued
time are kept. With --all the IDs are snapshotted first, so a job that fails
again during the replay is not replayed twice. --dry-run lists what would
move. Fix the cause first, or the jobs will come back.

A dead letter of a unique job takes its unique key again; when another job
holds the key, that dead letter stays, the others are replayed, and replay
names it and the holder and exits with status 1.`,
		Example: `  conveyor dlq replay --topic orchestrate --all --dry-run
  conveyor dlq replay --topic orchestrate --all
  conveyor dlq replay --topic orchestrate --id 1732590000000-0 --id 1732590000001-0`,
	}, dlqAction{past: "replayed", done: "replayed %s to %s", apply: broker.DeadLetterAdmin.ReplayDeadLetters})
}

func newDLQPurgeCmd(a *app) *cobra.Command {
	return newDLQActionCmd(a, &cobra.Command{
		Use:   "purge",
		Short: "Delete dead letters for good",
		Long: `purge deletes dead letters. It needs --id or --all; --dry-run lists what
would be deleted.

--all asks before deleting when stdin is a terminal (answer y or yes);
elsewhere (a script, a pipe, CI) it needs --yes, and without it exits with
status 2 and deletes nothing. A "no" exits with status 1.`,
		Example: `  conveyor dlq purge --topic orchestrate --id 1732590000000-0
  conveyor dlq purge --topic orchestrate --all --dry-run
  conveyor dlq purge --topic orchestrate --all
  conveyor dlq purge --topic orchestrate --all --yes     # in a script`,
	}, dlqAction{past: "purged", done: "purged %s of %s", ask: true, apply: broker.DeadLetterAdmin.PurgeDeadLetters})
}
