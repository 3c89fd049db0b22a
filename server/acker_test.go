package server_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

// With the default AckInterval an acknowledgement is sent as soon as the
// acker is free, not when a timer fires: in a synctest bubble, whose clock
// moves only when every goroutine waits, the job is acknowledged before any
// time passes, although its batch is far from full.
func TestAckSentWhenQueueIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := memory.New(&memory.Options{FetchWait: 5 * time.Millisecond})
		defer b.Close()
		srv, err := server.New(b, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }),
			&server.Options{Topics: []string{"t"}, AckBatch: 1000, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		result := make(chan error, 1)
		go func() { result <- srv.Run(ctx) }()
		synctest.Wait()

		started := time.Now()
		publish(t, b, broker.Message{Topic: "t"})
		synctest.Wait()
		if st := srv.Stats(); st.Processed != 1 || st.Acked != 1 {
			t.Errorf("stats %+v after the workers went idle: the ack waited for a timer", st)
		}
		if waited := time.Since(started); waited != 0 {
			t.Errorf("the fake clock moved %v before the ack was sent", waited)
		}
		cancel()
		if err := <-result; err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// Acknowledgements that arrive while an Ack call is in flight are sent
// together by the next call, so batches grow with the load.
func TestAcksArrivingDuringAckShareTheNextCall(t *testing.T) {
	const jobs = 8
	var mu sync.Mutex
	var sizes []int
	release := make(chan struct{})
	b := &sizedAcks{Broker: newBroker(t), record: func(n int) {
		mu.Lock()
		sizes = append(sizes, n)
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release
		}
	}}
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll)
	srv := start(t, b, job.HandlerFunc(func(context.Context, *job.Job) error { return nil }),
		&server.Options{Topics: []string{"t"}, Concurrency: jobs})
	publish(t, b, broker.Message{Topic: "t"})
	waitFor(t, "the first Ack call", func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	for range jobs - 1 {
		publish(t, b, broker.Message{Topic: "t"})
	}
	waitFor(t, "all jobs processed", func() bool { return srv.Stats().Processed == jobs })
	releaseAll()
	waitFor(t, "all jobs acked", func() bool { return srv.Stats().Acked == jobs })
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != jobs-1 {
		t.Fatalf("ack batch sizes %v, want [1 %d]", sizes, jobs-1)
	}
}
