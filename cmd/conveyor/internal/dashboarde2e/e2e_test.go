package dashboarde2e_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis/redistest"
	"github.com/conveyor-jobs/conveyor/dashboard"
	"github.com/conveyor-jobs/conveyor/internal/dashboardtest"
	"github.com/conveyor-jobs/conveyor/job"
)

// envScreenshot names a PNG file the end-to-end test writes a screenshot of
// the overview to.
const envScreenshot = "CONVEYOR_DASHBOARD_SCREENSHOT"

// chromiumPath finds a Chromium or Chrome binary ($CONVEYOR_CHROMIUM first).
func chromiumPath() string {
	if p := os.Getenv("CONVEYOR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser starts a headless Chromium for the test and returns a context
// bound to one tab, stopped at cleanup. It skips the test, or fails it when
// CI is "true", when no binary is found.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		const msg = "dashboard e2e: no chromium binary found (apt-get install chromium, or set CONVEYOR_CHROMIUM)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " [CI=true: failing instead of skipping]")
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // Chromium refuses to run as root with its sandbox
		chromedp.WindowSize(1440, 900),
	)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	tctx, tcancel := context.WithTimeout(ctx, 40*time.Second) // a hard cap; a run takes about 10 s
	t.Cleanup(func() {
		tcancel()
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		_ = chromedp.Cancel(cctx)
		ccancel()
		cancel()
		acancel()
	})
	// Start the browser with the un-timed context (a timeout on the first
	// Run would bound the browser's life), then act through the timed one.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	return tctx
}

// acceptDialogs accepts every confirm dialog of the tab, until the test ends.
func acceptDialogs(t *testing.T, ctx context.Context) func() []string {
	t.Helper()
	var (
		mu   sync.Mutex
		msgs []string
		wg   sync.WaitGroup
	)
	dctx, cancel := context.WithCancel(ctx)
	dialogs := chromedp.Events(dctx, page.JavascriptDialogOpening)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, ev.Message)
			mu.Unlock()
			if _, err := chromedp.Call(dctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(msgs)
	}
}

func TestBrowserReplayByClicking(t *testing.T) {
	ctx := browser(t)
	f := dashboardtest.Seed(t, redistest.Start(t))
	shot := os.Getenv(envScreenshot)
	if shot != "" {
		seedMore(t, f)
	}
	d := dashboard.New(f.Broker, &dashboard.Options{
		Display:  dashboard.Display{Refresh: 300 * time.Millisecond, RedisURL: f.Server.URL(), Namespace: f.Server.Namespace},
		Sampling: dashboard.Sampling{Interval: 250 * time.Millisecond},
	})
	mux := http.NewServeMux()
	mux.Handle("/ops/queues/", http.StripPrefix("/ops/queues", d))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	dialogs := acceptDialogs(t, ctx)

	// The overview lists the topics; its table refreshes in place.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/ops/queues/"),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="orchestrate"] a.topic`)),
	); err != nil {
		t.Fatal(err)
	}
	if shot != "" {
		screenshot(t, ctx, f, shot)
	}
	// Auto-refresh replaces the table without a reload: wait for rate charts,
	// which need a second sample.
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="summarize"] svg.chart`))); err != nil {
		t.Fatal(err)
	}

	// Open the topic and replay its first dead letter by clicking.
	if err := clickAndWait(ctx, chromedp.CSS(`tr[data-topic="orchestrate"] a.topic`)); err != nil {
		url, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("click topic: %v (page %s)", err, url)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#dead tr[id^="dl-"]`))); err != nil {
		t.Fatal(err)
	}
	if shot != "" {
		topicShot := strings.TrimSuffix(shot, ".png") + "-topic.png"
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`#stats svg.chart`))); err != nil {
			t.Fatal(err)
		}
		writeScreenshot(t, ctx, topicShot)
	}
	before := dashboardtest.Inspect(t, f.Broker, "orchestrate")
	dead := dashboardtest.DeadIDs(t, f.Broker, "orchestrate")
	dl, err := f.Broker.DeadLetterByID(context.Background(), "orchestrate", dead[0])
	if err != nil {
		t.Fatal(err)
	}
	button := chromedp.CSS(`tr[id="dl-` + dl.ID + `"] button[data-action="replay"]`)
	if err := clickAndWait(ctx, button); err != nil {
		url, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("click replay: %v (dialogs %q, page %s)", err, dialogs(), url)
	}
	flash, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".flash")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(flash, "Replayed 1 dead letter") {
		t.Errorf("message after replay: %q", flash)
	}
	if len(dialogs()) != 1 || !strings.Contains(dialogs()[0], dl.ID) {
		t.Errorf("confirm dialogs %q, want one naming %s", dialogs(), dl.ID)
	}

	// The job is back in the stream: one more entry, one dead letter fewer,
	// and the newest entry is the job, attempt reset.
	after := dashboardtest.Inspect(t, f.Broker, "orchestrate")
	if after.DeadLetters != before.DeadLetters-1 || after.Length != before.Length+1 {
		t.Errorf("after replay: length %d→%d, dead letters %d→%d", before.Length, after.Length, before.DeadLetters, after.DeadLetters)
	}
	if slices.Contains(dashboardtest.DeadIDs(t, f.Broker, "orchestrate"), dl.ID) {
		t.Errorf("dead letter %s is still there", dl.ID)
	}
	rdb := f.Server.Client(t)
	newest, err := rdb.XRevRangeN(context.Background(), f.Server.Namespace+":{orchestrate}:stream", "+", "-", 1).Result()
	if err != nil || len(newest) != 1 {
		t.Fatalf("newest entry: %v %v", newest, err)
	}
	if got := newest[0].Values["id"]; got != dl.Job.ID {
		t.Errorf("newest stream entry is job %v, want the replayed %s", got, dl.Job.ID)
	}
	if a, ok := newest[0].Values["attempt"]; ok && a != "1" {
		t.Errorf("replayed job's attempt %v, want 1", a)
	}

	// Replay all: the confirmation states the count, and the rest go back.
	left := after.DeadLetters
	if err := clickAndWait(ctx, chromedp.CSS(`#replay-all`)); err != nil {
		t.Fatalf("click replay all: %v (dialogs %q)", err, dialogs())
	}
	if want := fmt.Sprintf("Replay all %d dead letters", left); len(dialogs()) != 2 || !strings.Contains(dialogs()[1], want) {
		t.Errorf("confirm dialogs %q, want a second one saying %q", dialogs(), want)
	}
	if info := dashboardtest.Inspect(t, f.Broker, "orchestrate"); info.DeadLetters != 0 || info.Length != after.Length+left {
		t.Errorf("after replay all: %d dead letters, length %d; want 0 and %d", info.DeadLetters, info.Length, after.Length+left)
	}
}

