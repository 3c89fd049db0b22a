package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conveyor-jobs/conveyor/internal/redact"
)

// Query parameters Open understands beyond go-redis's own.
const (
	queryCluster    = "cluster"     // "true": Redis Cluster, even with one seed address
	queryMasterName = "master_name" // Sentinel: the monitored master's name
)

// ErrInvalidURL is matched (with errors.Is) by the errors [Open] and
// [CheckURL] return for a Redis URL that is malformed: a wrong scheme, port,
// database or query option, an unencoded reserved character in the password,
// TLS options with a redis:// URL. Such an error is a mistake in the
// configuration, found before any connection is tried; the message says what
// to fix and never shows the password. It is a [*URLError].
var ErrInvalidURL = errors.New("conveyor/redis: invalid Redis URL")

// ErrUnencodedPassword is matched by the [*URLError] about a user name or
// password with a reserved character that must be percent-encoded.
var ErrUnencodedPassword = errors.New("special characters in the user name or password of a URL must be URL-encoded")

// URLPart names the part of a Redis URL a [URLError] is about.
type URLPart int

// The parts of a Redis URL.
const (
	// URLEmpty: the URL is empty or blank.
	URLEmpty URLPart = iota + 1
	// URLScheme: the scheme is missing or not redis:// or rediss://, or TLS
	// options come with a URL that is not rediss://.
	URLScheme
	// URLUserinfo: the user name or password.
	URLUserinfo
	// URLHost: a host of the host list, or its port.
	URLHost
	// URLPath: the path, which must be a database number.
	URLPath
	// URLQuery: a query option.
	URLQuery
	// URLSyntax: the URL does not parse, for no reason more precise.
	URLSyntax
)

// URLError is a malformed Redis URL, found without connecting. It matches
// [ErrInvalidURL].
type URLError struct {
	// URL is the URL with its password redacted; empty for [URLEmpty].
	URL string
	// Part is the part that is wrong.
	Part URLPart
	// Problem says what is wrong and how to fix it, without quoting the
	// URL or its password.
	Problem string
	// Err is the cause, when there is one to match: [ErrUnencodedPassword],
	// or the [*TLSError]s of TLS options given with a redis:// URL.
	Err error
}

// Error returns "conveyor/redis: invalid Redis URL <url>: <problem>".
func (e *URLError) Error() string {
	if e.URL == "" {
		return fmt.Sprintf("%v: %s", ErrInvalidURL, e.Problem)
	}
	return fmt.Sprintf("%v %s: %s", ErrInvalidURL, e.URL, e.Problem)
}

// Unwrap returns the cause, or nil.
func (e *URLError) Unwrap() error { return e.Err }

// Is matches ErrInvalidURL.
func (e *URLError) Is(target error) bool { return target == ErrInvalidURL }

// urlError returns a *URLError about part of the redacted URL safe.
func urlError(safe string, part URLPart, format string, args ...any) error {
	return &URLError{URL: safe, Part: part, Problem: fmt.Sprintf(format, args...)}
}

// CheckURL reports whether rawURL has a form [Open] accepts (see Open for
// the forms), without connecting: the error is a [*URLError] and says what
// to fix. Open makes the same checks.
func CheckURL(rawURL string) error {
	return URLRules{}.Check(rawURL)
}

// URLRules adjusts the checks of [CheckURL] for a program that validates a
// Redis URL it may also give to a go-redis client of its own (a
// configuration loader, say). The zero value makes Open's checks.
type URLRules struct {
	// Encoded rejects a reserved character left unencoded in the user name
	// or password even where the URL still reads one way: Open reads
	// redis://u:p@ss@host by its last '@', Encoded asks for p%40ss.
	Encoded bool
	// Host rejects a URL without any host, such as redis:///0, which Open
	// reads as localhost:6379.
	Host bool
	// Unix accepts unix:// socket URLs, which go-redis reads and Open
	// rejects.
	Unix bool
}

