package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/internal/redistest"
)

// gateHook, once armed, holds the first command or pipeline with an XADD
// until open is closed, and records what the client sends: the commands
// sent alone and the XADDs of every pipeline (connection set-up aside).
type gateHook struct {
	held  chan struct{} // closed when the first XADD is held
	open  chan struct{}
	mu    sync.Mutex
	armed bool
	alone []string // names of the commands sent alone
	piped []int    // XADDs of each pipeline
}

func newGateHook() *gateHook {
	return &gateHook{held: make(chan struct{}), open: make(chan struct{})}
}

func (h *gateHook) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

// reset forgets what was sent.
func (h *gateHook) reset() {
	h.mu.Lock()
	h.alone, h.piped = nil, nil
	h.mu.Unlock()
}

// wait holds the caller when armed and xadds > 0, the first time.
func (h *gateHook) wait(xadds int) {
	h.mu.Lock()
	hold := h.armed && xadds > 0
	if hold {
		h.armed = false
	}
	h.mu.Unlock()
	if hold {
		close(h.held)
		<-h.open
	}
}

func (h *gateHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *gateHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		name := cmd.Name()
		if name == "hello" || name == "client" {
			return next(ctx, cmd)
		}
		h.mu.Lock()
		h.alone = append(h.alone, name)
		h.mu.Unlock()
		if name == "xadd" {
			h.wait(1)
		}
		return next(ctx, cmd)
	}
}

func (h *gateHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		xadds, other := 0, 0
		for _, c := range cmds {
			switch c.Name() {
			case "xadd":
				xadds++
			case "hello", "client":
			default:
				other++
			}
		}
		if xadds+other > 0 {
			h.mu.Lock()
			h.piped = append(h.piped, xadds)
			h.mu.Unlock()
		}
		h.wait(xadds)
		return next(ctx, cmds)
	}
}

func (h *gateHook) pipelines() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.piped...)
}

// gatedBroker returns a broker on a fresh Redis whose client has a
// gateHook, and a raw client of the same Redis.
func gatedBroker(t *testing.T) (*redis.Broker, *gateHook, goredis.UniversalClient, string) {
	t.Helper()
	srv := redistest.Start(t)
	h := newGateHook()
	rdb := goredis.NewClient(srv.Options())
	rdb.AddHook(h)
	t.Cleanup(func() { _ = rdb.Close() })
	b, err := redis.New(rdb, &redis.Options{Namespace: srv.Namespace, Consumer: "c"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, h, srv.Client(t), srv.Namespace
}

// publishAsync publishes m in a goroutine; the result arrives on the
// returned channel.
type pubResult struct {
	id  string
	err error
}

func publishAsync(ctx context.Context, b *redis.Broker, m broker.Message) <-chan pubResult {
	ch := make(chan pubResult, 1)
	go func() {
		id, err := b.Publish(ctx, m)
		ch <- pubResult{id, err}
	}()
	return ch
}

// holdFirst publishes a first job, held in flight by h, and returns its
// result channel once it is held.
func holdFirst(t *testing.T, b *redis.Broker, h *gateHook) <-chan pubResult {
	t.Helper()
	h.arm()
	first := publishAsync(context.Background(), b, broker.Message{Topic: "t", Payload: []byte("first")})
	select {
	case <-h.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the first Publish never reached Redis")
	}
	return first
}

func waitFor(t *testing.T, b *redis.Broker, n int) {
	t.Helper()
	eventually(t, strconv.Itoa(n)+" waiting publishes", func() bool { return b.WaitingPublishes() == n })
}

// TestPublishCoalescesConcurrentCalls: the calls made while a Publish is in
// flight wait, and go to Redis together in one pipeline when it returns;
// each gets its own ID, and every job is in the stream once.
func TestPublishCoalescesConcurrentCalls(t *testing.T) {
	t.Parallel()
	b, h, raw, ns := gatedBroker(t)
	first := holdFirst(t, b, h)
	const n = 20
	results := make([]<-chan pubResult, n)
	for i := range n {
		results[i] = publishAsync(context.Background(), b, broker.Message{Topic: "t", Payload: []byte(strconv.Itoa(i))})
	}
	waitFor(t, b, n)
	close(h.open)
	r := <-first
	if r.err != nil {
		t.Fatal(r.err)
	}
	ids := map[string]string{r.id: "first"}
	for i, ch := range results {
		r := <-ch
		if r.err != nil {
			t.Fatalf("publish %d: %v", i, r.err)
		}
		if prev, dup := ids[r.id]; dup {
			t.Fatalf("publish %d got ID %s, already returned to %s", i, r.id, prev)
		}
		ids[r.id] = strconv.Itoa(i)
	}
	entries, err := raw.XRange(context.Background(), ns+":{t}:stream", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n+1 {
		t.Fatalf("stream holds %d entries, want %d", len(entries), n+1)
	}
	for _, e := range entries {
		want, ok := ids[e.ID]
		if !ok {
			t.Fatalf("entry %s: no Publish returned its ID", e.ID)
		}
		if got := e.Values["payload"]; got != want {
			t.Fatalf("entry %s holds payload %v, but its ID was returned to publish %s", e.ID, got, want)
		}
	}
	// The first job's pipeline registers topic t; then one pipeline
	// carries the n that waited.
	if got := fmt.Sprint(h.pipelines()); got != fmt.Sprintf("[1 %d]", n) {
		t.Fatalf("XADDs per pipeline %s, want [1 %d]", got, n)
	}
}

// TestPublishAloneSendsOneCommand: a Publish with nothing in flight is
// sent at once as one command, as with coalescing off.
func TestPublishAloneSendsOneCommand(t *testing.T) {
	t.Parallel()
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoPublishCoalescing=%v", off), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			h := newGateHook()
			rdb := goredis.NewClient(srv.Options())
			rdb.AddHook(h)
			t.Cleanup(func() { _ = rdb.Close() })
			b, err := redis.New(rdb, &redis.Options{Namespace: srv.Namespace, Consumer: "c", NoPublishCoalescing: off})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			ctx := context.Background()
			if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte("register")}); err != nil {
				t.Fatal(err)
			}
			h.reset()
			for i := range 3 {
				if _, err := b.Publish(ctx, broker.Message{Topic: "t", Payload: []byte(strconv.Itoa(i))}); err != nil {
					t.Fatal(err)
				}
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if fmt.Sprint(h.alone) != "[xadd xadd xadd]" || len(h.piped) != 0 {
				t.Fatalf("sent alone %v and pipelines %v, want three XADDs alone", h.alone, h.piped)
			}
		})
	}
}

