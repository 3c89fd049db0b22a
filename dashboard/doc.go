// Package dashboard is conveyor's web dashboard: an [http.Handler] that shows
// every topic of a broker with its stream length, pending entries, lag,
// delayed jobs, dead letters, consumers and enqueue/processing rates, and
// lets operators replay, purge and delete jobs.
//
// It needs nothing but the Go binary: pages are rendered on the server with
// html/template, and the stylesheet and a small script are embedded.
//
// # Mounting
//
// Serve it on its own, as "conveyor dashboard" does, or mount it in an
// application's mux under any prefix:
//
//	d := dashboard.New(b, &dashboard.Options{ReadOnly: true})
//	mux.Handle("/ops/queues/", http.StripPrefix("/ops/queues", d))
//
// # Pages
//
//   - / — every topic with its counts, rates and a rate chart, refreshed in
//     place every few seconds (from /fragments/overview; /api/overview
//     serves the same as JSON).
//   - /topics/{topic} — consumers, the oldest pending entries, delayed jobs
//     and dead letters (a page at a time) with payloads pretty-printed, and
//     the actions.
//
// # Actions and safety
//
// Replaying or purging dead letters (one, selected, all) and deleting a
// delayed job are POSTs checked against a CSRF token signed with a key drawn
// when the process starts, and refused cross-origin (Sec-Fetch-Site and
// Origin). With [Options.ReadOnly] the buttons are hidden and every POST is
// answered 403. [Auth] adds basic auth or a bearer token, compared in
// constant time. A Redis URL given for display never shows its password.
//
// # Cost
//
// Topics come from the broker's registry, never from KEYS. Every list reads
// at most one page (Display.PageSize). Counters are read at most once per
// Sampling.Interval however many pages are open, and not at all while
// none is: the sampler works on requests and starts no goroutine.
package dashboard
