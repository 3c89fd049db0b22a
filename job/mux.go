package job

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Mux routes jobs to handlers by topic. Register handlers with [Mux.Handle]
// and middleware with [Mux.Use] before serving.
//
// Middleware is applied when a handler is registered, so the chain is built
// once, not per job; [Mux.Use] therefore panics if called after a handler has
// been registered. A Mux is safe for concurrent use: jobs may be processed
// while handlers are registered.
//
// A job for a topic with no handler fails permanently with [ErrNoHandler]: it
// is dead-lettered, never retried and never a crash.
type Mux struct {
	mu     sync.Mutex
	mw     []Middleware
	routes atomic.Pointer[map[string]*route]
}

type route struct {
	handler Handler // with middleware applied
	name    string  // the registered handler's type
	where   string  // file:line of the registration
}

// NewMux returns an empty Mux.
func NewMux() *Mux {
	return &Mux{}
}

// Use appends middleware applied to every handler registered after it, the
// first listed outermost. It panics if a handler is already registered.
func (m *Mux) Use(mw ...Middleware) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.routes.Load(); r != nil && len(*r) > 0 {
		panic("conveyor: Mux.Use must be called before Mux.Handle: middleware is applied at registration")
	}
	m.mw = append(m.mw, mw...)
}

// With returns a [Router] that registers handlers on m with extra middleware
// mw inside m's own, for per-topic stacks:
//
//	mux.With(middleware.Timeout(time.Minute)).Handle("ingest", h)
func (m *Mux) With(mw ...Middleware) *Router {
	return &Router{mux: m, mw: slices.Clone(mw)}
}

// Handle registers h for topic. It panics if topic is empty, h is nil, or the
// topic already has a handler; the message names both registrations. Use
// [Mux.Register] to get an error instead.
func (m *Mux) Handle(topic string, h Handler) {
	if err := m.register(topic, h, nil, caller(2)); err != nil {
		panic(err.Error())
	}
}

// HandleFunc registers f for topic, like [Mux.Handle].
func (m *Mux) HandleFunc(topic string, f func(ctx context.Context, j *Job) error) {
	var h Handler
	if f != nil {
		h = HandlerFunc(f)
	}
	if err := m.register(topic, h, nil, caller(2)); err != nil {
		panic(err.Error())
	}
}

// Register is [Mux.Handle] returning an error instead of panicking.
func (m *Mux) Register(topic string, h Handler) error {
	return m.register(topic, h, nil, caller(2))
}

// ErrBadRegistration is matched by every error [Mux.Register] returns.
var ErrBadRegistration = errors.New("conveyor: bad handler registration")

func (m *Mux) register(topic string, h Handler, extra []Middleware, where string) error {
	if topic == "" {
		return fmt.Errorf("%w: empty topic (handler %s at %s)", ErrBadRegistration, handlerName(h), where)
	}
	if h == nil || isNilHandler(h) {
		return fmt.Errorf("%w: nil handler for topic %q at %s", ErrBadRegistration, topic, where)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.routes.Load()
	if old != nil {
		if prev, ok := (*old)[topic]; ok {
			return fmt.Errorf("%w: topic %q registered twice: %s at %s, and %s at %s",
				ErrBadRegistration, topic, prev.name, prev.where, handlerName(h), where)
		}
	}
	chain := append(slices.Clone(m.mw), extra...)
	r := &route{handler: Chain(chain...)(h), name: handlerName(h), where: where}
	next := make(map[string]*route, 1)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	next[topic] = r
	m.routes.Store(&next)
	return nil
}

// ProcessJob runs the handler registered for j.Topic.
func (m *Mux) ProcessJob(ctx context.Context, j *Job) error {
	if r := m.route(j.Topic); r != nil {
		return r.handler.ProcessJob(ctx, j)
	}
	return &PermanentError{Err: fmt.Errorf("%w %q", ErrNoHandler, j.Topic), Reason: ReasonNoHandler}
}

// Handler returns the handler registered for topic, with its middleware, or
// nil.
func (m *Mux) Handler(topic string) Handler {
	if r := m.route(topic); r != nil {
		return r.handler
	}
	return nil
}

// HandlerName returns the type name of the handler registered for topic, as
// recorded in dead letters, or "".
func (m *Mux) HandlerName(topic string) string {
	if r := m.route(topic); r != nil {
		return r.name
	}
	return ""
}

// Topics returns the registered topics, sorted. A server reads these topics
// when it is given the Mux.
func (m *Mux) Topics() []string {
	r := m.routes.Load()
	if r == nil {
		return nil
	}
	out := make([]string, 0, len(*r))
	for t := range *r {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

func (m *Mux) route(topic string) *route {
	r := m.routes.Load()
	if r == nil {
		return nil
	}
	return (*r)[topic]
}

// Router registers handlers on a [Mux] with extra middleware. Create it with
// [Mux.With].
type Router struct {
	mux *Mux
	mw  []Middleware
}

// With returns a Router with mw appended (inside the current ones).
func (r *Router) With(mw ...Middleware) *Router {
	return &Router{mux: r.mux, mw: append(slices.Clone(r.mw), mw...)}
}

// Handle registers h for topic with the Router's middleware; it panics like
// [Mux.Handle].
func (r *Router) Handle(topic string, h Handler) {
	if err := r.mux.register(topic, h, r.mw, caller(2)); err != nil {
		panic(err.Error())
	}
}

// HandleFunc registers f for topic, like [Router.Handle].
func (r *Router) HandleFunc(topic string, f func(ctx context.Context, j *Job) error) {
	var h Handler
	if f != nil {
		h = HandlerFunc(f)
	}
	if err := r.mux.register(topic, h, r.mw, caller(2)); err != nil {
		panic(err.Error())
	}
}

// Register is [Router.Handle] returning an error instead of panicking.
func (r *Router) Register(topic string, h Handler) error {
	return r.mux.register(topic, h, r.mw, caller(2))
}

func caller(skip int) string {
	_, file, line, ok := runtime.Caller(skip)
	if !ok {
		return "unknown location"
	}
	return fmt.Sprintf("%s:%d", file, line)
}

// Namer is implemented by handlers that name themselves in dead letters and
// registration errors.
type Namer interface {
	HandlerName() string
}

func handlerName(h Handler) string {
	if h == nil {
		return "<nil>"
	}
	if n, ok := h.(Namer); ok {
		return n.HandlerName()
	}
	if f, ok := h.(HandlerFunc); ok {
		if fn := runtime.FuncForPC(reflect.ValueOf(f).Pointer()); fn != nil {
			return fn.Name()
		}
	}
	return reflect.TypeOf(h).String()
}

func isNilHandler(h Handler) bool {
	v := reflect.ValueOf(h)
	switch v.Kind() {
	case reflect.Pointer, reflect.Func, reflect.Map, reflect.Slice, reflect.Interface, reflect.Chan:
		return v.IsNil()
	}
	return false
}