// TestPublishCoalescedErrorsGoToTheirCaller: in one pipeline, a command
// that fails, a duplicate unique key and good jobs each get their own
// outcome; an invalid message fails at once without waiting.
func TestPublishCoalescedErrorsGoToTheirCaller(t *testing.T) {
	t.Parallel()
	b, h, raw, ns := gatedBroker(t)
	ctx := context.Background()
	held, err := b.PublishBatch(ctx, []broker.Message{{Topic: "u", Payload: []byte("holder"), UniqueKey: "k"}})
	if err != nil {
		t.Fatal(err)
	}
	// A string where the stream of topic "bad" goes: its XADD fails.
	if err := raw.Set(ctx, ns+":{bad}:stream", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishBatch(ctx, []broker.Message{{Topic: "bad", Delay: time.Hour}}); err != nil {
		t.Fatal(err) // registers topic "bad"
	}
	first := holdFirst(t, b, h)
	good1 := publishAsync(ctx, b, broker.Message{Topic: "t", Payload: []byte("good1")})
	waitFor(t, b, 1)
	bad := publishAsync(ctx, b, broker.Message{Topic: "bad", Payload: []byte("bad")})
	waitFor(t, b, 2)
	dup := publishAsync(ctx, b, broker.Message{Topic: "u", Payload: []byte("dup"), UniqueKey: "k"})
	waitFor(t, b, 3)
	delayed := publishAsync(ctx, b, broker.Message{Topic: "t", Payload: []byte("later"), Delay: time.Hour})
	waitFor(t, b, 4)
	uniq := publishAsync(ctx, b, broker.Message{Topic: "u", Payload: []byte("new"), UniqueKey: "k2"})
	waitFor(t, b, 5)
	if _, err := b.Publish(ctx, broker.Message{Topic: "", Payload: []byte("invalid")}); !errors.Is(err, broker.ErrInvalidMessage) {
		t.Fatalf("invalid message: %v, want ErrInvalidMessage", err)
	}
	if got := b.WaitingPublishes(); got != 5 {
		t.Fatalf("%d waiting after the invalid message, want 5", got)
	}
	close(h.open)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	r := <-good1
	if r.err != nil || r.id == "" {
		t.Fatalf("good job: %q, %v", r.id, r.err)
	}
	r = <-bad
	if r.err == nil || r.id != "" || errors.Is(r.err, broker.ErrDuplicate) {
		t.Fatalf("job to a broken stream: %q, %v; want its command's error", r.id, r.err)
	}
	r = <-dup
	var de *broker.DuplicateError
	if !errors.As(r.err, &de) || r.id != held[0] || de.ID != held[0] || de.Key != "k" || de.Topic != "u" {
		t.Fatalf("duplicate: %q, %v; want the holder's ID %s and its DuplicateError", r.id, r.err, held[0])
	}
	r = <-delayed
	if r.err != nil || r.id == "" {
		t.Fatalf("delayed job: %q, %v", r.id, r.err)
	}
	if n, err := raw.ZCard(ctx, ns+":{t}:delayed").Result(); err != nil || n != 1 {
		t.Fatalf("delayed set holds %d (%v), want 1", n, err)
	}
	r = <-uniq
	if r.err != nil || r.id == "" {
		t.Fatalf("new unique job: %q, %v", r.id, r.err)
	}
	if l := xlen(t, raw, ns+":{u}:stream"); l != 2 {
		t.Fatalf("stream of u holds %d entries, want 2 (holder and new unique)", l)
	}
}

// TestPublishCoalescedCancelWhileWaiting: a call whose ctx ends while it
// waits returns ctx's error and its job is never sent; the others are.
func TestPublishCoalescedCancelWhileWaiting(t *testing.T) {
	t.Parallel()
	b, h, raw, ns := gatedBroker(t)
	first := holdFirst(t, b, h)
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := publishAsync(ctx, b, broker.Message{Topic: "t", Payload: []byte("cancelled")})
	waitFor(t, b, 1)
	kept := publishAsync(context.Background(), b, broker.Message{Topic: "t", Payload: []byte("kept")})
	waitFor(t, b, 2)
	cancel()
	r := <-cancelled
	if !errors.Is(r.err, context.Canceled) || r.id != "" {
		t.Fatalf("cancelled call: %q, %v; want context.Canceled", r.id, r.err)
	}
	if got := b.WaitingPublishes(); got != 1 {
		t.Fatalf("%d waiting, want 1", got)
	}
	close(h.open)
	if r := <-first; r.err != nil {
		t.Fatal(r.err)
	}
	r = <-kept
	if r.err != nil {
		t.Fatal(r.err)
	}
	entries, err := raw.XRange(context.Background(), ns+":{t}:stream", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var payloads []any
	for _, e := range entries {
		payloads = append(payloads, e.Values["payload"])
	}
	if fmt.Sprint(payloads) != "[first kept]" {
		t.Fatalf("stream holds %v, want [first kept]", payloads)
	}
}

// TestPublishCoalescedClose: calls waiting when the broker is closed get
// ErrClosed and their jobs are not sent; nothing is left running (goleak).
func TestPublishCoalescedClose(t *testing.T) {
	t.Parallel()
	b, h, raw, ns := gatedBroker(t)
	first := holdFirst(t, b, h)
	const n = 5
	results := make([]<-chan pubResult, n)
	for i := range n {
		results[i] = publishAsync(context.Background(), b, broker.Message{Topic: "t", Payload: []byte(strconv.Itoa(i))})
	}
	waitFor(t, b, n)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	close(h.open)
	<-first // in flight when Close came: either outcome is truthful
	for i, ch := range results {
		if r := <-ch; !errors.Is(r.err, broker.ErrClosed) || r.id != "" {
			t.Fatalf("waiting call %d: %q, %v; want ErrClosed", i, r.id, r.err)
		}
	}
	if l := xlen(t, raw, ns+":{t}:stream"); l > 1 {
		t.Fatalf("stream holds %d entries, want at most the first", l)
	}
	if _, err := b.Publish(context.Background(), broker.Message{Topic: "t"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("publish after Close: %v, want ErrClosed", err)
	}
}

// TestPublishCoalescedConcurrency: many goroutines publishing at once, on
// a single Redis and on a Cluster, with delayed and unique jobs among
// them: every call gets a distinct ID and every job is in Redis once.
func TestPublishCoalescedConcurrency(t *testing.T) {
	t.Parallel()
	redistest.StandaloneAndCluster(t, func(t *testing.T, rdb goredis.UniversalClient, ns string) {
		b, err := redis.New(rdb, &redis.Options{Namespace: ns, Consumer: "c"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		const goroutines, each = 16, 40
		topics := []string{"a", "b", "c"}
		var mu sync.Mutex
		ids := map[string]string{}
		var wg sync.WaitGroup
		errs := make(chan error, goroutines)
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					m := broker.Message{Topic: topics[(g+i)%len(topics)], Payload: fmt.Appendf(nil, "%d/%d", g, i)}
					switch i % 10 {
					case 3:
						m.Delay = time.Hour
					case 7:
						m.UniqueKey = fmt.Sprintf("u%d/%d", g, i)
					}
					id, err := b.Publish(context.Background(), m)
					if err != nil {
						errs <- err
						return
					}
					id = m.Topic + "/" + id // stream entry IDs are per stream
					mu.Lock()
					if prev, dup := ids[id]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("ID %s returned to %s and %s", id, prev, m.Payload)
						return
					}
					ids[id] = string(m.Payload)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		ctx := context.Background()
		found := 0
		for _, topic := range topics {
			entries, err := rdb.XRange(ctx, ns+":{"+topic+"}:stream", "-", "+").Result()
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				id := e.ID
				if v, ok := e.Values["id"].(string); ok {
					id = v
				}
				if ids[topic+"/"+id] != e.Values["payload"] {
					t.Fatalf("entry %s (job %s) holds %v, but that ID was returned for %q", e.ID, id, e.Values["payload"], ids[topic+"/"+id])
				}
				found++
			}
			n, err := rdb.ZCard(ctx, ns+":{"+topic+"}:delayed").Result()
			if err != nil {
				t.Fatal(err)
			}
			found += int(n)
		}
		if found != goroutines*each {
			t.Fatalf("Redis holds %d jobs, want %d", found, goroutines*each)
		}
	})
}
