package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// TLSServer is a redis-server speaking TLS on one port and plain TCP on another, with a
// CA, server certificate and client certificate generated for the test. Clients need not
// present a certificate (tls-auth-clients optional), but one signed by the CA is accepted.
// It is torn down when the test ends.
type TLSServer struct {
	// Namespace is a fresh random key prefix, as for Server.
	Namespace string
	// TLSURL is rediss://127.0.0.1:<tls port>; PlainURL is redis://127.0.0.1:<port>.
	TLSURL, PlainURL string
	// TLSAddr and PlainAddr are the two ports' host:port addresses.
	TLSAddr, PlainAddr string
	// CAFile is the PEM CA certificate that signed the server's and the client's
	// certificates. The server certificate is valid for 127.0.0.1, ::1 and localhost.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, signed by the CA.
	CertFile, KeyFile string
}

// CAPool returns a pool holding only the test CA.
func (s *TLSServer) CAPool() *x509.CertPool {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		panic("redistest: " + err.Error()) // written by StartTLS; gone only if the test removed it
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pool
}

// TLSConfig returns a client TLS configuration trusting the test CA and presenting the
// client certificate.
func (s *TLSServer) TLSConfig() *tls.Config {
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		panic("redistest: " + err.Error())
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		RootCAs:      s.CAPool(),
		Certificates: []tls.Certificate{cert},
	}
}

// Client returns a client connected over TLS with TLSConfig, closed when the test ends.
func (s *TLSServer) Client(t testing.TB) *goredis.Client {
	t.Helper()
	rdb := goredis.NewClient(&goredis.Options{Addr: s.TLSAddr, TLSConfig: s.TLSConfig()})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// StartTLS generates a CA, a server certificate and a client certificate in t.TempDir()
// and starts redis-server with TLS on a free port and plain TCP on another. It needs
// redis-server built with TLS (Debian's is) on PATH and skips the test (fails it when CI
// is "true") without it.
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	bin, err := redisServer()
	if err != nil {
		noRedis(t, "StartTLS needs redis-server (apt-get install redis-server)", nil)
	}
	dir := t.TempDir()
	s := &TLSServer{
		Namespace: newNamespace(t),
		CAFile:    filepath.Join(dir, "ca.crt"),
		CertFile:  filepath.Join(dir, "client.crt"),
		KeyFile:   filepath.Join(dir, "client.key"),
	}
	serverCert, serverKey := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := writeCerts(s.CAFile, serverCert, serverKey, s.CertFile, s.KeyFile); err != nil {
		t.Fatalf("redistest: generate certificates: %v", err)
	}
	p := &proc{
		bin: bin,
		dir: t.TempDir(),
		args: []string{
			"--tls-cert-file", serverCert,
			"--tls-key-file", serverKey,
			"--tls-ca-cert-file", s.CAFile,
			"--tls-auth-clients", "optional",
		},
		pick: func() ([]int, error) {
			plain, err := freePort()
			if err != nil {
				return nil, err
			}
			secure, err := freePort()
			return []int{plain, secure}, err
		},
		portArgs: func(ports []int) []string { return []string{"--tls-port", strconv.Itoa(ports[1])} },
	}
	if _, err := p.launch(); err != nil {
		t.Fatalf("redistest: TLS server: %v", err)
	}
	t.Cleanup(func() { p.halt(true) })
	s.PlainAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.ports[0]))
	s.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.ports[1]))
	s.PlainURL, s.TLSURL = "redis://"+s.PlainAddr, "rediss://"+s.TLSAddr
	t.Logf("redistest: using redis-server %s process with TLS at %s (plain %s), namespace %s",
		serverVersion(bin), s.TLSAddr, s.PlainAddr, s.Namespace)
	return s
}

// writeCerts writes a fresh CA, a server certificate for 127.0.0.1/::1/localhost and a
// client certificate, all ECDSA P-256, valid for a day.
func writeCerts(caFile, serverCert, serverKey, clientCert, clientKey string) error {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writePEM(caFile, "CERTIFICATE", caDER); err != nil {
		return err
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, certFile, keyFile string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyFile, "PRIVATE KEY", keyDER)
	}
	if err := leaf(2, "redistest server", x509.ExtKeyUsageServerAuth, serverCert, serverKey); err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	if err := leaf(3, "redistest client", x509.ExtKeyUsageClientAuth, clientCert, clientKey); err != nil {
		return fmt.Errorf("client certificate: %w", err)
	}
	return nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}
