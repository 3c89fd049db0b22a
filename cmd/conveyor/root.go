package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/conveyor-jobs/conveyor/broker"
	"github.com/conveyor-jobs/conveyor/broker/memory"
	"github.com/conveyor-jobs/conveyor/broker/redis"
	"github.com/conveyor-jobs/conveyor/config"
	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed: Redis unreachable, job not found…
	exitUsage = 2 // the command line or the configuration is wrong
	// exitDuplicate: produce --unique-key found the key held by another
	// job, whose ID it printed; nothing was published.
	exitDuplicate = 3
)

// subcommands lists the constructors of conveyor's subcommands (help lists
// them alphabetically). To add a command, write newXCmd(*app) *cobra.Command
// in its own file and add it here: nothing else needs to change.
var subcommands = []func(*app) *cobra.Command{
	newPingCmd,
	newProduceCmd,
	newConsumeCmd,
	newWorkerCmd,
	newHealthCmd,
	newDLQCmd,
	newConsumersCmd,
	newScheduleCmd,
	newDashboardCmd,
	newTrimCmd,
	newCancelCmd,
	newJobCmd,
	newBatchCmd,
	newPauseCmd,
	newResumeCmd,
	newTopicCmd,
	newBenchCmd,
	newConfigCmd,
	newVersionCmd,
}

// app is what every command shares: its streams, the configuration, and
// how to reach the environment (replaced in tests).
type app struct {
	stdout, stderr io.Writer
	stdin          io.Reader

	// configFile is the --config flag.
	configFile string
	// lookupEnv and dir locate the environment and .env; nil and "" mean
	// the process's.
	lookupEnv func(string) (string, bool)
	dir       string
	// isTerminal reports whether w is a terminal (for progress bars).
	isTerminal func(w io.Writer) bool
	// stdinIsTerminal reports whether stdin is a terminal, where a
	// question can be asked (dlq purge --all); nil means it is not.
	stdinIsTerminal func() bool

	cfg *config.Config
}

// exitError carries an exit code with the error that causes it.
type exitError struct {
	code int
	err  error
	// config marks a usage error in the configuration, not in the
	// command line: no "--help" hint is printed after it.
	config bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageError marks err as a mistake in the command line or configuration
// (exit code 2).
func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// usagef is usageError(fmt.Errorf(...)).
func usagef(format string, args ...any) error { return usageError(fmt.Errorf(format, args...)) }

// configError marks err as a mistake in the configuration (exit code 2)
// that the command's help would not fix.
func configError(err error) error { return &exitError{code: exitUsage, err: err, config: true} }

// newRootCmd builds the command tree for a.
func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "conveyor",
		Short: "Operate conveyor job queues on Redis Streams",
		Long: `conveyor runs and operates job queues: check the connection to Redis,
publish and read jobs, run a worker, inspect topics and consumers, replay
dead letters and trim streams.

Configuration comes from built-in defaults, then a YAML file (--config or
CONVEYOR_CONFIG), then .env in the working directory, then the environment
(REDIS_URL, REDIS_NAMESPACE, REDIS_CONSUMER, QUEUE_BACKEND, CONVEYOR_…).
See "conveyor config print" and config.yaml.example.

The memory backend (QUEUE_BACKEND=memory) holds jobs only inside the process
that runs it: worker can run on it, but produce, consume, consumers, health,
dlq, schedule, trim, cancel, job and dashboard, which work on the jobs of other
processes, need Redis.

Output: --json prints durations as seconds (a number, fractions allowed) in
fields whose names end in _seconds, and times in RFC 3339. Human output
prints text that producers control (topics, job IDs, headers, errors,
payloads) with control characters escaped as \x1b, \n, \u009b, so no job
can drive the terminal; --json prints it as it is.

Exit codes: 0 success, 1 the operation failed (Redis unreachable, no such
topic or dead letter, a question answered no), 2 wrong usage or
configuration (including dlq purge --all without --yes off a terminal), 3
produce --unique-key found the key held by another job (it prints that
job's ID and publishes nothing).`,
		Example: `  export REDIS_URL=redis://default:PASSWORD@localhost:6379/0
  conveyor ping
  conveyor produce --topic orchestrate --payload '{"prompt":"hello"}'
  conveyor worker --topic orchestrate --exec ./handle.py`,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Annotations[annotationNoConfig] != "" {
				return nil
			}
			return a.loadConfig()
		},
	}
	root.PersistentFlags().StringVar(&a.configFile, "config", "", "config file (default $CONVEYOR_CONFIG; none when unset)")
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetIn(a.stdin)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.CompletionOptions.DisableDefaultCmd = true
	for _, newCmd := range subcommands {
		root.AddCommand(newCmd(a))
	}
	return root
}

// annotationNoConfig marks commands that run without loading the
// configuration.
const annotationNoConfig = "conveyor/no-config"

// run wraps a command's body: errors it returns are operational failures
// (exit 1) unless marked as usage errors.
func run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ee *exitError
		if err != nil && !errors.As(err, &ee) {
			err = &exitError{code: exitFail, err: err}
		}
		return err
	}
}

