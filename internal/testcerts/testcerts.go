package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Validity window of every certificate, relative to its issue time.
const (
	backdate = time.Hour      // tolerates clock skew between test processes
	lifetime = 24 * time.Hour // plenty for one test run
)

// Authority is an in-memory certificate authority.
type Authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewAuthority creates a self-signed CA whose subject common name is name.
func NewAuthority(name string) (*Authority, error) {
	if name == "" {
		return nil, ErrEmptyName
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"dchan test"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("testcerts: CA certificate: %w", err)
	}
	return &Authority{cert: cert, key: key}, nil
}

// CertPool returns a new pool holding only the CA's certificate.
func (a *Authority) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(a.cert)
	return pool
}

// Issue returns a new leaf key pair signed by the CA, with common name name,
// the SANs 127.0.0.1, ::1 and localhost, and both server and client
// extended key usage. The returned certificate's chain holds the leaf only;
// peers verify it against the CA's pool.
func (a *Authority) Issue(name string) (tls.Certificate, error) {
	if name == "" {
		return tls.Certificate{}, ErrEmptyName
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testcerts: leaf key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"dchan test"}},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testcerts: leaf certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("testcerts: leaf certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerTLS returns a server config with a fresh leaf named "server" that
// requires a client certificate and verifies it against the CA (mTLS).
func (a *Authority) ServerTLS() (*tls.Config, error) {
	cert, err := a.Issue("server")
	if err != nil {
		return nil, err
	}
	return a.serverConfig(cert), nil
}

// ClientTLS returns a client config with a fresh leaf named "client" that it
// presents to servers, and that verifies servers against the CA.
func (a *Authority) ClientTLS() (*tls.Config, error) {
	cert, err := a.Issue("client")
	if err != nil {
		return nil, err
	}
	return a.clientConfig(cert), nil
}

// NodeTLS returns the server and client configs of one dchan node: both
// present the same fresh leaf named name, the server requires and verifies
// client certificates, the client verifies servers; both trust only the CA.
func (a *Authority) NodeTLS(name string) (server, client *tls.Config, err error) {
	cert, err := a.Issue(name)
	if err != nil {
		return nil, nil, err
	}
	return a.serverConfig(cert), a.clientConfig(cert), nil
}

func (a *Authority) serverConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    a.CertPool(),
		MinVersion:   tls.VersionTLS13,
	}
}

func (a *Authority) clientConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      a.CertPool(),
		MinVersion:   tls.VersionTLS13,
	}
}

// serialNumber returns a random positive 128-bit certificate serial number.
func serialNumber() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("testcerts: serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
