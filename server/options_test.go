package server_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conveyor-jobs/conveyor/job"
	"github.com/conveyor-jobs/conveyor/server"
)

func TestNewRejects(t *testing.T) {
	b := newBroker(t)
	noop := job.HandlerFunc(func(context.Context, *job.Job) error { return nil })
	tests := []struct {
		name string
		h    job.Handler
		opts *server.Options
		want error
	}{
		{"no topics", noop, nil, server.ErrNoTopics},
		{"empty mux", job.NewMux(), nil, server.ErrNoTopics},
		{"empty topic", noop, &server.Options{Topics: []string{""}}, server.ErrInvalidOptions},
		{"negative concurrency", noop, &server.Options{Topics: []string{"t"}, Concurrency: -1}, server.ErrInvalidOptions},
		{"negative timeout", noop, &server.Options{Topics: []string{"t"}, ShutdownTimeout: -time.Second}, server.ErrInvalidOptions},
		{"backoff max below initial", noop, &server.Options{Topics: []string{"t"},
			ErrorBackoff: server.Backoff{Initial: time.Second, Max: time.Millisecond}}, server.ErrInvalidOptions},
		{"nil handler", nil, &server.Options{Topics: []string{"t"}}, server.ErrInvalidOptions},
		{"heartbeat not below the lease", noop, &server.Options{Topics: []string{"t"}, HeartbeatInterval: b.Lease()}, server.ErrInvalidOptions},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := server.New(b, tt.h, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewTopicsFromMux(t *testing.T) {
	mux := job.NewMux()
	mux.HandleFunc("b", func(context.Context, *job.Job) error { return nil })
	mux.HandleFunc("a", func(context.Context, *job.Job) error { return nil })
	s, err := server.New(newBroker(t), mux, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Topics(); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("topics %v", got)
	}
	s, err = server.New(newBroker(t), mux, &server.Options{Topics: []string{"c", "c"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Topics(); len(got) != 1 || got[0] != "c" {
		t.Fatalf("topics %v", got)
	}
}
