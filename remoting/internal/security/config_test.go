package security

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	server, client := nodeTLS(t, ca, "n1")
	with := func(c *tls.Config, change func(*tls.Config)) *tls.Config {
		c = c.Clone()
		change(c)
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero config", Config{}, true},
		{"token only", Config{Token: "abc-DEF_123.~!"}, true},
		{"mTLS", Config{ServerTLS: server, ClientTLS: client}, true},
		{"mTLS and token", Config{ServerTLS: server, ClientTLS: client, Token: "t"}, true},
		{"server-only TLS and a token", Config{
			ServerTLS: with(server, func(c *tls.Config) { c.ClientAuth = tls.NoClientCert; c.ClientCAs = nil }),
			ClientTLS: with(client, func(c *tls.Config) { c.Certificates = nil }),
			Token:     "t",
		}, true},
		{"client certificates if given, and a token", Config{
			ServerTLS: with(server, func(c *tls.Config) { c.ClientAuth = tls.VerifyClientCertIfGiven }),
			ClientTLS: client, Token: "t",
		}, true},
		{"ServerName override", Config{ServerTLS: server, ClientTLS: with(client, func(c *tls.Config) { c.ServerName = "dchan.cluster.internal" })}, true},
		{"longest token", Config{Token: strings.Repeat("x", MaxTokenLen)}, true},

		{"server-only TLS without a token", Config{
			ServerTLS: with(server, func(c *tls.Config) { c.ClientAuth = tls.NoClientCert; c.ClientCAs = nil }),
			ClientTLS: with(client, func(c *tls.Config) { c.Certificates = nil }),
		}, false},
		{"client certificates if given, without a token", Config{
			ServerTLS: with(server, func(c *tls.Config) { c.ClientAuth = tls.VerifyClientCertIfGiven }),
			ClientTLS: client,
		}, false},
		{"ServerTLS without ClientTLS", Config{ServerTLS: server}, false},
		{"ClientTLS without ServerTLS", Config{ClientTLS: client}, false},
		{"server without certificate", Config{ServerTLS: with(server, func(c *tls.Config) { c.Certificates = nil }), ClientTLS: client}, false},
		{"server TLS 1.1", Config{ServerTLS: with(server, func(c *tls.Config) { c.MinVersion = tls.VersionTLS11 }), ClientTLS: client}, false},
		{"client max TLS 1.1", Config{ServerTLS: server, ClientTLS: with(client, func(c *tls.Config) { c.MaxVersion = tls.VersionTLS11 })}, false},
		{"client certs unverified", Config{ServerTLS: with(server, func(c *tls.Config) { c.ClientAuth = tls.RequireAnyClientCert }), ClientTLS: client}, false},
		{"client certs against host roots", Config{ServerTLS: with(server, func(c *tls.Config) { c.ClientCAs = nil }), ClientTLS: client}, false},
		{"InsecureSkipVerify", Config{ServerTLS: server, ClientTLS: with(client, func(c *tls.Config) { c.InsecureSkipVerify = true })}, false},
		{"token too long", Config{Token: strings.Repeat("x", MaxTokenLen+1)}, false},
		{"token with space", Config{Token: "two words"}, false},
		{"token with newline", Config{Token: "line\n"}, false},
		{"token with non-ASCII", Config{Token: "café"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.ok {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(tc.cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			if _, err := New(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
			if tc.cfg.Token != "" && strings.Contains(err.Error(), tc.cfg.Token) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
}

// TestValidateCustomVerification accepts configs that switch off the
// built-in checks but verify peers in a callback.
func TestValidateCustomVerification(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	server, client := nodeTLS(t, ca, "n1")
	check := func(tls.ConnectionState) error { return nil }
	server = server.Clone()
	server.ClientAuth = tls.RequireAnyClientCert
	server.VerifyConnection = check
	client = client.Clone()
	client.InsecureSkipVerify = true
	client.VerifyConnection = check
	if err := (Config{ServerTLS: server, ClientTLS: client}).Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

// TestNewCopiesTLS checks that changing a TLS config after New does not
// change the Guard.
func TestNewCopiesTLS(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	other := mustAuthority(t, "intruder")
	s1, c1 := nodeTLS(t, ca, "n1")
	s2, c2 := nodeTLS(t, ca, "n2")
	srv := startServer(t, Config{ServerTLS: s1, ClientTLS: c1})
	cc := dial(t, srv.addr, Config{ServerTLS: s2, ClientTLS: c2})
	c2.RootCAs = other.CertPool() // after New: must not matter
	wantServed(t, srv, cc)
}