// execute runs conveyor with args and returns the exit code.
func execute(ctx context.Context, a *app, args []string) int {
	root := newRootCmd(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitUsage // cobra's own errors: unknown command, bad arguments
	var ee *exitError
	inConfig := errors.Is(err, config.ErrInvalid)
	if errors.As(err, &ee) {
		code = ee.code
		inConfig = inConfig || ee.config
	}
	// Errors may quote what Redis or a producer holds (a job ID, a
	// topic): escape control characters, keep the lines.
	fmt.Fprintln(a.stderr, printableText(prefixed(err)))
	if code == exitUsage && cmd != nil && !inConfig {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// errPrefix starts every error conveyor prints.
const errPrefix = "conveyor: "

// prefixed returns err's text starting with errPrefix once: library errors
// such as server.ErrJobsAbandoned carry it already.
func prefixed(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, errPrefix) {
		return msg
	}
	return errPrefix + msg
}

// loadConfig loads the configuration into a.cfg; its errors are usage
// errors.
func (a *app) loadConfig() error {
	cfg, err := config.Load(&config.Options{File: a.configFile, Dir: a.dir, LookupEnv: a.lookupEnv})
	if err != nil {
		return usageError(err)
	}
	a.cfg = cfg
	return nil
}

// openBroker opens the configured broker. Connection failures come with
// advice (config.Diagnose).
func (a *app) openBroker() (broker.Broker, error) {
	switch a.cfg.Backend {
	case config.BackendMemory:
		return memory.New(&memory.Options{Lease: a.cfg.Redis.Lease, MaxDeliveries: a.cfg.Redis.MaxDeliveries, ResultRetention: a.cfg.Redis.ResultRetention}), nil
	default:
		c := a.cfg
		opts := &redis.Options{
			Namespace:           c.Redis.Namespace,
			Group:               c.Redis.Group,
			Consumer:            c.Redis.Consumer,
			Lease:               c.Redis.Lease,
			MaxDeliveries:       c.Redis.MaxDeliveries,
			Logger:              c.NewLogger(a.stderr),
			NoPublishCoalescing: !c.Redis.PublishCoalescing,
			ResultRetention:     c.Redis.ResultRetention,
		}
		if c.TLSEnabled() {
			opts.TLS = &redis.TLSOptions{
				CAFile:             c.TLS.CAFile,
				CertFile:           c.TLS.CertFile,
				KeyFile:            c.TLS.KeyFile,
				InsecureSkipVerify: c.TLS.InsecureSkipVerify,
			}
		}
		dial := dialURL(c)
		b, err := redis.Open(dial, opts)
		if err != nil {
			err = connectError(err, dial, c.Redis.URL)
			if errors.Is(err, redis.ErrInvalidURL) {
				// A malformed URL is a mistake in the configuration,
				// found before connecting.
				return nil, configError(err)
			}
			return nil, err
		}
		return b, nil
	}
}

// dialURL returns the Redis URL with the configured dial timeout, unless the
// URL sets one itself.
func dialURL(c *config.Config) string {
	u := c.Redis.URL
	if strings.Contains(u, "dial_timeout=") || c.Redis.DialTimeout <= 0 {
		return u
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "dial_timeout=" + c.Redis.DialTimeout.String()
}

// connectError is err (password redacted) followed by what to do about it.
// err came from dialing dialed, rawURL with options added: the message shows
// rawURL, as the user wrote it. The result still matches what err matches
// (redis.ErrInvalidURL, say).
func connectError(err error, dialed, rawURL string) error {
	msg := strings.ReplaceAll(err.Error(), redact.URL(dialed), redact.URL(rawURL))
	msg = redact.In(msg, rawURL)
	if advice := config.Diagnose(err, rawURL); advice != "" {
		msg += "\n  what to do: " + advice
	}
	return &rewordedError{msg: msg, err: err}
}

// rewordedError is err with its message replaced by msg.
type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }

// checkTopic returns a usage error when topic cannot be used with the
// configured backend.
func (a *app) checkTopic(topic string) error {
	if a.cfg.Backend == config.BackendMemory {
		return nil
	}
	if err := redis.ValidateTopic(topic); err != nil {
		return usageError(err)
	}
	return nil
}

// requireRedis returns a configuration error (exit 2) when the backend is
// memory, for cmd, a command that works on jobs other processes publish or
// hold: a memory broker opened by cmd would be its own, new and empty, seen
// by no other process and gone when cmd exits.
func (a *app) requireRedis(cmd *cobra.Command) error {
	if a.cfg.Backend != config.BackendMemory {
		return nil
	}
	src := a.cfg.Source("backend")
	fix := "set " + config.EnvVar("backend") + "=redis"
	switch src.Kind {
	case config.FromEnv:
		fix = "set " + src.Var + "=redis"
	case config.FromDotEnv:
		fix = fmt.Sprintf("set %s=redis in %s", src.Var, src.File)
	case config.FromFile:
		fix = "set backend: redis in " + src.File
	}
	return configError(fmt.Errorf("%s needs the Redis backend, but the backend is memory (%s): the memory backend holds jobs only inside the process that runs it, so this command would reach only a new, empty broker of its own that no other process shares; %s",
		cmd.CommandPath(), src, fix))
}

// withBroker opens the broker, runs fn and closes the broker.
func (a *app) withBroker(fn func(b broker.Broker) error) error {
	b, err := a.openBroker()
	if err != nil {
		return err
	}
	defer b.Close()
	return fn(b)
}

// commandContext returns ctx bounded by timeout (none when zero).
func commandContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, timeout)
}

// newApp returns the app of the real process.
func newApp() *app {
	return &app{
		stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin,
		isTerminal:      isTerminal,
		stdinIsTerminal: func() bool { return term.IsTerminal(int(os.Stdin.Fd())) },
	}
}

// isTerminal reports whether w is a terminal. /dev/null, a character
// device too, is not one.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm asks question on stderr and reads the answer from stdin: it
// reports whether the answer is y or yes (in any case). Call it only when
// stdin is a terminal.
func (a *app) confirm(question string) bool {
	fmt.Fprintf(a.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(a.stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
