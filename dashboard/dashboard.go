package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// Defaults of [Options] fields left at their zero value.
const (
	DefaultTitle          = "conveyor"
	DefaultRefresh        = 3 * time.Second
	DefaultSampleInterval = 2 * time.Second
	DefaultSamples        = 60
	DefaultPageSize       = 50
	DefaultMaxPayload     = 4096
)

// maxPageSize caps Options.PageSize: every list the dashboard reads is
// bounded.
const maxPageSize = 500

// Options configure a [Dashboard]. The zero value of every field selects its
// documented default; a nil *Options means all defaults.
type Options struct {
	// ReadOnly hides every action and answers every POST with 403.
	ReadOnly bool
	// Auth protects every page, fragment and asset. The zero value means no
	// authentication (bind to loopback, or put the handler behind your own).
	Auth Auth
	// Display configures what the pages show.
	Display Display
	// Sampling configures the rate sampler.
	Sampling Sampling
	// Logger receives errors of broker calls. Default slog.Default().
	Logger *slog.Logger
}

// Auth is the dashboard's access control. Set at most one of basic auth
// (User and Password) and Token.
type Auth struct {
	// User and Password require HTTP basic authentication.
	User, Password string
	// Token requires "Authorization: Bearer <Token>". A browser can log in
	// once by opening the dashboard with ?token=<Token>, which sets an
	// HttpOnly cookie holding a hash of the token.
	Token string
}

// Display configures what the pages show.
type Display struct {
	// Title names the dashboard in the header and the page title. Default
	// "conveyor".
	Title string
	// RedisURL is shown in the header, always with its password redacted,
	// and any occurrence of the password in an error is redacted too.
	// Empty shows nothing.
	RedisURL string
	// Namespace is shown in the header. Empty shows nothing.
	Namespace string
	// Refresh is how often the browser refreshes counters without
	// reloading the page. Default 3s; negative turns refreshing off.
	Refresh time.Duration
	// PageSize bounds every list (dead letters, pending entries, delayed
	// jobs). Default 50, at most 500.
	PageSize int
	// MaxPayload is how many bytes of a payload are shown before it is
	// truncated. Default 4096.
	MaxPayload int
}

