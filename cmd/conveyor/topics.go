package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/job"
)

// requireTopic returns an error (exit 1) when the namespace holds no trace of
// topic: no stream, delayed job, dead letter or consumer group, and no entry
// in the broker's topic registry. The error names the namespace, the topics
// whose names are close (a typo: "did you mean"), and the other namespaces
// on the same Redis that hold the topic (a wrong REDIS_NAMESPACE). A
// dead-letter topic (orchestrate.dlq) exists when its origin topic does.
// Brokers that cannot describe their topics are not checked.
//
// Commands that read or change an existing topic's jobs (health, dlq, trim)
// call it before anything else, so that a misspelt topic is not reported as
// an empty one.
func (a *app) requireTopic(ctx context.Context, b broker.Broker, topic string) error {
	msg, err := a.missingTopic(ctx, b, topic)
	if err != nil || msg == "" {
		return err
	}
	return errors.New(msg)
}

// missingTopic returns "" when topic exists (see requireTopic), else the
// message that says it does not, with what it may have meant.
func (a *app) missingTopic(ctx context.Context, b broker.Broker, topic string) (string, error) {
	in, ok := b.(broker.Inspector)
	if !ok {
		return "", nil
	}
	base := topic
	for strings.HasSuffix(base, job.DeadLetterSuffix) && len(base) > len(job.DeadLetterSuffix) {
		base = strings.TrimSuffix(base, job.DeadLetterSuffix)
	}
	info, err := in.Inspect(ctx, base)
	switch {
	case err == nil && !isEmpty(info):
		return "", nil
	case err != nil && !errors.Is(err, broker.ErrNotFound):
		return "", fmt.Errorf("inspect %s: %w", printable(base), err)
	}
	topics, err := in.Topics(ctx)
	if err != nil {
		return "", fmt.Errorf("list topics: %w", err)
	}
	if slices.Contains(topics, base) {
		return "", nil // registered, and empty
	}
	msg := fmt.Sprintf("namespace %s holds no topic %s", printable(a.cfg.Redis.Namespace), printable(topic))
	near := nearNames(base, topics)
	if len(near) > 0 {
		for i, n := range near {
			near[i] = printable(n + strings.TrimPrefix(topic, base))
		}
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, ", "))
	}
	if other := namespacesWith(ctx, b, a.cfg.Redis.Namespace, base); len(other) > 0 {
		for i, ns := range other {
			other[i] = printable(ns)
		}
		msg += fmt.Sprintf("; namespace %s holds it: do producer and worker use the same REDIS_NAMESPACE?", strings.Join(other, ", "))
	} else if len(near) == 0 && len(topics) > 0 {
		msg += "; conveyor health lists the topics"
	}
	return msg, nil
}

// maxNear is how many close names a "did you mean" lists.
const maxNear = 3

// nearNames returns the names among candidates close to name, closest first:
// within an edit distance of a third of name's length (at least 1, at most
// 3), or starting with name (of 3 characters or more), or being the start
// of name (of 3 characters or more and at least half of name). It lists at
// most maxNear.
func nearNames(name string, candidates []string) []string {
	type scored struct {
		name string
		dist int
	}
	limit := min(max(len([]rune(name))/3, 1), 3)
	var found []scored
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := editDistance(name, c)
		longer := len(name) >= 3 && strings.HasPrefix(c, name)
		shorter := len(c) >= 3 && 2*len(c) >= len(name) && strings.HasPrefix(name, c)
		if d <= limit || longer || shorter {
			found = append(found, scored{c, d})
		}
	}
	slices.SortFunc(found, func(x, y scored) int {
		if x.dist != y.dist {
			return x.dist - y.dist
		}
		return strings.Compare(x.name, y.name)
	})
	out := make([]string, 0, min(len(found), maxNear))
	for _, f := range found[:min(len(found), maxNear)] {
		out = append(out, f.name)
	}
	return out
}

// editDistance returns the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
