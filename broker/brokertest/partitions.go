package brokertest

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// partitioner returns b's broker.Partitioner, skipping the subtest when the
// suite does not run on partitioned topics.
func (e *env) partitioner(b broker.Broker) broker.Partitioner {
	e.t.Helper()
	if e.opts.Partitions < 2 {
		e.t.Skip("Options.Partitions < 2: topics are not partitioned")
	}
	p, ok := b.(broker.Partitioner)
	if !ok {
		e.t.Fatalf("Options.Partitions is %d but %T does not implement broker.Partitioner", e.opts.Partitions, b)
	}
	return p
}

// setPartitions sets topic's partition count and checks it reads back.
func (e *env) setPartitions(p broker.Partitioner, topic string, n int) {
	e.t.Helper()
	if err := p.SetPartitions(e.ctx, topic, n); err != nil {
		e.t.Fatalf("SetPartitions(%q, %d): %v", topic, n, err)
	}
	if got, err := p.Partitions(e.ctx, topic); err != nil || got != n {
		e.t.Fatalf("Partitions(%q) = %d, %v after SetPartitions(%d)", topic, got, err, n)
	}
}

// testPartitionKeyOrder: jobs of one key come in publish order on a
// partitioned topic, and a job's Key comes back on delivery, after Retry,
// Snooze, DeadLetter and replay.
func testPartitionKeyOrder(e *env) {
	t := e.t
	b := e.open("c1")
	p := e.partitioner(b)
	e.setPartitions(p, "pkeys", e.opts.Partitions)
	const keys, each = 6, 8
	var ms []broker.Message
	for i := range each {
		for k := range keys {
			ms = append(ms, broker.Message{Topic: "pkeys", Key: fmt.Sprintf("key-%d", k), Payload: fmt.Appendf(nil, "%d", i)})
		}
	}
	if _, err := b.PublishBatch(e.ctx, ms[:len(ms)/2]); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[len(ms)/2:] {
		e.publish(b, m)
	}
	got := map[string][]string{}
	for _, d := range e.fetchN(b, []string{"pkeys"}, len(ms), 5) {
		if d.Job.Key == "" {
			t.Fatalf("job %s came without its Key", d.Job.ID)
		}
		got[d.Job.Key] = append(got[d.Job.Key], string(d.Job.Payload))
		e.ack(b, d)
	}
	for k := range keys {
		key := fmt.Sprintf("key-%d", k)
		want := make([]string, each)
		for i := range want {
			want[i] = fmt.Sprint(i)
		}
		if !slices.Equal(got[key], want) {
			t.Errorf("key %s: got %q, want %q in order", key, got[key], want)
		}
	}

	// The Key survives every settle.
	e.publish(b, broker.Message{Topic: "pkeys", Key: "kept", Payload: []byte("k")})
	d := e.fetchOne(b, "pkeys")
	if err := b.Retry(e.ctx, d, 0, job.Failure{Error: "again"}); err != nil {
		t.Fatal(err)
	}
	d = e.fetchOne(b, "pkeys")
	if d.Job.Key != "kept" || d.Job.Attempt != 2 {
		t.Fatalf("after Retry: Key %q attempt %d, want kept, 2", d.Job.Key, d.Job.Attempt)
	}
	if err := b.Snooze(e.ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	d = e.fetchOne(b, "pkeys")
	if d.Job.Key != "kept" {
		t.Fatalf("after Snooze: Key %q, want kept", d.Job.Key)
	}
	if err := b.DeadLetter(e.ctx, d, job.Failure{Error: "dead"}); err != nil {
		t.Fatal(err)
	}
	dl := e.fetchOne(b, job.DeadLetterTopic("pkeys"))
	if dl.Job.Key != "kept" {
		t.Fatalf("dead letter: Key %q, want kept", dl.Job.Key)
	}
	e.ack(b, dl)
}

// testPartitionFairness: a backlog in one key's partition does not hold up
// a job of another partition: fetching one job at a time, the other job
// comes within one round of the partitions.
func testPartitionFairness(e *env) {
	t := e.t
	b := e.open("c1")
	p := e.partitioner(b)
	n := e.opts.Partitions
	e.setPartitions(p, "pfair", n)
	hot := "hot"
	cold := ""
	for i := 0; cold == ""; i++ {
		if k := fmt.Sprintf("cold-%d", i); broker.PartitionFor(k, n) != broker.PartitionFor(hot, n) {
			cold = k
		}
	}
	const backlog = 200
	ms := make([]broker.Message, backlog)
	for i := range ms {
		ms[i] = broker.Message{Topic: "pfair", Key: hot, Payload: []byte("hot")}
	}
	if _, err := b.PublishBatch(e.ctx, ms); err != nil {
		t.Fatal(err)
	}
	e.publish(b, broker.Message{Topic: "pfair", Key: cold, Payload: []byte("cold")})
	for i := range n {
		d := e.fetchOne(b, "pfair")
		e.ack(b, d)
		if d.Job.Key == cold {
			return
		}
		if i == n-1 {
			t.Fatalf("the job of key %q was not among the first %d jobs fetched one by one, behind a backlog of %d in another partition", cold, n, backlog)
		}
	}
}

// testPartitionResize: changing a topic's partition count from 1 to 8,
// then to 2, while jobs (ready, delayed, retried and dead-lettered) are
// published and processed (the first layout's jobs still all waiting when
// it retires), loses nothing: every job published is
// processed, the dead letters of every layout are listed and replayed.
func testPartitionResize(e *env) {
	t := e.t
	const topic = "resize" // not partitioned by the suite: starts at 1
	pub := e.open("pub")
	p := e.partitioner(pub)
	work := e.open("work")

	var mu sync.Mutex
	published := map[string]bool{}
	done := map[string]bool{}
	dead := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// The worker starts after the first resize, so that the jobs of the
	// first layout wait in a retiring one.
	startWorker := func() {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ds, err := work.Fetch(e.ctx, []string{topic}, 10)
				if err != nil {
					if e.ctx.Err() != nil {
						return
					}
					t.Errorf("Fetch: %v", err)
					return
				}
				for _, d := range ds {
					mu.Lock()
					replayed := dead[d.Job.ID]
					mu.Unlock()
					var err error
					switch {
					case string(d.Job.Payload) == "dead" && !replayed:
						err = work.DeadLetter(e.ctx, d, job.Failure{Error: "dead"})
						mu.Lock()
						dead[d.Job.ID] = true
						mu.Unlock()
					case string(d.Job.Payload) == "retry" && d.Job.Attempt == 1:
						err = work.Retry(e.ctx, d, 50*time.Millisecond, job.Failure{Error: "again"})
					default:
						err = work.Ack(e.ctx, d)
						mu.Lock()
						done[d.Job.ID] = true
						mu.Unlock()
					}
					if err != nil {
						t.Errorf("settle %s: %v", d.Job.ID, err)
					}
				}
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()

	publish := func(round string) {
		var ms []broker.Message
		for i := range 30 {
			m := broker.Message{Topic: topic, Payload: []byte("ok")}
			switch i % 6 {
			case 1:
				m.Key = fmt.Sprintf("%s-%d", round, i%4)
			case 2:
				m.Delay = 100 * time.Millisecond
			case 3:
				m.Payload = []byte("retry")
			case 4:
				m.Payload = []byte("dead")
			}
			ms = append(ms, m)
		}
		ids, err := pub.PublishBatch(e.ctx, ms)
		if err != nil {
			t.Fatalf("PublishBatch: %v", err)
		}
		mu.Lock()
		for _, id := range ids {
			published[id] = true
		}
		mu.Unlock()
	}
	publish("one")
	e.setPartitions(p, topic, 8)
	startWorker()
	publish("eight")
	e.setPartitions(p, topic, 2)
	publish("two")

	allDone := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for id := range published {
			if !done[id] && !dead[id] {
				return false
			}
		}
		return true
	}
	eventually(t, waitLimit, "every job published across the resizes processed or dead-lettered", allDone)

	// The dead letters of every layout are listed and replayed.
	if a, ok := pub.(broker.DeadLetterAdmin); ok {
		mu.Lock()
		want := len(dead)
		mu.Unlock()
		var dls []broker.DeadLetter
		eventually(t, waitLimit, "every dead letter listed", func() bool {
			var err error
			dls, err = a.DeadLetters(e.ctx, topic, "", 0)
			return err == nil && len(dls) == want
		})
		n, err := a.ReplayDeadLetters(e.ctx, topic, nil)
		if err != nil || n != want {
			t.Fatalf("ReplayDeadLetters = %d, %v; want %d", n, err, want)
		}
		eventually(t, waitLimit, "every replayed job processed", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for id := range dead {
				if !done[id] {
					return false
				}
			}
			return true
		})
	}
	if got, err := p.Partitions(e.ctx, topic); err != nil || got != 2 {
		t.Fatalf("Partitions = %d, %v; want 2", got, err)
	}
}