// Sampling configures the sampler that derives enqueue and processing rates
// from successive readings of each topic's counters. Sampling is lazy: a
// request that needs the overview reads Redis only when the last reading is
// older than Interval, so any number of open pages share one reading per
// interval and nothing is read while nobody looks.
type Sampling struct {
	// Interval is the shortest time between two readings. Default 2s.
	Interval time.Duration
	// Samples is how many readings per topic are kept for the rate charts.
	// Default 60.
	Samples int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// CounterSource is implemented by brokers that report the lifetime counters
// of a topic's stream: entries ever added and entries ever read by the
// consumer group (the Redis broker). Without it the dashboard shows no rates.
type CounterSource interface {
	StreamCounters(ctx context.Context, topic string) (added, read int64, err error)
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Dashboard is the web dashboard: an [http.Handler] serving the overview,
// topic pages, their auto-refresh fragments, a JSON overview and the
// actions. Mount it anywhere: every link it renders is relative, so
//
//	mux.Handle("/ops/queues/", http.StripPrefix("/ops/queues", d))
//
// works as well as serving it at the root. A Dashboard is safe for
// concurrent use and starts no goroutine.
type Dashboard struct {
	insp     broker.Inspector
	dlq      broker.DeadLetterAdmin
	pending  broker.PendingLister
	delayed  broker.DelayedLister
	deleter  broker.DelayedDeleter
	cancel   broker.Canceller
	pauser   broker.Pauser
	parts    broker.PartitionInspector
	counters CounterSource
	progress broker.ProgressReader
	jobs     broker.JobReader

	o       Options
	log     *slog.Logger
	tmpl    *template.Template
	mux     *http.ServeMux
	handler http.Handler
	csrf    *csrf
	sampler *sampler
}

// New returns a dashboard over b, which must implement [broker.Inspector].
// Further powers are found by type assertion on b: dead-letter
// administration ([broker.DeadLetterAdmin]), listing pending entries
// ([broker.PendingLister]) and delayed jobs ([broker.DelayedLister]),
// deleting a delayed job ([broker.DelayedDeleter]), cancelling a job
// ([broker.Canceller]), pausing a topic ([broker.Pauser]), the progress
// of running jobs ([broker.ProgressReader]), looking a job up by ID
// ([broker.JobReader]) and [CounterSource]. With fewer powers the dashboard shows fewer panels. New
// panics if opts.Auth sets both basic auth and a token, or a user without a
// password (a programming error).
func New(b broker.Inspector, opts *Options) *Dashboard {
	if b == nil {
		panic("conveyor/dashboard: nil broker")
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	if err := o.Auth.validate(); err != nil {
		panic("conveyor/dashboard: " + err.Error())
	}
	d := &Dashboard{insp: b, o: o.withDefaults()}
	d.log = d.o.Logger
	d.dlq, _ = b.(broker.DeadLetterAdmin)
	d.pending, _ = b.(broker.PendingLister)
	d.delayed, _ = b.(broker.DelayedLister)
	d.deleter, _ = b.(broker.DelayedDeleter)
	d.cancel, _ = b.(broker.Canceller)
	d.pauser, _ = b.(broker.Pauser)
	d.parts, _ = b.(broker.PartitionInspector)
	d.counters, _ = b.(CounterSource)
	d.progress, _ = b.(broker.ProgressReader)
	d.jobs, _ = b.(broker.JobReader)
	d.csrf = newCSRF(d.o.Sampling.Now)
	d.sampler = newSampler(d.o.Sampling)
	d.tmpl = template.Must(template.New("").Funcs(d.funcs()).ParseFS(templateFS, "templates/*.html"))
	d.routes()
	return d
}

func (o Options) withDefaults() Options {
	if o.Display.Title == "" {
		o.Display.Title = DefaultTitle
	}
	if o.Display.Refresh == 0 {
		o.Display.Refresh = DefaultRefresh
	}
	if o.Display.PageSize <= 0 {
		o.Display.PageSize = DefaultPageSize
	}
	o.Display.PageSize = min(o.Display.PageSize, maxPageSize)
	if o.Display.MaxPayload <= 0 {
		o.Display.MaxPayload = DefaultMaxPayload
	}
	if o.Sampling.Interval <= 0 {
		o.Sampling.Interval = DefaultSampleInterval
	}
	if o.Sampling.Samples <= 1 {
		o.Sampling.Samples = DefaultSamples
	}
	if o.Sampling.Now == nil {
		o.Sampling.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

func (d *Dashboard) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", staticHandler(static)))
	m.HandleFunc("GET /{$}", d.overviewPage)
	m.HandleFunc("GET /fragments/overview", d.overviewFragment)
	m.HandleFunc("GET /api/overview", d.overviewJSON)
	m.HandleFunc("GET /topics/{topic}", d.topicPage)
	m.HandleFunc("GET /topics/{topic}/fragments/stats", d.topicStatsFragment)
	m.HandleFunc("GET /topics/{topic}/job", d.jobPage)
	m.HandleFunc("POST /topics/{topic}/dead/replay", d.mutating(d.replay))
	m.HandleFunc("POST /topics/{topic}/dead/purge", d.mutating(d.purge))
	m.HandleFunc("POST /topics/{topic}/delayed/delete", d.mutating(d.deleteDelayed))
	m.HandleFunc("POST /topics/{topic}/jobs/cancel", d.mutating(d.cancelJob))
	m.HandleFunc("POST /topics/{topic}/fetching/pause", d.mutating(d.pause))
	m.HandleFunc("POST /topics/{topic}/fetching/resume", d.mutating(d.resume))
	m.HandleFunc("GET /batches", d.batchLookup)
	m.HandleFunc("GET /batches/{id}", d.batchPage)
	d.mux = m
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	d.handler = d.authenticate(securityHeaders(cop.Handler(m)))
}

// ServeHTTP serves the dashboard.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.handler.ServeHTTP(w, r)
}

// staticHandler serves the embedded assets with a short cache lifetime:
// files only, never a directory listing (404).
func staticHandler(fsys fs.FS) http.Handler {
	h := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		if st, err := fs.Stat(fsys, strings.TrimSuffix(name, "/")); name == "" || err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		h.ServeHTTP(w, r)
	})
}

// securityHeaders forbids framing and content sniffing and restricts where
// scripts and styles may come from (only the embedded assets).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
		next.ServeHTTP(w, r)
	})
}

