package dashboard

import "net/http"

// pause stops every worker from fetching topic (broker.Pauser).
func (d *Dashboard) pause(w http.ResponseWriter, r *http.Request, topic string) {
	d.setPaused(w, r, topic, true)
}

// resume lets workers fetch topic again.
func (d *Dashboard) resume(w http.ResponseWriter, r *http.Request, topic string) {
	d.setPaused(w, r, topic, false)
}

func (d *Dashboard) setPaused(w http.ResponseWriter, r *http.Request, topic string, paused bool) {
	if d.pauser == nil {
		http.Error(w, "this broker cannot pause topics", http.StatusNotImplemented)
		return
	}
	fn, done := d.pauser.Resume, "resumed"
	if paused {
		fn, done = d.pauser.Pause, "paused"
	}
	if err := fn(r.Context(), topic); err != nil {
		d.fail(w, "../../../", statusOf(err), err)
		return
	}
	d.sampler.invalidate()
	redirectDone(w, r, topic, done, 1, 0)
}

// pausedMessage is the flash message after a pause or resume.
func pausedMessage(done string) string {
	if done == "paused" {
		return "Paused: no worker fetches this topic's jobs until it is resumed."
	}
	return "Resumed: workers fetch this topic's jobs again."
}
