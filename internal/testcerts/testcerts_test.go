package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func mustAuthority(t *testing.T, name string) *Authority {
	t.Helper()
	a, err := NewAuthority(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestEmptyName(t *testing.T) {
	if _, err := NewAuthority(""); !errors.Is(err, ErrEmptyName) {
		t.Fatalf("NewAuthority(\"\") = %v, want ErrEmptyName", err)
	}
	if _, err := mustAuthority(t, "ca").Issue(""); !errors.Is(err, ErrEmptyName) {
		t.Fatalf("Issue(\"\") = %v, want ErrEmptyName", err)
	}
}

func TestLeaf(t *testing.T) {
	ca := mustAuthority(t, "ca")
	cert, err := ca.Issue("n1")
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf.Subject.CommonName != "n1" {
		t.Errorf("common name %q, want n1", leaf.Subject.CommonName)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		if err := leaf.VerifyHostname(host); err != nil {
			t.Errorf("VerifyHostname(%q): %v", host, err)
		}
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		opts := x509.VerifyOptions{Roots: ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{usage}}
		if _, err := leaf.Verify(opts); err != nil {
			t.Errorf("verify for usage %v: %v", usage, err)
		}
	}
	other := mustAuthority(t, "other")
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: other.CertPool()}); err == nil {
		t.Error("leaf verified against another authority")
	}
}

// handshake runs a TLS handshake between server and client configs over a
// loopback TCP connection (buffered, unlike net.Pipe, so that an alert and a
// write can cross) and returns both sides' errors.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	cc, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := lis.Accept()
	if err != nil {
		_ = cc.Close()
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	_ = sc.SetDeadline(deadline)
	_ = cc.SetDeadline(deadline)
	client = client.Clone()
	client.ServerName = "127.0.0.1"
	done := make(chan error, 1)
	go func() {
		s := tls.Server(sc, server)
		err := s.Handshake()
		if err == nil {
			// TLS 1.3 servers verify the client's certificate only after
			// sending their own flight: read once so a refusal reaches the
			// client as an alert instead of a silent close.
			_, err = s.Read(make([]byte, 1))
		}
		_ = s.Close()
		done <- err
	}()
	c := tls.Client(cc, client)
	clientErr = c.Handshake()
	if clientErr == nil {
		_, clientErr = c.Write([]byte{1})
		if clientErr == nil {
			_, clientErr = c.Read(make([]byte, 1)) // EOF when the server closed cleanly
			if errors.Is(clientErr, io.EOF) {
				clientErr = nil
			}
		}
	}
	_ = c.Close()
	serverErr = <-done
	return serverErr, clientErr
}

func TestNodeTLS(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	s1, _, err := ca.NodeTLS("n1")
	if err != nil {
		t.Fatal(err)
	}
	_, c2, err := ca.NodeTLS("n2")
	if err != nil {
		t.Fatal(err)
	}
	if s1.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("server ClientAuth %v, want RequireAndVerifyClientCert", s1.ClientAuth)
	}
	if serr, cerr := handshake(t, s1, c2); serr != nil || cerr != nil {
		t.Fatalf("same authority: server %v, client %v", serr, cerr)
	}
}

func TestServerAndClientTLS(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	server, err := ca.ServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.ClientTLS()
	if err != nil {
		t.Fatal(err)
	}
	if serr, cerr := handshake(t, server, client); serr != nil || cerr != nil {
		t.Fatalf("same authority: server %v, client %v", serr, cerr)
	}
}

func TestOtherAuthorityRefused(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	other := mustAuthority(t, "intruder")
	server, client, err := ca.NodeTLS("n1")
	if err != nil {
		t.Fatal(err)
	}
	_, otherClient, err := other.NodeTLS("x")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("client cert from other CA", func(t *testing.T) {
		// Present the certificate whatever CAs the server names; given
		// Certificates, crypto/tls would send none to this server.
		c := client.Clone()
		c.Certificates = nil
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &otherClient.Certificates[0], nil
		}
		serr, cerr := handshake(t, server, c)
		var unknown x509.UnknownAuthorityError
		if !errors.As(serr, &unknown) || cerr == nil {
			t.Fatalf("client certificate from another authority: server %v, client %v; want both to fail, the server for an unknown authority", serr, cerr)
		}
	})
	t.Run("client trusts other CA", func(t *testing.T) {
		_, cerr := handshake(t, server, otherClient)
		if cerr == nil {
			t.Fatal("client accepted a server certificate from another authority")
		}
	})
	t.Run("no client cert", func(t *testing.T) {
		c := client.Clone()
		c.Certificates = nil
		serr, _ := handshake(t, server, c)
		if serr == nil {
			t.Fatal("server accepted a client without a certificate")
		}
	})
}