// page is what every full page template receives.
type page struct {
	Title     string
	PageTitle string
	Root      string // relative path to the dashboard's root: "./" or "../"
	RedisURL  string // redacted
	Namespace string
	ReadOnly  bool
	Refresh   int // milliseconds; 0 = off
	CSRF      string
	Flash     string
	Error     string
}

func (d *Dashboard) newPage(root string) page {
	p := page{
		Title:     d.o.Display.Title,
		Root:      root,
		RedisURL:  redact.Address(d.o.Display.RedisURL),
		Namespace: d.o.Display.Namespace,
		ReadOnly:  d.o.ReadOnly,
	}
	if d.o.Display.Refresh > 0 {
		p.Refresh = int(d.o.Display.Refresh / time.Millisecond)
	}
	if !d.o.ReadOnly {
		p.CSRF = d.csrf.token()
	}
	return p
}

// render executes template name into w; errors after the first byte can
// only be logged.
func (d *Dashboard) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := d.tmpl.ExecuteTemplate(w, name, data); err != nil {
		d.log.Error("dashboard: render", "template", name, "err", redact.In(err.Error(), d.o.Display.RedisURL))
	}
}

// fail renders an error page for err.
func (d *Dashboard) fail(w http.ResponseWriter, root string, status int, err error) {
	if status >= 500 {
		d.log.Error("dashboard", "err", redact.In(err.Error(), d.o.Display.RedisURL))
	}
	p := d.newPage(root)
	p.Error = redact.In(err.Error(), d.o.Display.RedisURL)
	d.render(w, status, "error.html", p)
}

// statusOf maps broker errors to HTTP status codes.
func statusOf(err error) int {
	switch {
	case errors.Is(err, broker.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, broker.ErrInvalidMessage):
		return http.StatusBadRequest
	case errors.Is(err, broker.ErrDuplicate):
		return http.StatusConflict
	default:
		return http.StatusBadGateway
	}
}

// --- overview ----------------------------------------------------------------

type overviewData struct {
	page
	Overview  *overview
	Schedules *schedulesPanel // nil: the broker keeps no schedules
}

func (d *Dashboard) overviewPage(w http.ResponseWriter, r *http.Request) {
	ov, err := d.overview(r.Context())
	if err != nil {
		d.fail(w, "./", statusOf(err), err)
		return
	}
	d.render(w, http.StatusOK, "overview.html", overviewData{page: d.newPage("./"), Overview: ov, Schedules: d.schedules(r.Context())})
}

func (d *Dashboard) overviewFragment(w http.ResponseWriter, r *http.Request) {
	ov, err := d.overview(r.Context())
	if err != nil {
		http.Error(w, redact.In(err.Error(), d.o.Display.RedisURL), statusOf(err))
		return
	}
	d.render(w, http.StatusOK, "overview-table", overviewData{page: d.newPage("./"), Overview: ov})
}

func (d *Dashboard) overviewJSON(w http.ResponseWriter, r *http.Request) {
	ov, err := d.overview(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(statusOf(err))
		_ = json.NewEncoder(w).Encode(map[string]string{"error": redact.In(err.Error(), d.o.Display.RedisURL)})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ov)
}

// overview returns the latest sample of every topic, reading Redis only when
// the last sample is older than the sampling interval.
func (d *Dashboard) overview(ctx context.Context) (*overview, error) {
	return d.sampler.sample(ctx, d.readAll)
}

// readAll reads every topic's state and counters.
func (d *Dashboard) readAll(ctx context.Context) ([]reading, error) {
	topics, err := d.insp.Topics(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]reading, 0, len(topics))
	for _, t := range topics {
		info, err := d.insp.Inspect(ctx, t)
		if err != nil {
			return nil, err
		}
		rd := reading{info: info}
		if d.counters != nil {
			added, read, err := d.counters.StreamCounters(ctx, t)
			if err != nil {
				return nil, err
			}
			rd.added, rd.read, rd.hasCounters = added, read, true
		}
		out = append(out, rd)
	}
	return out, nil
}

