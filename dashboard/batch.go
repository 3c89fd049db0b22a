package dashboard

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/conveyor-jobs/conveyor/broker"
)

// batchData is the batch page: a batch's record, read when the broker
// implements broker.BatchStore.
type batchData struct {
	page
	Batch *broker.BatchInfo
	// Groups are the members by state, pending first.
	Groups []memberGroup
	// Percent is the progress: members ended of total, in percent.
	Percent int
	// PageSize bounds the members listed per state.
	PageSize int
}

// memberGroup is the members of a batch in one state.
type memberGroup struct {
	State   string
	Count   int
	Members []broker.BatchMember // at most PageSize
}

var errNoBatches = errors.New("this broker keeps no batches")

// batchLookup serves /batches?id=ID, the form of the overview: it redirects
// to the batch's page.
func (d *Dashboard) batchLookup(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if id == "" {
		d.fail(w, "./", http.StatusBadRequest, fmt.Errorf("%w: a batch ID is required", broker.ErrInvalidMessage))
		return
	}
	http.Redirect(w, r, "batches/"+url.PathEscape(id), http.StatusSeeOther)
}

// batchPage serves /batches/{id}: state, progress, counts, callback and
// members by state.
func (d *Dashboard) batchPage(w http.ResponseWriter, r *http.Request) {
	s, ok := d.insp.(broker.BatchStore)
	if !ok {
		d.fail(w, "../", http.StatusNotFound, errNoBatches)
		return
	}
	id := r.PathValue("id")
	bi, err := s.BatchInfo(r.Context(), id)
	if err != nil {
		d.fail(w, "../", statusOf(err), err)
		return
	}
	data := &batchData{page: d.newPage("../"), Batch: bi, PageSize: d.o.Display.PageSize}
	data.PageTitle = "batch " + id
	if bi.Total > 0 {
		data.Percent = 100 * bi.Ended() / bi.Total
	}
	for _, state := range []string{broker.MemberPending, broker.MemberSucceeded, broker.MemberDead, broker.MemberCancelled} {
		g := memberGroup{State: state}
		for _, m := range bi.Members {
			if m.State != state {
				continue
			}
			g.Count++
			if len(g.Members) < data.PageSize {
				g.Members = append(g.Members, m)
			}
		}
		if g.Count > 0 {
			data.Groups = append(data.Groups, g)
		}
	}
	d.render(w, http.StatusOK, "batch.html", data)
}
