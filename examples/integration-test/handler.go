// Package integrationtest shows how to test your own conveyor handler against
// a real, throwaway Redis: handler.go is the application code, handler_test.go
// is the test to copy.
package integrationtest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/conveyor-jobs/conveyor/job"
)

// SummariseRequest is the payload of a "summarise" job.
type SummariseRequest struct {
	DocumentID string `json:"document_id"`
	Text       string `json:"text"`
}

// Model is what the handler needs from a language model.
type Model interface {
	Summarise(ctx context.Context, text string) (string, error)
}

// ErrEmpty is returned for a document with no text: no retry can fix it.
var ErrEmpty = errors.New("document has no text")

// Summaries stores results by document ID. It is safe for concurrent use.
type Summaries struct {
	mu sync.Mutex
	m  map[string]string
}

// Put stores the summary of document id.
func (s *Summaries) Put(id, summary string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]string{}
	}
	s.m[id] = summary
}

// Get returns the summary of document id, if there is one.
func (s *Summaries) Get(id string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[id]
	return v, ok
}

// NewHandler returns the "summarise" handler: it asks model for a summary
// and stores it in out. An empty document fails permanently (it goes to the
// dead-letter topic at once); a model error is retried by the retry policy.
func NewHandler(model Model, out *Summaries) job.Handler {
	return job.Typed(func(ctx context.Context, req SummariseRequest, j *job.Job) error {
		if req.Text == "" {
			return job.Permanent(fmt.Errorf("document %s: %w", req.DocumentID, ErrEmpty))
		}
		summary, err := model.Summarise(ctx, req.Text)
		if err != nil {
			return fmt.Errorf("summarise %s: %w", req.DocumentID, err)
		}
		out.Put(req.DocumentID, summary)
		return nil
	})
}