// --- topic page --------------------------------------------------------------

type topicData struct {
	page
	Topic       string
	Info        *broker.TopicInfo
	Stat        *topicStat // nil until sampled
	Consumers   []consumerRow
	Partitions  []broker.PartitionInfo // nil for a topic of one partition
	HasPending  bool
	Pending     []pendingRow
	HasProgress bool // the broker reports the progress of running jobs
	CanLookUp   bool // the broker finds a job by ID
	ID          string
	HasDelayed  bool
	CanDelete   bool
	CanCancel   bool
	CanPause    bool // the broker can pause topics and the dashboard may act
	Delayed     []delayedRow
	HasDLQ      bool
	DeadLetters []deadRow
	After       string // the page of dead letters starts after this ID
	NextAfter   string // "" when this is the last page
	PageSize    int
	Now         time.Time
}

type consumerRow struct {
	Group string
	broker.ConsumerInfo
}

type delayedRow struct {
	broker.DelayedJob
	Payload payload
}

type deadRow struct {
	broker.DeadLetter
	Payload payload
}

// knownTopic reports whether topic is in the broker's registry; the
// registry holds one entry per topic, so this is cheap.
func (d *Dashboard) knownTopic(ctx context.Context, topic string) error {
	ts, err := d.insp.Topics(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(ts, topic) {
		return fmt.Errorf("%w: no topic %q in this namespace", broker.ErrNotFound, topic)
	}
	return nil
}

func (d *Dashboard) topicPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	topic := r.PathValue("topic")
	if err := d.knownTopic(ctx, topic); err != nil {
		d.fail(w, "../", statusOf(err), err)
		return
	}
	data, err := d.topicData(ctx, topic, r.URL.Query().Get("after"), true)
	if err != nil {
		d.fail(w, "../", statusOf(err), err)
		return
	}
	data.Flash = flashMessage(r.URL.Query())
	data.PageTitle = topic
	d.render(w, http.StatusOK, "topic.html", data)
}

func (d *Dashboard) topicStatsFragment(w http.ResponseWriter, r *http.Request) {
	data, err := d.topicData(r.Context(), r.PathValue("topic"), "", false)
	if err != nil {
		http.Error(w, redact.In(err.Error(), d.o.Display.RedisURL), statusOf(err))
		return
	}
	d.render(w, http.StatusOK, "topic-stats", data)
}

// topicData reads one topic: its state and consumers, and with lists, a page
// of each list. Every list is bounded by the page size.
func (d *Dashboard) topicData(ctx context.Context, topic, after string, lists bool) (*topicData, error) {
	// The shared sample gives the topic's rates (at most one reading of
	// every topic per interval, whoever asks).
	if _, err := d.overview(ctx); err != nil {
		return nil, err
	}
	info, err := d.insp.Inspect(ctx, topic)
	if err != nil {
		return nil, err
	}
	n := d.o.Display.PageSize
	data := &topicData{
		page:        d.newPage("../"),
		Topic:       topic,
		Info:        info,
		Stat:        d.sampler.stat(topic),
		HasPending:  d.pending != nil,
		HasProgress: d.progress != nil,
		CanLookUp:   d.jobs != nil,
		HasDelayed:  d.delayed != nil,
		CanDelete:   d.deleter != nil && !d.o.ReadOnly,
		CanCancel:   d.cancel != nil && !d.o.ReadOnly,
		CanPause:    d.pauser != nil && !d.o.ReadOnly,
		HasDLQ:      d.dlq != nil,
		After:       after,
		PageSize:    n,
		Now:         d.o.Sampling.Now(),
	}
	for _, g := range info.Groups {
		for _, c := range g.Consumers {
			data.Consumers = append(data.Consumers, consumerRow{Group: g.Name, ConsumerInfo: c})
		}
	}
	if d.parts != nil && info.Partitions > 1 {
		ps, err := d.parts.InspectPartitions(ctx, topic)
		if err != nil && !errors.Is(err, broker.ErrNotFound) {
			return nil, err
		}
		if len(ps) > 1 {
			data.Partitions = ps
		}
	}
	if !lists {
		return data, nil
	}
	max := d.o.Display.MaxPayload
	if d.pending != nil {
		es, err := d.pending.PendingEntries(ctx, topic, n)
		if err != nil {
			return nil, err
		}
		if data.Pending, err = d.pendingRows(ctx, topic, es); err != nil {
			return nil, err
		}
	}
	if d.delayed != nil {
		js, err := d.delayed.DelayedJobs(ctx, topic, n)
		if err != nil {
			return nil, err
		}
		for _, j := range js {
			data.Delayed = append(data.Delayed, delayedRow{DelayedJob: j, Payload: formatPayload(j.Job.Payload, max)})
		}
	}
	if d.dlq != nil {
		// One more than a page tells whether there is a next page.
		dls, err := d.dlq.DeadLetters(ctx, topic, after, n+1)
		if err != nil {
			return nil, err
		}
		if len(dls) > n {
			dls = dls[:n]
			data.NextAfter = dls[n-1].ID
		}
		for _, dl := range dls {
			data.DeadLetters = append(data.DeadLetters, deadRow{DeadLetter: dl, Payload: formatPayload(dl.Job.Payload, max)})
		}
	}
	return data, nil
}

