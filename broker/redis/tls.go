package redis

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// TLSProblem says what is wrong with a field of [TLSOptions].
type TLSProblem int

// The problems a [TLSError] reports.
const (
	// TLSWithoutRediss: the field is set but the URL is not rediss://.
	TLSWithoutRediss TLSProblem = iota + 1
	// TLSHalfPair: CertFile or KeyFile is set without the other; the
	// error's Field is the one missing.
	TLSHalfPair
	// TLSUnreadable: the field's file cannot be read; Err says why.
	TLSUnreadable
	// TLSNoCertificate: the field's file holds no usable certificate (no
	// PEM certificate in CAFile, or a CertFile and KeyFile that do not
	// load as a pair); Err says why when there is more to say.
	TLSNoCertificate
)

// TLSError is a problem with one field of [TLSOptions].
type TLSError struct {
	// Field is the TLSOptions field: "CAFile", "CertFile", "KeyFile",
	// "ServerName" or "InsecureSkipVerify".
	Field string
	// Problem says what is wrong with it.
	Problem TLSProblem
	// File is the field's file, for a file field.
	File string
	// Err is the cause from the file system or crypto/tls, or nil.
	Err error
}

// Error describes the problem in the terms of TLSOptions.
func (e *TLSError) Error() string {
	switch {
	case e.Problem == TLSWithoutRediss:
		return fmt.Sprintf("conveyor/redis: TLS option %s is set but the URL is not a rediss:// URL: use rediss:// or remove the TLS options", e.Field)
	case e.Problem == TLSHalfPair:
		return "conveyor/redis: TLS client certificate needs both CertFile and KeyFile"
	case e.Field == "CAFile" && e.Problem == TLSUnreadable:
		return fmt.Sprintf("conveyor/redis: TLS CA file: %v", e.Err)
	case e.Field == "CAFile":
		return fmt.Sprintf("conveyor/redis: TLS CA file %s holds no PEM certificate", e.File)
	default:
		return fmt.Sprintf("conveyor/redis: TLS client certificate: %v", e.Err)
	}
}

// Unwrap returns the cause, or nil.
func (e *TLSError) Unwrap() error { return e.Err }

// CheckTLS reports what [Open] would reject in the TLS options t for
// rawURL, without connecting or reading the files: a field set while
// rawURL is not rediss://, CertFile without KeyFile or the other way
// round, a file that is not there. Each problem is a [*TLSError]; several
// are joined. Open also reads the files, and reports what they hold.
func CheckTLS(rawURL string, t *TLSOptions) error {
	scheme, _, _ := strings.Cut(rawURL, "://")
	var errs []error
	for _, e := range tlsProblems(strings.EqualFold(scheme, "rediss"), t) {
		errs = append(errs, e)
	}
	if t != nil {
		for _, f := range []struct{ field, path string }{
			{"CAFile", t.CAFile}, {"CertFile", t.CertFile}, {"KeyFile", t.KeyFile},
		} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				errs = append(errs, &TLSError{Field: f.field, Problem: TLSUnreadable, File: f.path, Err: err})
			}
		}
	}
	return errors.Join(errs...)
}

// tlsProblems returns the problems of t, for a rediss:// URL when rediss
// is true, that need no file read.
func tlsProblems(rediss bool, t *TLSOptions) []*TLSError {
	if t == nil {
		return nil
	}
	var errs []*TLSError
	if !rediss {
		for _, f := range []struct {
			field string
			set   bool
		}{
			{"CAFile", t.CAFile != ""},
			{"CertFile", t.CertFile != ""},
			{"KeyFile", t.KeyFile != ""},
			{"ServerName", t.ServerName != ""},
			{"InsecureSkipVerify", t.InsecureSkipVerify},
		} {
			if f.set {
				errs = append(errs, &TLSError{Field: f.field, Problem: TLSWithoutRediss})
			}
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		missing := "KeyFile"
		if t.CertFile == "" {
			missing = "CertFile"
		}
		errs = append(errs, &TLSError{Field: missing, Problem: TLSHalfPair})
	}
	return errs
}

// applyTLS checks the TLS options t for p and adds their files and
// settings to p's TLS configuration.
func (p *parsedURL) applyTLS(t *TLSOptions) error {
	problems := tlsProblems(p.tls, t)
	var notRediss []error
	for _, e := range problems {
		if e.Problem == TLSWithoutRediss {
			notRediss = append(notRediss, e)
		}
	}
	if len(notRediss) > 0 {
		return &URLError{URL: p.safe, Part: URLScheme, Err: errors.Join(notRediss...),
			Problem: "TLS options are set but this is not a rediss:// URL: use rediss:// or remove the TLS options"}
	}
	if p.o.TLSConfig == nil {
		return nil
	}
	if len(problems) > 0 {
		return problems[0]
	}
	return loadTLS(p.o.TLSConfig, t)
}

// loadTLS adds t's files and settings to c.
func loadTLS(c *tls.Config, t *TLSOptions) error {
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	if t == nil {
		return nil
	}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.InsecureSkipVerify { // never turns off a skip_verify=true the URL asked for
		c.InsecureSkipVerify = true
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return &TLSError{Field: "CAFile", Problem: TLSUnreadable, File: t.CAFile, Err: err}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return &TLSError{Field: "CAFile", Problem: TLSNoCertificate, File: t.CAFile}
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			e := &TLSError{Field: "CertFile", Problem: TLSNoCertificate, File: t.CertFile, Err: err}
			var pe *fs.PathError
			if errors.As(err, &pe) {
				e.Problem = TLSUnreadable
				if pe.Path == t.KeyFile && pe.Path != t.CertFile {
					e.Field, e.File = "KeyFile", t.KeyFile
				}
			}
			return e
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return nil
}
