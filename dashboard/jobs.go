package dashboard

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
)

// pendingRow is a pending entry with the progress its job last reported
// (nil when none, or when the broker keeps no progress).
type pendingRow struct {
	broker.PendingEntry
	Progress *broker.Progress
}

// pendingRows adds to es the progress their jobs reported, read in one
// call when the broker keeps progress ([broker.ProgressReader]).
func (d *Dashboard) pendingRows(ctx context.Context, topic string, es []broker.PendingEntry) ([]pendingRow, error) {
	rows := make([]pendingRow, len(es))
	for i, e := range es {
		rows[i].PendingEntry = e
	}
	if d.progress == nil || len(es) == 0 {
		return rows, nil
	}
	receipts := make([]string, len(es))
	for i, e := range es {
		receipts[i] = e.ID
	}
	ps, err := d.progress.ProgressOf(ctx, topic, receipts)
	if err != nil {
		return nil, err
	}
	for i := range rows {
		if p, ok := ps[rows[i].ID]; ok {
			rows[i].Progress = &p
		}
	}
	return rows, nil
}

// percent formats a fraction in [0, 1] as a whole percentage.
func percent(f float64) string {
	return fmt.Sprintf("%.0f%%", min(max(f, 0), 1)*100)
}

// jobData is the job page: one job looked up by ID.
type jobData struct {
	page
	Topic   string
	ID      string
	Job     *broker.JobState // nil when not found
	Missing string           // why the job was not found
	Result  payload
	Now     time.Time
}

// jobPage shows the job of a topic whose ID is the query's id: its state,
// attempt, progress, result and failure ([broker.JobReader]).
func (d *Dashboard) jobPage(w http.ResponseWriter, r *http.Request) {
	const root = "../../"
	ctx := r.Context()
	topic := r.PathValue("topic")
	if d.jobs == nil {
		d.fail(w, root, http.StatusNotImplemented, errors.New("this broker cannot look jobs up by ID"))
		return
	}
	if err := d.knownTopic(ctx, topic); err != nil {
		d.fail(w, root, statusOf(err), err)
		return
	}
	id := r.URL.Query().Get("id")
	data := &jobData{page: d.newPage(root), Topic: topic, ID: id, Now: d.o.Sampling.Now()}
	data.PageTitle = topic + " · job " + id
	status := http.StatusOK
	if id == "" {
		data.Missing = "Give a job ID."
		status = http.StatusBadRequest
	} else {
		js, err := d.jobs.JobState(ctx, topic, id)
		switch {
		case errors.Is(err, broker.ErrNotFound):
			data.Missing = "No such job is held: never published to this topic, acknowledged without a result (such jobs are not kept), or its result expired."
			status = http.StatusNotFound
		case err != nil:
			d.fail(w, root, statusOf(err), err)
			return
		default:
			data.Job = js
			if js.Result != nil {
				data.Result = formatPayload(js.Result, d.o.Display.MaxPayload)
			}
		}
	}
	d.render(w, status, "job.html", data)
}