// --- actions -----------------------------------------------------------------

// mutating guards an action: 403 in read-only mode, 403 without a valid
// CSRF token, 404 for an unknown topic.
func (d *Dashboard) mutating(fn func(w http.ResponseWriter, r *http.Request, topic string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.o.ReadOnly {
			http.Error(w, "the dashboard is read-only", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if !d.csrf.valid(r.PostForm.Get(csrfField)) {
			http.Error(w, "missing or invalid CSRF token: reload the page and try again", http.StatusForbidden)
			return
		}
		topic := r.PathValue("topic")
		if err := d.knownTopic(r.Context(), topic); err != nil {
			http.Error(w, redact.In(err.Error(), d.o.Display.RedisURL), statusOf(err))
			return
		}
		fn(w, r, topic)
	}
}

// selection returns the IDs an action applies to: nil for "all" (the
// broker snapshots them), or the ids given. ok is false when neither is.
func selection(r *http.Request) (ids []string, ok bool) {
	if r.PostForm.Get("all") == "1" {
		return nil, true
	}
	ids = slices.DeleteFunc(slices.Clone(r.PostForm["id"]), func(s string) bool { return s == "" })
	return ids, len(ids) > 0
}

func (d *Dashboard) replay(w http.ResponseWriter, r *http.Request, topic string) {
	d.deadLetterAction(w, r, topic, "replayed", d.dlqReplay)
}

func (d *Dashboard) purge(w http.ResponseWriter, r *http.Request, topic string) {
	d.deadLetterAction(w, r, topic, "purged", d.dlqPurge)
}

func (d *Dashboard) dlqReplay(ctx context.Context, topic string, ids []string) (int, error) {
	return d.dlq.ReplayDeadLetters(ctx, topic, ids)
}

func (d *Dashboard) dlqPurge(ctx context.Context, topic string, ids []string) (int, error) {
	return d.dlq.PurgeDeadLetters(ctx, topic, ids)
}

func (d *Dashboard) deadLetterAction(w http.ResponseWriter, r *http.Request, topic, done string,
	fn func(ctx context.Context, topic string, ids []string) (int, error)) {
	if d.dlq == nil {
		http.Error(w, "this broker cannot manage dead letters", http.StatusNotImplemented)
		return
	}
	ids, ok := selection(r)
	if !ok {
		http.Error(w, "select dead letters (id) or all=1", http.StatusBadRequest)
		return
	}
	// Look the IDs up first: the broker skips unknown IDs without saying
	// which, and "replayed 0" would read as success.
	var missing []string
	if ids != nil {
		var found []string
		for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
			_, err := d.dlq.DeadLetterByID(r.Context(), topic, id)
			switch {
			case errors.Is(err, broker.ErrNotFound):
				missing = append(missing, id)
			case err != nil:
				d.fail(w, "../../../", statusOf(err), err)
				return
			default:
				found = append(found, id)
			}
		}
		if len(found) == 0 {
			err := fmt.Errorf("%w: dead %s %s of %s (already replayed or purged?): nothing %s",
				broker.ErrNotFound, plural(len(missing), "letter", "letters"), strings.Join(missing, ", "), topic, done)
			d.fail(w, "../../../", http.StatusNotFound, err)
			return
		}
		ids = found
	}
	n, err := fn(r.Context(), topic, ids)
	if err != nil {
		if n > 0 {
			d.sampler.invalidate() // a replay refused for some moved the others
		}
		d.fail(w, "../../../", statusOf(err), err)
		return
	}
	d.sampler.invalidate()
	redirectDone(w, r, topic, done, n, len(missing))
}

func (d *Dashboard) deleteDelayed(w http.ResponseWriter, r *http.Request, topic string) {
	if d.deleter == nil {
		http.Error(w, "this broker cannot delete delayed jobs", http.StatusNotImplemented)
		return
	}
	id := r.PostForm.Get("id")
	if id == "" {
		http.Error(w, "missing id", http.StatusBadRequest)
		return
	}
	if err := d.deleter.DeleteDelayed(r.Context(), topic, id); err != nil {
		d.fail(w, "../../../", statusOf(err), err)
		return
	}
	d.sampler.invalidate()
	redirectDone(w, r, topic, "deleted", 1, 0)
}

// cancelJob cancels one job by ID (broker.Canceller): a delayed job is
// dead-lettered now, a pending (running) one gets a cancel request.
func (d *Dashboard) cancelJob(w http.ResponseWriter, r *http.Request, topic string) {
	if d.cancel == nil {
		http.Error(w, "this broker cannot cancel jobs", http.StatusNotImplemented)
		return
	}
	id := r.PostForm.Get("id")
	if id == "" {
		http.Error(w, "missing id", http.StatusBadRequest)
		return
	}
	res, err := d.cancel.Cancel(r.Context(), topic, id)
	if err != nil {
		d.fail(w, "../../../", statusOf(err), err)
		return
	}
	done := "cancelled"
	if res == broker.CancelRequested {
		done = "cancel-requested"
	}
	d.sampler.invalidate()
	redirectDone(w, r, topic, done, 1, 0)
}

// redirectDone sends the browser back to the topic page (a relative
// Location, so any mount prefix works) with a message naming what was done
// and how many of the selected items were not found.
func redirectDone(w http.ResponseWriter, r *http.Request, topic, done string, n, missing int) {
	q := url.Values{"done": {done}, "n": {strconv.Itoa(n)}}
	if missing > 0 {
		q.Set("missing", strconv.Itoa(missing))
	}
	w.Header().Set("Location", "../../"+url.PathEscape(topic)+"?"+q.Encode())
	w.WriteHeader(http.StatusSeeOther)
}

// flashMessage turns the done/n query of a redirect into a message. Only
// known actions produce one, so a crafted link cannot show arbitrary text.
func flashMessage(q url.Values) string {
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		return ""
	}
	var msg string
	switch q.Get("done") {
	case "replayed":
		msg = fmt.Sprintf("Replayed %d dead %s to the stream.", n, plural(n, "letter", "letters"))
	case "purged":
		msg = fmt.Sprintf("Purged %d dead %s.", n, plural(n, "letter", "letters"))
	case "deleted":
		return "Deleted the delayed job."
	case "cancelled":
		return "Cancelled the job: it is in the dead letters with reason cancelled."
	case "cancel-requested":
		return "Cancel requested: the job is running; its worker ends it within about a second and dead-letters it with reason cancelled (unless it completes first)."
	case "paused", "resumed":
		return pausedMessage(q.Get("done"))
	default:
		return ""
	}
	if m, err := strconv.Atoi(q.Get("missing")); err == nil && m > 0 {
		msg += fmt.Sprintf(" %d selected dead %s not found (already replayed or purged?).", m, plural(m, "letter was", "letters were"))
	}
	return msg
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
