package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// snoozeRecorder is a settleRecorder whose broker records snooze causes.
type snoozeRecorder struct {
	settleRecorder
	causes []string
}

func (r *snoozeRecorder) SnoozeBecause(_ context.Context, _ *broker.Delivery, d time.Duration, cause string) error {
	r.causes = append(r.causes, cause)
	return r.record(settleCall{op: "snooze", delay: d})
}

// TestSnoozeRecordsCause checks that the server snoozes through a broker's
// SnoozeRecorder with the text of the snooze's cause.
func TestSnoozeRecordsCause(t *testing.T) {
	open := errors.New("conveyor: circuit open")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"with a cause", job.SnoozeBecause(288*time.Millisecond, open), "conveyor: circuit open"},
		{"wrapped", errors.Join(errors.New("x"), job.SnoozeBecause(time.Second, open)), "conveyor: circuit open"},
		{"without a cause", job.Snooze(time.Second), ""},
	}
	for _, tt := range tests {
		r := &snoozeRecorder{}
		s := newSettleServer(t, &r.settleRecorder, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }), nil)
		s.b = r
		s.settle(context.Background(), &broker.Delivery{Job: job.Job{ID: "1", Topic: "t", Attempt: 1}}, tt.err)
		if len(r.causes) != 1 || r.causes[0] != tt.want || len(r.calls) != 1 || r.calls[0].op != "snooze" {
			t.Errorf("%s: causes %q, calls %+v; want one snooze with cause %q", tt.name, r.causes, r.calls, tt.want)
		}
	}
}