// Check is [CheckURL] with r's rules.
func (r URLRules) Check(rawURL string) error {
	_, err := r.parse(rawURL)
	return err
}

// Options returns the go-redis options for the first server of rawURL (the
// only one, or the first Cluster seed or Sentinel), checked with r's rules,
// with the TLS options t applied as Open applies them: for a go-redis client
// of one's own, such as a probe. Errors are a [*URLError] or a [*TLSError].
func (r URLRules) Options(rawURL string, t *TLSOptions) (*goredis.Options, error) {
	p, err := r.parse(rawURL)
	if err != nil {
		return nil, err
	}
	if err := p.applyTLS(t); err != nil {
		return nil, err
	}
	return p.o, nil
}

// parsedURL is a Redis URL as Open reads it.
type parsedURL struct {
	safe    string           // the URL, password redacted
	tls     bool             // rediss://
	o       *goredis.Options // auth, DB, TLS and go-redis's query options; Addr is addrs[0]
	addrs   []string         // host:port of every server given
	cluster bool             // ?cluster=true
	master  string           // ?master_name=…
}

// parseURL parses and checks rawURL as Open does, without connecting.
func parseURL(rawURL string) (*parsedURL, error) { return URLRules{}.parse(rawURL) }

// parse parses and checks rawURL without connecting.
func (r URLRules) parse(rawURL string) (*parsedURL, error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, &URLError{Part: URLEmpty, Problem: "the URL is empty: set REDIS_URL (or pass a URL), such as redis://localhost:6379"}
	}
	safe := RedactURL(rawURL)
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, urlError(safe, URLScheme, "missing scheme: scheme must be redis:// or rediss://, as in redis://[user:password@]host:port/db")
	}
	scheme = strings.ToLower(scheme)
	unix := scheme == "unix" && r.Unix
	if scheme != "redis" && scheme != "rediss" && !unix {
		return nil, urlError(safe, URLScheme, "scheme must be redis:// or rediss://")
	}
	if r.Encoded {
		if err := checkUserinfo(safe, rawURL); err != nil {
			return nil, err
		}
	}
	if unix {
		o, err := goredis.ParseURL(rawURL)
		if err != nil {
			part, problem := parseProblem(err)
			return nil, urlError(safe, part, "%s", problem)
		}
		return &parsedURL{safe: safe, o: o, addrs: []string{o.Addr}}, nil
	}
	return r.parseHosts(safe, rawURL)
}

// parseHosts parses and checks rawURL (redis:// or rediss://), password
// redacted in safe. A URL that does not parse, or parses with a user info
// shorter than all before the last '@' (an unencoded '/', '#' or '?' in the
// password cut it short) and is then rejected, is reported as a user info to
// encode when it holds a character to encode: the other errors would only
// describe the wrong cut.
func (r URLRules) parseHosts(safe, rawURL string) (*parsedURL, error) {
	u, hosts, cut, err := splitURL(rawURL)
	if err != nil {
		if err := checkUserinfo(safe, rawURL); err != nil {
			return nil, err
		}
		return nil, parseError(safe, err)
	}
	p, err := r.parseParts(safe, u, hosts)
	if err != nil && !cut && u.User != nil {
		if err := checkUserinfo(safe, rawURL); err != nil {
			return nil, err
		}
	}
	return p, err
}

