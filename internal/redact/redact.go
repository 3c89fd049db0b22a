// Package redact removes passwords from Redis URLs and from text that may
// quote them (error messages, log lines), for everything conveyor shows to
// people.
//
// The functions work on strings that do not parse as URLs: a password with
// an unencoded '@', '/' or '#' is exactly what makes a URL fail to parse, and
// such errors are the ones most likely to quote it. The user information of a
// URL is read as everything between the "://" after its scheme (or the start,
// when the URL has no scheme) and the last '@'; the password is what follows
// its first ':'.
package redact

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Mask is what every redacted password is replaced by.
const Mask = "xxxxx"

// minForm is the length under which a form of a password is not replaced in
// free text: one or two characters would mangle unrelated words.
const minForm = 3

// Userinfo returns the user name and password of rawURL without parsing it.
// ok reports whether rawURL has user information (an '@'); hasPassword
// whether it has a ':' separating a password, which may be empty. Without a
// ':' the whole user information is the user name.
func Userinfo(rawURL string) (user, password string, hasPassword, ok bool) {
	start, at := bounds(rawURL)
	if at < 0 {
		return "", "", false, false
	}
	user, password, hasPassword = strings.Cut(rawURL[start:at], ":")
	return user, password, hasPassword, true
}

// bounds returns where the user information of s starts and the index of
// the '@' that ends it, or at = -1 when s has none. A "://" ends a scheme
// only before that '@' and after a valid scheme name, so that one in the
// host, the path or the password itself cannot hide the password.
func bounds(s string) (start, at int) {
	at = strings.LastIndex(s, "@")
	if at < 0 {
		return 0, -1
	}
	if i := strings.Index(s[:at], "://"); i >= 0 && isScheme(s[:i]) {
		start = i + 3
	}
	return start, at
}

// isScheme reports whether s is a URL scheme: a letter followed by letters,
// digits, '+', '-' or '.' (RFC 3986).
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// URL returns rawURL with the password in its user information replaced by
// [Mask]: "redis://user:s3cret@host:6379/0" becomes
// "redis://user:xxxxx@host:6379/0". A URL without a password (no ':' in the
// user information) is returned unchanged, and so are its query and
// fragment: see [Password] for a password given as a query parameter.
func URL(rawURL string) string {
	start, at := bounds(rawURL)
	if at < 0 {
		return rawURL
	}
	user, _, hasPassword := strings.Cut(rawURL[start:at], ":")
	if !hasPassword {
		return rawURL
	}
	return rawURL[:start] + user + ":" + Mask + rawURL[at:]
}

// Address returns rawURL with its password replaced by [Mask] (as [URL]
// does) and without its query or fragment, which may carry a password
// too: "rediss://:s3cret@h:6380?password=x" becomes "rediss://:xxxxx@h:6380".
// It is for showing where conveyor connects, in a header or a listing.
func Address(rawURL string) string {
	r := URL(rawURL)
	start := strings.LastIndex(r, "@") + 1
	if start == 0 {
		if _, rest, ok := strings.Cut(r, "://"); ok {
			start = len(r) - len(rest)
		}
	}
	if i := strings.IndexAny(r[start:], "?#"); i >= 0 {
		r = r[:start+i]
	}
	return r
}

// Password returns the password of rawURL: the one in its user information,
// or else the value of its "password" query parameter, or "".
func Password(rawURL string) string {
	start, at := bounds(rawURL)
	rest := rawURL[start:]
	if at >= 0 {
		if _, pw, ok := strings.Cut(rawURL[start:at], ":"); ok && pw != "" {
			return pw
		}
		rest = rawURL[at+1:]
	}
	if _, q, ok := strings.Cut(rest, "?"); ok {
		// ParseQuery keeps the parameters it can read after a bad one.
		v, _ := url.ParseQuery(q)
		return v.Get("password")
	}
	return ""
}

// In returns msg with every form of rawURL's password (see [Password])
// replaced by [Mask]: as written, percent-decoded, and query- or
// path-escaped, so that an error quoting the password in any of these forms
// does not show it. Forms shorter than three characters are left alone.
func In(msg, rawURL string) string {
	pw := Password(rawURL)
	if pw == "" {
		return msg
	}
	forms := []string{pw, url.QueryEscape(pw), url.PathEscape(pw)}
	if dec, err := url.PathUnescape(pw); err == nil {
		forms = append(forms, dec, url.QueryEscape(dec), url.PathEscape(dec))
	}
	// Longest first, so that a form containing another is replaced whole.
	slices.SortStableFunc(forms, func(a, b string) int { return len(b) - len(a) })
	for _, f := range forms {
		if len(f) >= minForm {
			msg = strings.ReplaceAll(msg, f, Mask)
		}
	}
	return msg
}

// userinfoIn matches the user information of a URL inside free text: "://"
// (with or without a scheme before it, since error messages quote fragments
// that may start inside a URL) up to the last '@' before white space.
var userinfoIn = regexp.MustCompile(`://[^\s]*@`)

// URLsIn returns s with the passwords of the URLs in it replaced by [Mask]:
// "dial redis://user:s3cret@host: refused" becomes
// "dial redis://user:xxxxx@host: refused". User information without a ':'
// ("https://ghp_token@github.com"), which is usually a token, is replaced
// whole. The user information runs to the last '@' before white space, so a
// password with an unencoded '@' or quote is hidden whole; text without
// "://" is unchanged.
func URLsIn(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	return userinfoIn.ReplaceAllStringFunc(s, func(m string) string {
		info := m[len("://") : len(m)-len("@")]
		if user, _, ok := strings.Cut(info, ":"); ok {
			return "://" + user + ":" + Mask + "@"
		}
		return "://" + Mask + "@"
	})
}
