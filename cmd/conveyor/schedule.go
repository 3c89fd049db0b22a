package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/schedule"
)

// scheduleRow is one schedule entry as schedule list prints it.
type scheduleRow struct {
	broker.ScheduleState
	// NextRun is the entry's next tick; zero when unknown (see Err) or
	// when there is none.
	NextRun time.Time
	// Err says why NextRun is unknown.
	Err string
	now time.Time
}

// MarshalJSON writes the entry's fields, its state, and next_run with
// next_run_in_seconds.
func (r scheduleRow) MarshalJSON() ([]byte, error) {
	type row struct {
		broker.ScheduleEntry
		LastTick         *time.Time `json:"last_tick"`
		LastJobID        string     `json:"last_job_id"`
		LastFiredAt      *time.Time `json:"last_fired_at"`
		RegisteredAt     *time.Time `json:"registered_at"`
		NextRun          *time.Time `json:"next_run"`
		NextRunInSeconds *float64   `json:"next_run_in_seconds"`
		Error            string     `json:"error,omitempty"`
	}
	v := row{r.ScheduleEntry, orNil(r.LastTick), r.LastJobID, orNil(r.LastFiredAt), orNil(r.RegisteredAt), orNil(r.NextRun), nil, r.Err}
	if !r.NextRun.IsZero() {
		in := r.NextRun.Sub(r.now).Seconds()
		v.NextRunInSeconds = &in
	}
	return json.Marshal(v)
}

// orNil returns nil for the zero time (JSON null), else &t in UTC.
func orNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// scheduleRows reads the registered entries of b and computes their next
// runs at now.
func scheduleRows(cmd *cobra.Command, b broker.Broker, now time.Time) ([]scheduleRow, error) {
	tp, ok := b.(broker.TickPublisher)
	if !ok {
		return nil, fmt.Errorf("the %T broker keeps no schedules", b)
	}
	states, err := tp.Schedules(cmd.Context())
	if err != nil {
		return nil, err
	}
	rows := make([]scheduleRow, len(states))
	for i, s := range states {
		rows[i] = scheduleRow{ScheduleState: s, now: now}
		next, err := schedule.NextRun(s, now)
		if err != nil {
			rows[i].Err = err.Error()
		}
		rows[i].NextRun = next
	}
	return rows, nil
}

// policy returns the missed-tick policy of s as printed: "catch-up 3".
func policy(s broker.ScheduleEntry) string {
	if s.CatchUp > 0 {
		return s.Missed + " " + strconv.Itoa(s.CatchUp)
	}
	return s.Missed
}

func printSchedules(w io.Writer, rows []scheduleRow) {
	tw := newTable(w)
	fmt.Fprintln(tw, "ENTRY\tTOPIC\tSPEC\tZONE\tMISSED\tNEXT RUN\tLAST RUN\tLAST JOB ID")
	for _, r := range rows {
		zone := r.TimeZone
		if zone == "" {
			zone = "UTC"
		}
		next := "none"
		switch {
		case r.Err != "":
			next = "? " + r.Err
		case !r.NextRun.IsZero():
			next = r.NextRun.UTC().Format(time.RFC3339) + " (in " + r.NextRun.Sub(r.now).Round(time.Second).String() + ")"
		}
		last, id := "never", "-"
		if !r.LastTick.IsZero() {
			last, id = r.LastTick.UTC().Format(time.RFC3339), r.LastJobID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(r.Name), printable(r.Topic), printable(r.Spec), printable(zone),
			printable(policy(r.ScheduleEntry)), printable(next), last, printable(id))
	}
	_ = tw.Flush()
}

func newScheduleCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedule",
		Short: "List the periodic jobs that schedulers registered",
		Long: `schedule lists the entries of package schedule that schedulers have
registered in this namespace, as Redis records them: each entry's topic,
spec, time zone and missed-tick policy, its next run (computed from the
recorded spec), its last fired tick and that tick's job ID.

  list   every registered entry

An entry is listed once a scheduler has run it; the listing needs no
application code.`,
		Example: `  conveyor schedule list
  conveyor schedule list --json`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newScheduleListCmd(a))
	return cmd
}

func newScheduleListCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List schedule entries: topic, spec, policy, next run, last run, last job ID",
		Long: `list prints every schedule entry registered in the namespace: name, topic,
spec, time zone, missed-tick policy, next run (computed now from the recorded
spec, in UTC, with how long until it), last run (the last fired tick, UTC;
"never" when none fired) and the job ID of that tick.

--json prints an array of objects with the fields name, topic, spec,
time_zone, missed, catch_up, last_tick, last_job_id, last_fired_at,
registered_at, next_run, next_run_in_seconds and, when the spec cannot be
read, error; times in RFC 3339, null when none.`,
		Example: `  conveyor schedule list
  conveyor schedule list --json`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			return a.withBroker(func(b broker.Broker) error {
				rows, err := scheduleRows(cmd, b, time.Now())
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(a.stdout, rows)
				}
				if len(rows) == 0 {
					_, err := fmt.Fprintln(a.stdout, "no schedules: no scheduler has registered an entry in this namespace")
					return err
				}
				printSchedules(a.stdout, rows)
				return nil
			})
		}),
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON (times in RFC 3339, next_run_in_seconds)")
	return cmd
}