// parseParts checks the parts of u, with hosts its host list, as Open reads
// them.
func (r URLRules) parseParts(safe string, u *url.URL, hosts []string) (*parsedURL, error) {
	var err error
	p := &parsedURL{safe: safe, tls: u.Scheme == "rediss"}
	q := u.Query()
	p.cluster = q.Get(queryCluster) == "true" || q.Get(queryCluster) == "1"
	p.master = q.Get(queryMasterName)
	q.Del(queryCluster)
	q.Del(queryMasterName)
	server := len(hosts) == 1 && !p.cluster && p.master == ""
	if r.Host && server && hosts[0] == "" {
		return nil, urlError(safe, URLHost, "missing host: write redis://[user:password@]host:port/db")
	}
	parsed := make([]*url.URL, len(hosts))
	for i, h := range hosts {
		if parsed[i], err = checkHost(safe, h, i, len(hosts), server); err != nil {
			return nil, err
		}
	}
	// Parse a single-host form of the URL with go-redis for auth, DB, TLS
	// and its query options.
	single := *u
	single.Host = parsed[0].Host
	single.RawQuery = q.Encode()
	if p.o, err = goredis.ParseURL(single.String()); err != nil {
		return nil, parseError(safe, err)
	}
	if server {
		p.addrs = []string{p.o.Addr}
		return p, nil
	}
	if (p.cluster || p.master == "") && p.o.DB != 0 {
		return nil, urlError(safe, URLPath, "Redis Cluster has only database 0: remove the /%d path", p.o.DB)
	}
	for _, h := range parsed {
		port := h.Port()
		if port == "" {
			port = "6379"
		}
		p.addrs = append(p.addrs, net.JoinHostPort(h.Hostname(), port))
	}
	return p, nil
}

// parseError is the *URLError for a parser's error err.
func parseError(safe string, err error) error {
	part, problem := parseProblem(err)
	return urlError(safe, part, "%s (URL-encode @ : / # ? %% in the user or password, e.g. @ as %%40)", problem)
}

// splitURL parses rawURL and returns it with the list of hosts its host
// part holds (h1:p1,h2:p2,…; one for a single server), and whether the
// host part was cut out as described below. url.Parse alone
// rejects a list that holds an IPv6 literal ("invalid IP-literal") or a
// malformed port anywhere but in the last host, and reads the list as one
// host; so the host part is cut out first (after the last '@', up to the
// first '/', '?' or '#'), and the cut is used only when the URL with a
// plain host in its place parses with that host. Otherwise the URL is
// parsed as written.
func splitURL(rawURL string) (*url.URL, []string, bool, error) {
	if _, rest, ok := strings.Cut(rawURL, "://"); ok {
		start := len(rawURL) - len(rest)
		if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			start += at + 1
		}
		end := len(rawURL)
		if i := strings.IndexAny(rawURL[start:], "/?#"); i >= 0 {
			end = start + i
		}
		const probe = "probe.invalid"
		if u, err := url.Parse(rawURL[:start] + probe + rawURL[end:]); err == nil && u.Host == probe {
			return u, strings.Split(rawURL[start:end], ","), true, nil
		}
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, false, err
	}
	return u, strings.Split(u.Host, ","), false, nil
}

// checkHost checks host h, the i-th of n hosts of the URL, and returns it
// parsed (Hostname and Port). An empty host, or a port without a host, is
// an error in a list or with cluster=true or master_name, where it would
// quietly mean localhost; for a single server (server true) it is go-redis's
// default, localhost:6379.
func checkHost(safe, h string, i, n int, server bool) (*url.URL, error) {
	where := "the host"
	if n > 1 {
		where = fmt.Sprintf("host %d of %d in the host list", i+1, n)
	}
	if h == "" && !server {
		if n > 1 {
			return nil, urlError(safe, URLHost, "%s is empty (two commas in a row, or a comma at the start or the end): remove the extra comma or write the host:port there", where)
		}
		return nil, urlError(safe, URLHost, "the host is empty: write the host:port of a server")
	}
	if err := checkPort(safe, h); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(h, "[") && strings.Count(h, ":") > 1 {
		return nil, urlError(safe, URLHost, "%s, %q, looks like an IPv6 address: write it in brackets, like [::1]:6379", where, h)
	}
	u, err := url.Parse("redis://" + h)
	switch {
	case err != nil && strings.HasPrefix(h, "["):
		return nil, urlError(safe, URLHost, "%s, %q, is not an IPv6 address in brackets with an optional port, like [::1]:6379", where, h)
	case err != nil:
		_, problem := parseProblem(err)
		return nil, urlError(safe, URLHost, "%s, %q: %s", where, h, problem)
	case u.Hostname() == "" && !server:
		return nil, urlError(safe, URLHost, "%s, %q, has a port but no host name: write host:port", where, h)
	}
	return u, nil
}

