package dashboard

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// validate rejects contradictory settings.
func (a Auth) validate() error {
	basic := a.User != "" || a.Password != ""
	switch {
	case basic && a.Token != "":
		return errors.New("set basic auth or a token, not both")
	case basic && (a.User == "" || a.Password == ""):
		return errors.New("basic auth needs both a user and a password")
	}
	return nil
}

// tokenCookie holds a hash of the bearer token for browsers that logged in
// with ?token=.
const tokenCookie = "conveyor_dashboard"

// equal compares secrets in constant time (hashing first hides their
// lengths).
func equal(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// tokenHash is what the login cookie holds: never the token itself.
func tokenHash(token string) string {
	h := sha256.Sum256([]byte("conveyor-dashboard:" + token))
	return hex.EncodeToString(h[:])
}

// authenticate enforces Options.Auth in front of next.
func (d *Dashboard) authenticate(next http.Handler) http.Handler {
	a := d.o.Auth
	switch {
	case a.User != "":
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			user, pass, ok := r.BasicAuth()
			// Both compared, always, so timing says nothing about which failed.
			if userOK, passOK := equal(user, a.User), equal(pass, a.Password); !ok || !userOK || !passOK {
				w.Header().Set("WWW-Authenticate", `Basic realm="conveyor dashboard", charset="UTF-8"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	case a.Token != "":
		want := tokenHash(a.Token)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equal(bearer, a.Token) {
				next.ServeHTTP(w, r)
				return
			}
			if c, err := r.Cookie(tokenCookie); err == nil && equal(c.Value, want) {
				next.ServeHTTP(w, r)
				return
			}
			if t := r.URL.Query().Get("token"); t != "" && r.Method == http.MethodGet && equal(t, a.Token) {
				login(w, r, want)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="conveyor dashboard"`)
			http.Error(w, "authentication required: send \"Authorization: Bearer <token>\", or open the dashboard once with ?token=<token>", http.StatusUnauthorized)
		})
	default:
		return next
	}
}

// login sets the token cookie for the dashboard's whole mount path and
// redirects to the same page without the token in its URL.
func login(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, &http.Cookie{
		Name:     tokenCookie,
		Value:    value,
		Path:     mountPath(r),
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
	q := r.URL.Query()
	q.Del("token")
	loc := "./"
	if p := r.URL.Path; !strings.HasSuffix(p, "/") {
		loc = "./" + url.PathEscape(p[strings.LastIndex(p, "/")+1:])
	}
	if len(q) > 0 {
		loc += "?" + q.Encode()
	}
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusSeeOther)
}

// mountPath is the path the dashboard is mounted under, with a trailing
// slash: the original request path minus what http.StripPrefix left.
func mountPath(r *http.Request) string {
	orig := r.RequestURI
	if u, err := url.ParseRequestURI(orig); err == nil {
		orig = u.Path
	}
	p := strings.TrimSuffix(orig, r.URL.Path)
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

// csrfField is the form field carrying the CSRF token.
const csrfField = "csrf"

// csrfLifetime is how long a rendered page's actions stay valid.
const csrfLifetime = 12 * time.Hour

// csrf issues and checks tokens "<unix seconds>.<HMAC of them>" under a
// random key drawn when the process starts: a page rendered by this process
// can act, a forged form cannot (and Cross-Origin Protection rejects
// cross-site POSTs before they get here).
type csrf struct {
	key []byte
	now func() time.Time
}

func newCSRF(now func() time.Time) *csrf {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return &csrf{key: key, now: now}
}

func (c *csrf) mac(ts string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("csrf:" + ts))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (c *csrf) token() string {
	ts := strconv.FormatInt(c.now().Unix(), 10)
	return ts + "." + c.mac(ts)
}

func (c *csrf) valid(tok string) bool {
	ts, sig, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	if !hmac.Equal([]byte(sig), []byte(c.mac(ts))) {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	age := c.now().Sub(time.Unix(sec, 0))
	return age > -time.Minute && age < csrfLifetime
}
