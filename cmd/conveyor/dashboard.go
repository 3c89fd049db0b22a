package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/dashboard"
)

// Environment variables the dashboard reads its secrets from, so they need
// not appear in the process list.
const (
	envDashboardBasicAuth = "CONVEYOR_DASHBOARD_BASIC_AUTH"
	envDashboardToken     = "CONVEYOR_DASHBOARD_TOKEN"
)

func newDashboardCmd(a *app) *cobra.Command {
	var (
		addr      string
		readOnly  bool
		basicAuth string
		token     string
	)
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard: topics, rates, pending, delayed and dead letters",
		Long: `dashboard serves a web UI over the configured broker: every topic of the
namespace with its stream length, pending entries, lag, delayed jobs,
dead letters, consumers and enqueue/processing rates; per topic, the
consumers, the oldest pending entries, delayed jobs and dead letters with
their errors and payloads. Dead letters can be replayed or purged (one,
selected or all) and delayed jobs deleted, unless --read-only.

It listens on 127.0.0.1:8080 by default and prints its URL. On 0.0.0.0:PORT,
[::]:PORT or :PORT it listens on all interfaces and prints the link for
this machine, http://127.0.0.1:PORT/. Before listening on another
interface, protect it with --basic-auth user:pass or --token T (or the
environment variables ` + envDashboardBasicAuth + ` and ` + envDashboardToken + `,
which keep the secret out of the process list).`,
		Example: `  conveyor dashboard
  conveyor dashboard --read-only
  conveyor dashboard --addr 0.0.0.0:8080 --basic-auth admin:s3cret
  CONVEYOR_DASHBOARD_TOKEN=s3cret conveyor dashboard --addr :8080`,
		Args: cobra.NoArgs,
		RunE: run(func(cmd *cobra.Command, _ []string) error {
			if err := a.requireRedis(cmd); err != nil {
				return err
			}
			lookup := a.lookupEnv
			if lookup == nil {
				lookup = os.LookupEnv
			}
			if basicAuth == "" {
				basicAuth, _ = lookup(envDashboardBasicAuth)
			}
			if token == "" {
				token, _ = lookup(envDashboardToken)
			}
			var auth dashboard.Auth
			switch {
			case basicAuth != "" && token != "":
				return usagef("give --basic-auth or --token, not both")
			case basicAuth != "":
				user, pass, ok := strings.Cut(basicAuth, ":")
				if !ok || user == "" || pass == "" {
					return usagef("--basic-auth wants user:password")
				}
				auth = dashboard.Auth{User: user, Password: pass}
			case token != "":
				auth = dashboard.Auth{Token: token}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.withBroker(func(b broker.Broker) error {
				in, err := inspector(b)
				if err != nil {
					return err
				}
				c := a.cfg
				d := dashboard.New(in, &dashboard.Options{
					ReadOnly: readOnly,
					Auth:     auth,
					Display:  dashboard.Display{RedisURL: c.Redis.URL, Namespace: c.Redis.Namespace},
					Logger:   c.NewLogger(a.stderr),
				})
				return serveDashboard(ctx, a, addr, d, auth, readOnly)
			})
		}),
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.BoolVar(&readOnly, "read-only", false, "hide every action; POSTs are refused")
	f.StringVar(&basicAuth, "basic-auth", "", "require HTTP basic auth, user:password (default $"+envDashboardBasicAuth+")")
	f.StringVar(&token, "token", "", "require a bearer token (default $"+envDashboardToken+")")
	return cmd
}

// serveDashboard serves h on addr until ctx ends, then shuts down.
func serveDashboard(ctx context.Context, a *app, addr string, h http.Handler, auth dashboard.Auth, readOnly bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("dashboard: %w", err)
	}
	mode := ""
	if readOnly {
		mode = " (read-only)"
	}
	line, where := announce(addr, ln.Addr())
	fmt.Fprintf(a.stdout, "%s%s\n", line, mode)
	if auth == (dashboard.Auth{}) && !isLoopback(ln.Addr()) {
		fmt.Fprintf(a.stderr, "conveyor: warning: the dashboard listens on %s without authentication; anyone who reaches it can replay and purge jobs (use --basic-auth or --token)\n", where)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("dashboard: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// announce returns the line that says where a dashboard listening on bound
// for --addr given is, and that address for other messages. It names the
// host as given (with the port bound, which differs for port 0): the
// listener's own address shows 0.0.0.0 as [::]. An address on all
// interfaces (0.0.0.0, [::] or no host) is said to be one, with a link that
// works on this machine.
func announce(given string, bound net.Addr) (line, where string) {
	host, port, err := net.SplitHostPort(given)
	if ta, ok := bound.(*net.TCPAddr); ok {
		port = strconv.Itoa(ta.Port)
	}
	if err != nil {
		return fmt.Sprintf("dashboard on http://%s/", bound), bound.String()
	}
	where = net.JoinHostPort(host, port)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return fmt.Sprintf("dashboard listening on all interfaces at %s; on this machine: http://%s/", where, net.JoinHostPort("127.0.0.1", port)),
			where + " (all interfaces)"
	}
	return fmt.Sprintf("dashboard on http://%s/", where), where
}

// isLoopback reports whether a listens on a loopback address only.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