// checkPort returns a *URLError when addr (one host of the URL, with or
// without a port) has a port that is not a number from 1 to 65535. An
// address without a port uses 6379.
func checkPort(safe, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil // no port (6379), or a host the parsers report
	}
	if port == "" {
		return urlError(safe, URLHost, "the port after %q is empty: write %s:6379 (or the server's port), or leave out the ':'", host, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || strings.Trim(port, "0123456789") != "" || n < 1 || n > 65535 {
		return urlError(safe, URLHost, "port %q of %s is not a number from 1 to 65535: fix the port (Redis listens on 6379 unless configured otherwise)", port, host)
	}
	return nil
}

// parseProblem describes a URL parse error, and the part it is about,
// without quoting any part of the URL: the parsers quote the fragment they
// choke on, which can be a piece of a password holding an unencoded
// reserved character.
func parseProblem(err error) (URLPart, string) {
	msg := err.Error()
	for _, p := range []struct {
		key  string
		part URLPart
		say  string
	}{
		{"invalid port", URLHost, "invalid port after the host"},
		{"invalid database number", URLPath, "the path must be a database number, like /0"},
		{"invalid URL path", URLPath, "the path must be a database number, like /0"},
		{"unexpected option", URLQuery, "unknown query option"},
		{"invalid userinfo", URLUserinfo, "invalid user or password"},
		{"invalid URL escape", URLSyntax, "invalid %-escape"},
		{"invalid character", URLHost, "invalid character in the host"},
		{"missing protocol scheme", URLScheme, "missing redis:// or rediss://"},
		{"first path segment in URL cannot contain colon", URLScheme, "missing redis:// or rediss://"},
	} {
		if strings.Contains(msg, p.key) {
			return p.part, p.say
		}
	}
	if strings.HasPrefix(msg, "redis: invalid ") {
		return URLQuery, "malformed URL" // go-redis: a query option's value
	}
	return URLSyntax, "malformed URL"
}

// escapes names the characters that must be percent-encoded in a URL's
// userinfo, with their encoding.
var escapes = []struct{ char, enc string }{
	{"@", "%40"}, {":", "%3A"}, {"/", "%2F"}, {"#", "%23"}, {"?", "%3F"}, {" ", "%20"},
}

// checkUserinfo returns a *URLError matching ErrUnencodedPassword when the
// password or user name of rawURL (all between "://" and the last '@') holds
// a character that must be percent-encoded, naming each with its encoding.
func checkUserinfo(safe, rawURL string) error {
	user, password, _, ok := redact.Userinfo(rawURL)
	if !ok {
		return nil
	}
	for _, part := range []struct{ what, s string }{{"password", password}, {"user name", user}} {
		var found []string
		for _, e := range escapes {
			if strings.Contains(part.s, e.char) {
				found = append(found, fmt.Sprintf("%q as %s", e.char, e.enc))
			}
		}
		if badPercent(part.s) {
			found = append(found, `"%" as %25`)
		}
		if len(found) > 0 {
			return &URLError{URL: safe, Part: URLUserinfo, Err: ErrUnencodedPassword,
				Problem: fmt.Sprintf("%v: in the %s, write %s (keep the other characters as they are)",
					ErrUnencodedPassword, part.what, strings.Join(found, ", "))}
		}
	}
	return nil
}

// badPercent reports a "%" not followed by two hex digits.
func badPercent(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return true
		}
		i += 2
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
