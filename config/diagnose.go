package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
)

// Diagnose turns an error met while connecting to Redis at rawURL into advice
// that says what to do, or "" when it does not recognise the error. The
// advice never quotes the password. Both the CLI (conveyor ping, conveyor
// worker) and programs embedding conveyor use it on startup:
//
//	if err := rdb.Ping(ctx).Err(); err != nil {
//		log.Fatalf("redis: %s\n%s", err, config.Diagnose(err, url))
//	}
func Diagnose(err error, rawURL string) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(msg, s) {
				return true
			}
		}
		return false
	}
	tlsOn := strings.HasPrefix(rawURL, "rediss://")
	host := "the server"
	if u, perr := url.Parse(rawURL); perr == nil && u.Host != "" {
		host = u.Host
	}
	var (
		dnsErr     *net.DNSError
		opErr      *net.OpError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
	)
	switch {
	case errors.Is(err, ErrUnencodedPassword) || rawURL != "" && errors.Is(CheckURL(rawURL), ErrUnencodedPassword):
		return "REDIS_URL has special characters in the password that must be URL-encoded (@ as %40, : as %3A, / as %2F, # as %23); " +
			"encode the password, for example with: python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=\"\"))' 'PASSWORD'"

	case errors.As(err, &recordErr) || has("first record does not look like a TLS handshake", "WRONG_VERSION_NUMBER", "wrong version number"):
		return fmt.Sprintf("this port does not speak TLS: use redis:// with %s, or rediss:// with the server's TLS port", host)

	case errors.As(err, &unknownCA) || has("certificate signed by unknown authority"):
		return "the server's certificate is not signed by a CA this machine trusts: set CONVEYOR_TLS_CA_FILE (tls.ca_file) " +
			"to the CA certificate of your Redis server or provider (never tls.insecure_skip_verify in production)"
	case errors.As(err, &hostErr) || has("certificate is valid for", "certificate is not valid for any names"):
		return fmt.Sprintf("the server's certificate does not name %s: connect with a host name the certificate lists", host)
	case errors.As(err, &invalidErr) || has("certificate has expired", "x509:"):
		return "the server's certificate was rejected (" + certReason(msg) + "): check the certificate on the server and tls.ca_file"
	case errors.As(err, &alertErr) && has("certificate required", "bad certificate", "unknown certificate authority") ||
		has("tls: certificate required", "remote error: tls: bad certificate", "remote error: tls: unknown certificate"):
		return "the server requires a client certificate it trusts: set CONVEYOR_TLS_CERT_FILE and CONVEYOR_TLS_KEY_FILE (tls.cert_file, tls.key_file)"

	case has("WRONGPASS", "invalid password", "invalid username-password pair"):
		return "wrong user name or password (or the ACL user is disabled): check the user in REDIS_URL " +
			"(\"default\" unless you were given an ACL user) and the password; URL-encode special characters in the password"
	case has("NOAUTH"):
		return "the server requires a password: put it in REDIS_URL as redis://default:PASSWORD@" + hostOr(host, "host:port") + "/0 (or rediss:// for TLS)"
	case has("without any password configured", "AUTH <password> called without"):
		return "the server has no password: remove user and password from REDIS_URL, or set a password on the server"
	case has("NOPERM"):
		return "the ACL user may not run a command conveyor needs: grant it on the server, for example ACL SETUSER <user> +@all ~<namespace>:* (see ACL LOG)"
	case has("DENIED Redis is running in protected mode"):
		return "the server runs in protected mode and refuses clients from other hosts: set a password on it (requirepass) or start it with --protected-mode no on a trusted network"
	case has("max number of clients reached"):
		return "the server has reached maxclients: stop idle clients or raise maxclients"
	case has("LOADING"):
		return "the server is loading its dataset into memory: retry in a moment"

	case errors.As(err, &dnsErr) || has("no such host", "server misbehaving"):
		name := host
		if dnsErr != nil && dnsErr.Name != "" {
			name = dnsErr.Name
		}
		return fmt.Sprintf("the host name %s does not resolve: check the host in REDIS_URL (and DNS on this machine)", name)
	case errors.Is(err, syscall.ECONNREFUSED) || has("connection refused"):
		return fmt.Sprintf("nothing accepts connections at %s: check the port in REDIS_URL and that Redis is running there", host)
	case errors.As(err, &opErr) && opErr.Op == "dial" && opErr.Timeout():
		return fmt.Sprintf("connecting to %s timed out: check the host and port, and that a firewall allows outbound traffic to that port", host)

	case !tlsOn && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || has("connection reset", "EOF", "broken pipe")):
		return fmt.Sprintf("%s closed the connection at once: this port expects TLS: use rediss:// (with the TLS port)", host)
	case !tlsOn && isTimeout(err):
		return fmt.Sprintf("%s accepted the connection but never answered: if this port expects TLS, use rediss://; "+
			"otherwise check that it is a Redis server and that a firewall does not drop traffic", host)
	case tlsOn && isTimeout(err):
		return fmt.Sprintf("the TLS handshake with %s did not complete: this port does not speak TLS: use redis:// with it, "+
			"or rediss:// with the server's TLS port; if it is the TLS port, check that a firewall allows the traffic", host)
	case tlsOn && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || has("connection reset", "EOF")):
		return fmt.Sprintf("%s closed the TLS connection: it may require a client certificate (tls.cert_file, tls.key_file) "+
			"or this may not be its TLS port", host)
	}
	return ""
}

func hostOr(host, fallback string) string {
	if host == "the server" {
		return fallback
	}
	return host
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "i/o timeout")
}

func certReason(msg string) string {
	if i := strings.Index(msg, "x509: "); i >= 0 {
		return msg[i+len("x509: "):]
	}
	return msg
}
