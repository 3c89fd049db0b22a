package server

import (
	"net/http"
)

// Handler returns an http.Handler serving health probes:
//
//   - GET /healthz answers 200 while Run is running (draining included) and
//     503 before Run starts and after it returns: a liveness probe.
//   - GET /readyz answers 200 while Run is fetching, its last fetch
//     succeeded and, when the broker implements broker.HealthChecker, its
//     Check passes; otherwise 503 with the reason in the body: a readiness
//     probe.
//
// Mount it next to other endpoints (the CLI adds /metrics).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.serveHealthz)
	mux.HandleFunc("GET /readyz", s.serveReadyz)
	return mux
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateRunning
}

func (s *Server) serveHealthz(w http.ResponseWriter, r *http.Request) {
	if !s.running() {
		unavailable(w, "not running")
		return
	}
	ok(w)
}

func (s *Server) serveReadyz(w http.ResponseWriter, r *http.Request) {
	switch {
	case !s.running():
		unavailable(w, "not running")
		return
	case s.draining.Load():
		unavailable(w, "shutting down")
		return
	}
	if msg := s.fetchErr.Load(); msg != nil {
		unavailable(w, "fetch failing: "+*msg)
		return
	}
	if s.checker != nil {
		if err := s.checker.Check(r.Context()); err != nil {
			unavailable(w, "broker: "+err.Error())
			return
		}
	}
	ok(w)
}

func ok(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok\n"))
}

func unavailable(w http.ResponseWriter, reason string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(reason + "\n"))
}