// clickAndWait clicks sel and waits for the page it leads to, for at most
// 15 seconds.
func clickAndWait(ctx context.Context, sel chromedp.CSS) error {
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err := chromedp.RunResponse(cctx, chromedp.Click(sel))
	return err
}

// seedMore adds topics and traffic for a realistic screenshot.
func seedMore(t *testing.T, f *dashboardtest.Fixture) {
	t.Helper()
	ctx := context.Background()
	dashboardtest.Publish(t, f.Broker, "embed", 240)
	dashboardtest.Publish(t, f.Broker, "notify", 6)
	for i := range 9 {
		if _, err := f.Broker.Publish(ctx, broker.Message{Topic: "notify", Payload: []byte(fmt.Sprintf(`{"user":%d,"template":"digest"}`, i)), Delay: time.Duration(i+1) * 7 * time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	c := dashboardtest.OpenBroker(t, f.Server, "worker-c-5003")
	for _, d := range dashboardtest.Fetch(t, c, "notify", 2) {
		fl := job.Failure{Error: "smtp: 550 mailbox unavailable", Reason: job.ReasonPermanent, Handler: "notify.Send", Origin: "notify", At: time.Now()}
		if err := c.DeadLetter(ctx, d, fl); err != nil {
			t.Fatal(err)
		}
	}
	dashboardtest.Fetch(t, c, "notify", 1)
}

// screenshot runs traffic on the topics until every topic has a rate chart,
// then writes a PNG of the overview to path.
func screenshot(t *testing.T, ctx context.Context, f *dashboardtest.Fixture, path string) {
	t.Helper()
	tctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	traffic := func(w broker.Broker, topic string, in, out int) {
		defer wg.Done()
		for i := 0; tctx.Err() == nil; i++ {
			dashboardtest.Publish(t, f.Broker, topic, in+i%3)
			ds, err := w.Fetch(tctx, []string{topic}, out+i%2)
			if err != nil {
				return
			}
			_ = w.Ack(context.Background(), ds...)
			select {
			case <-tctx.Done():
			case <-time.After(80 * time.Millisecond):
			}
		}
	}
	wg.Add(3)
	go traffic(f.WorkerA, "orchestrate", 3, 3)
	go traffic(f.WorkerB, "summarize", 1, 1)
	go traffic(dashboardtest.OpenBroker(t, f.Server, "worker-d-6110"), "embed", 12, 14)
	defer func() { stop(); wg.Wait() }()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(`tr[data-topic="notify"] svg.chart`)),
		chromedp.Sleep(5*time.Second), // a few seconds of chart
	)
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot written to %s", path)
}

// writeScreenshot writes a PNG of the whole page to path.
func writeScreenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot written to %s", path)
}
