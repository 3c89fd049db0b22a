package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// lineOf returns the 1-based line of s's source that holds text.
func lineOf(t testing.TB, s script, text string) int {
	t.Helper()
	for i, l := range strings.Split(s.src, "\n") {
		if strings.Contains(l, text) {
			return i + 1
		}
	}
	t.Fatalf("%s script has no line with %q", s.name, text)
	return 0
}

// TestExplainACL rewrites the ACL refusals of Redis 7.0 and of Redis 7.2+
// and Valkey, as the servers word them, into errors that start with NOPERM
// and say what to grant, and leaves every other error alone.
func TestExplainACL(t *testing.T) {
	t.Parallel()
	b := &Broker{o: Options{Namespace: "app"}}
	trimSHA, settleSHA := trimScript.Hash(), settleScript.Hash()
	xinfoLine := lineOf(t, trimScript, "call('XINFO', 'GROUPS'")
	xaddLine := lineOf(t, settleScript, "call('XADD', KEYS[2], '*', unpack(ARGV, 9, last))")
	tests := []struct {
		name, msg string
		want      []string
	}{
		// Redis 7.0.
		{"7.0 command", "NOPERM this user has no permissions to run the 'xadd' command",
			[]string{"may not run XADD:", "ACL SETUSER <user> +xadd"}},
		{"7.0 subcommand", "NOPERM this user has no permissions to run the 'xinfo|groups' command",
			[]string{"may not run XINFO GROUPS:", "+xinfo|groups"}},
		{"7.0 key", "NOPERM this user has no permissions to access one of the keys used as arguments",
			[]string{`may not access a key of namespace "app"`, "(~app:*)"}},
		{"7.0 script command",
			fmt.Sprintf("ERR The user executing the script can't run this command or subcommand script: %s, on @user_script:%d.", trimSHA, xinfoLine),
			[]string{"may not run XINFO GROUPS, which conveyor's trim script runs", "+xinfo|groups"}},
		{"7.0 script key",
			fmt.Sprintf("ERR The user executing the script can't access at least one of the keys mentioned in the command script: %s, on @user_script:%d.", settleSHA, xaddLine),
			[]string{"may not access a key that XADD in conveyor's settle script uses", "(~app:*)"}},
		{"7.0 script of another program",
			"ERR The user executing the script can't run this command or subcommand script: 0123456789abcdef0123456789abcdef01234567, on @user_script:1.",
			[]string{"may not run a command of a script (ACL LOG on the server names it)"}},
		{"6.0 command", "NOPERM this user has no permissions to run the 'xinfo' command or its subcommand",
			[]string{"may not run XINFO:", "+xinfo"}},

		// Redis 7.2 and later, Valkey.
		{"7.2 command", "NOPERM User limited has no permissions to run the 'xadd' command",
			[]string{"may not run XADD:", "ACL SETUSER <user> +xadd"}},
		{"7.2 subcommand", "NOPERM User limited has no permissions to run the 'xinfo|groups' command",
			[]string{"may not run XINFO GROUPS:", "+xinfo|groups"}},
		{"7.2 key", "NOPERM No permissions to access a key",
			[]string{`may not access a key of namespace "app"`, "(~app:*)"}},
		{"7.2 key named", "NOPERM User limited has no permissions to access the 'app:{t}:stream' key",
			[]string{`may not access the key "app:{t}:stream" of namespace "app"`, "(~app:*)"}},
		{"7.2 script command, named by the server",
			// The line points at XINFO GROUPS: the name the server gives wins.
			fmt.Sprintf("ERR ACL failure in script: User limited has no permissions to run the 'xlen' command script: %s, on @user_script:%d.", trimSHA, xinfoLine),
			[]string{"may not run XLEN, which conveyor's trim script runs", "ACL SETUSER <user> +xlen"}},
		{"7.2 script key",
			fmt.Sprintf("ERR ACL failure in script: No permissions to access a key script: %s, on @user_script:%d.", settleSHA, xaddLine),
			[]string{"may not access a key that XADD in conveyor's settle script uses", "(~app:*)"}},
		{"7.2 script of another program",
			"ERR ACL failure in script: User limited has no permissions to run the 'zadd' command script: 0123456789abcdef0123456789abcdef01234567, on @user_script:3.",
			[]string{"may not run ZADD, which a script runs", "+zadd"}},

		// Odd input: still an ACL refusal, never a panic.
		{"bare NOPERM", "NOPERM", []string{"lacks a permission (ACL LOG on the server names it"}},
		{"unterminated quote", "NOPERM User u has no permissions to run the '",
			[]string{"may not run a command (ACL LOG on the server names it)"}},
		{"not a command name", "NOPERM User u has no permissions to run the 'x y;z' command",
			[]string{"may not run a command (ACL LOG on the server names it)"}},
		{"huge line number", fmt.Sprintf("ERR ACL failure in script: No permissions to access a key script: %s, on @user_script:99999999999999999999999.", trimSHA),
			[]string{"may not access a key that a command in conveyor's trim script uses"}},
		{"channel", "NOPERM No permissions to access a channel", []string{"lacks a permission"}},
		{"key with a quote", "NOPERM User u has no permissions to access the 'app:{it's}:stream' key",
			[]string{`"app:{it's}:stream"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := errors.New(tt.msg)
			got := b.explainACL(err)
			if !strings.HasPrefix(got.Error(), "NOPERM: ") {
				t.Errorf("explainACL(%q) = %q, want it to start with NOPERM", tt.msg, got)
			}
			if !errors.Is(got, err) || !strings.HasSuffix(got.Error(), tt.msg) {
				t.Errorf("explainACL(%q) = %q, want it to wrap the server's error", tt.msg, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got.Error(), w) {
					t.Errorf("explainACL(%q) = %q, want it to say %q", tt.msg, got, w)
				}
			}
			if !isNoPerm(err) {
				t.Errorf("isNoPerm(%q) = false", tt.msg)
			}
		})
	}

	for _, msg := range []string{
		"WRONGTYPE Operation against a key holding the wrong kind of value",
		"NOSCRIPT No matching script. Please use EVAL.",
		"ERR Error running script (call to f_0123): @user_script:3: user_script:3: Script attempted to access nonexistent global variable 'x'",
		"ERR wrong number of arguments for 'xadd' command",
		"ERR unknown command 'noperm', with args beginning with: ",
		"BUSYGROUP Consumer Group name already exists",
		"NOGROUP No such key 'app:{t}:stream' or consumer group 'g'",
		"ERR the server said NOPERM in the middle",
		"ERR unknown command 'ACL failure in script', with args beginning with: ",
		"ERR unknown command 'The user executing the script can't', with args beginning with: ",
		"WRONGPASS invalid username-password pair or user is disabled.",
		"",
		context.DeadlineExceeded.Error(),
	} {
		err := errors.New(msg)
		if got := b.explainACL(err); got != err {
			t.Errorf("explainACL(%q) = %q, want the error unchanged", msg, got)
		}
		if isNoPerm(err) {
			t.Errorf("isNoPerm(%q) = true", msg)
		}
	}
}

// FuzzExplainACL checks that explainACL never panics, leaves errors that
// are not ACL refusals alone, and turns refusals into NOPERM errors that
// wrap the server's.
func FuzzExplainACL(f *testing.F) {
	for _, s := range []string{
		"NOPERM this user has no permissions to run the 'xadd' command",
		"NOPERM User u has no permissions to access the 'k' key",
		"ERR ACL failure in script: User u has no permissions to run the 'xlen' command script: " + trimScript.Hash() + ", on @user_script:3.",
		"ERR The user executing the script can't run this command or subcommand script: " + settleScript.Hash() + ", on @user_script:",
		"WRONGTYPE Operation against a key holding the wrong kind of value",
		"NOPERM '",
	} {
		f.Add(s)
	}
	b := &Broker{o: Options{Namespace: "app"}}
	f.Fuzz(func(t *testing.T, msg string) {
		err := errors.New(msg)
		got := b.explainACL(err)
		if _, ok := parseACLRefusal(msg); !ok {
			if got != err {
				t.Fatalf("explainACL(%q) = %q, want the error unchanged", msg, got)
			}
			return
		}
		if !strings.HasPrefix(got.Error(), "NOPERM: ") || !errors.Is(got, err) {
			t.Fatalf("explainACL(%q) = %q, want a NOPERM error wrapping it", msg, got)
		}
	})
}
