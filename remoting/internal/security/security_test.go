package security

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const clusterToken = "s3cret-cluster-token"

// wantServed checks that both probe methods work from cc and were handled.
func wantServed(t *testing.T, srv *testServer, cc *grpc.ClientConn) {
	t.Helper()
	if err := callUnary(cc); err != nil {
		t.Fatalf("unary: %v", err)
	}
	if err := callStream(cc); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if u, s := srv.probe.handled(); u != 1 || s != 1 {
		t.Fatalf("handlers ran %d unary, %d stream times, want 1 and 1", u, s)
	}
}

// wantRefused checks that both probe methods fail from cc, with code want
// unless want is codes.OK (any failure), and that no handler ran: nothing
// a refused peer sends reaches the service behind the server.
func wantRefused(t *testing.T, srv *testServer, cc *grpc.ClientConn, want codes.Code) {
	t.Helper()
	for name, call := range map[string]func(*grpc.ClientConn) error{"unary": callUnary, "stream": callStream} {
		err := call(cc)
		switch {
		case err == nil:
			t.Errorf("%s: refused peer was served", name)
		case status.Code(err) == codes.OK:
			t.Errorf("%s: %v, not a gRPC status", name, err)
		case want != codes.OK && status.Code(err) != want:
			t.Errorf("%s: %v, want code %v", name, err, want)
		default:
			t.Logf("%s refused: %v", name, err)
		}
	}
	if u, s := srv.probe.handled(); u != 0 || s != 0 {
		t.Fatalf("handlers ran %d unary, %d stream times for a refused peer, want 0", u, s)
	}
}

func TestPlaintextNoToken(t *testing.T) {
	srv := startServer(t, Config{})
	wantServed(t, srv, dial(t, srv.addr, Config{}))
}

func TestToken(t *testing.T) {
	t.Run("correct", func(t *testing.T) {
		srv := startServer(t, Config{Token: clusterToken})
		wantServed(t, srv, dial(t, srv.addr, Config{Token: clusterToken}))
		if n := srv.logs.Len(); n != 0 {
			t.Errorf("%d log entries for an accepted peer, want 0", n)
		}
	})
	for _, tc := range []struct {
		name, token, reason, msg string
	}{
		{"missing", "", "missing token", msgMissingToken},
		{"wrong", "wrong-token-VALUE", "wrong token", msgInvalidToken},
		{"prefix", clusterToken[:len(clusterToken)-1], "wrong token", msgInvalidToken},
		{"longer", clusterToken + "x", "wrong token", msgInvalidToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, Config{Token: clusterToken})
			cc := dial(t, srv.addr, Config{Token: tc.token})
			wantRefused(t, srv, cc, codes.Unauthenticated)

			err := callUnary(cc)
			if got := status.Convert(err).Message(); got != tc.msg {
				t.Errorf("status message %q, want %q", got, tc.msg)
			}
			entries := srv.logs.FilterMessage("refused peer RPC").All()
			if len(entries) == 0 {
				t.Fatal("refusal not logged")
			}
			e := entries[0]
			fields := e.ContextMap()
			if e.Level.String() != "warn" {
				t.Errorf("logged at %v, want warn", e.Level)
			}
			if e.LoggerName != "security" {
				t.Errorf("logger %q, want security", e.LoggerName)
			}
			if p, _ := fields["peer"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("peer field %q, want the client's 127.0.0.1 address", p)
			}
			if fields["reason"] != tc.reason {
				t.Errorf("reason %v, want %q", fields["reason"], tc.reason)
			}
			// Neither the status nor the log may echo a token.
			for _, e := range srv.logs.All() {
				text := e.Message + fmt.Sprint(e.ContextMap())
				if tc.token != "" && strings.Contains(text, tc.token) {
					t.Errorf("log entry echoes the presented token: %s", text)
				}
				if strings.Contains(text, clusterToken) {
					t.Errorf("log entry echoes the cluster token: %s", text)
				}
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("status echoes the presented token: %v", err)
			}
		})
	}
}

// TestTokenRepeated sends the token twice in one RPC's metadata, which the
// server must refuse even though one of the values is right.
func TestTokenRepeated(t *testing.T) {
	srv := startServer(t, Config{Token: clusterToken})
	err := srv.guard.checkToken(context.Background(), methodUnary, metadata.Pairs(TokenKey, clusterToken, TokenKey, "other"))
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("checkToken with two tokens: %v, want Unauthenticated", err)
	}
	if err := srv.guard.checkToken(context.Background(), methodUnary, metadata.Pairs(TokenKey, clusterToken)); err != nil {
		t.Fatalf("checkToken with the token: %v", err)
	}
}

// TestTokenLogRateLimited checks that a burst of refusals logs once, and
// that the next entry reports how many were held back.
func TestTokenLogRateLimited(t *testing.T) {
	srv := startServer(t, Config{Token: clusterToken})
	srv.guard.tokenLog.interval = int64(time.Hour) // no entry falls due during the test
	cc := dial(t, srv.addr, Config{Token: "wrong"})
	const burst = 5
	for range burst {
		if err := callUnary(cc); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("unary: %v, want Unauthenticated", err)
		}
	}
	if n := srv.logs.FilterMessage("refused peer RPC").Len(); n != 1 {
		t.Fatalf("%d entries for %d refusals, want 1", n, burst)
	}
	srv.guard.tokenLog.next.Store(0) // the next entry is due
	if err := callUnary(cc); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unary: %v, want Unauthenticated", err)
	}
	entries := srv.logs.FilterMessage("refused peer RPC").All()
	if len(entries) != 2 {
		t.Fatalf("%d entries, want 2", len(entries))
	}
	if got := entries[1].ContextMap()["suppressed"]; got != uint64(burst-1) {
		t.Fatalf("suppressed = %v, want %d", got, burst-1)
	}
}

func TestMutualTLS(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	s1, c1 := nodeTLS(t, ca, "n1")
	s2, c2 := nodeTLS(t, ca, "n2")
	srv := startServer(t, Config{ServerTLS: s1, ClientTLS: c1})
	wantServed(t, srv, dial(t, srv.addr, Config{ServerTLS: s2, ClientTLS: c2}))
	if n := srv.logs.Len(); n != 0 {
		t.Errorf("%d log entries for an accepted peer, want 0", n)
	}
}

func TestTLSRefused(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	other := mustAuthority(t, "intruder")
	serverTLS, clientTLS := nodeTLS(t, ca, "n1")
	_, peerClientTLS := nodeTLS(t, ca, "n2")
	otherServerTLS, otherClientTLS := nodeTLS(t, other, "x")

	for _, tc := range []struct {
		name       string
		server     Config
		client     Config
		serverLogs string // the logged handshake error contains it; "" if none is logged
	}{
		{
			// The client trusts the cluster CA but presents a
			// certificate from another one.
			name:   "client certificate from another CA",
			server: Config{ServerTLS: serverTLS, ClientTLS: clientTLS},
			client: Config{
				ServerTLS: otherServerTLS,
				ClientTLS: presenting(peerClientTLS, otherClientTLS.Certificates[0]),
			},
			serverLogs: "signed by unknown authority",
		},
		{
			name:   "client without certificate",
			server: Config{ServerTLS: serverTLS, ClientTLS: clientTLS},
			client: func() Config {
				c := peerClientTLS.Clone()
				c.Certificates = nil
				return Config{ServerTLS: serverTLS, ClientTLS: c}
			}(),
			serverLogs: "didn't provide a certificate",
		},
		{
			// The client's own certificate is fine, but it does not
			// trust the server's CA and hangs up.
			name:   "client trusts another CA",
			server: Config{ServerTLS: otherServerTLS, ClientTLS: otherClientTLS},
			client: func() Config {
				return Config{ServerTLS: serverTLS, ClientTLS: peerClientTLS}
			}(),
			serverLogs: "bad certificate",
		},
		{
			name:       "plaintext client",
			server:     Config{ServerTLS: serverTLS, ClientTLS: clientTLS},
			client:     Config{},
			serverLogs: "does not look like a TLS handshake",
		},
		{
			name:   "TLS client, plaintext server",
			server: Config{},
			client: Config{ServerTLS: serverTLS, ClientTLS: peerClientTLS},
		},
		{
			// ServerName overrides the dialled address: the server's
			// certificate does not name it.
			name:   "ServerName not in the server certificate",
			server: Config{ServerTLS: serverTLS, ClientTLS: clientTLS},
			client: func() Config {
				c := peerClientTLS.Clone()
				c.ServerName = "elsewhere.invalid"
				return Config{ServerTLS: serverTLS, ClientTLS: c}
			}(),
			serverLogs: "bad certificate",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tc.server)
			cc := dial(t, srv.addr, tc.client)
			wantRefused(t, srv, cc, codes.OK)
			if tc.serverLogs == "" {
				return
			}
			e := waitForLog(t, srv.logs, "refused peer connection")
			if got := fmt.Sprint(e.ContextMap()["error"]); !strings.Contains(got, tc.serverLogs) {
				t.Errorf("logged error %q, want it to contain %q", got, tc.serverLogs)
			}
			if p, _ := e.ContextMap()["peer"].(string); !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("peer field %q, want the client's 127.0.0.1 address", p)
			}
		})
	}
}

// TestServerNameOverride checks that ClientTLS.ServerName, not the dialled
// IP, is the name verified: "localhost" is a DNS SAN of the test
// certificates.
func TestServerNameOverride(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	s1, c1 := nodeTLS(t, ca, "n1")
	s2, c2 := nodeTLS(t, ca, "n2")
	c2 = c2.Clone()
	c2.ServerName = "localhost"
	srv := startServer(t, Config{ServerTLS: s1, ClientTLS: c1})
	wantServed(t, srv, dial(t, srv.addr, Config{ServerTLS: s2, ClientTLS: c2}))
}

func TestTokenAndMutualTLS(t *testing.T) {
	ca := mustAuthority(t, "cluster")
	other := mustAuthority(t, "intruder")
	s1, c1 := nodeTLS(t, ca, "n1")
	s2, c2 := nodeTLS(t, ca, "n2")
	_, otherClient := nodeTLS(t, other, "x")
	server := Config{ServerTLS: s1, ClientTLS: c1, Token: clusterToken}

	t.Run("both right", func(t *testing.T) {
		srv := startServer(t, server)
		wantServed(t, srv, dial(t, srv.addr, Config{ServerTLS: s2, ClientTLS: c2, Token: clusterToken}))
	})
	t.Run("right certificate, wrong token", func(t *testing.T) {
		srv := startServer(t, server)
		wantRefused(t, srv, dial(t, srv.addr, Config{ServerTLS: s2, ClientTLS: c2, Token: "wrong"}), codes.Unauthenticated)
	})
	t.Run("right certificate, no token", func(t *testing.T) {
		srv := startServer(t, server)
		wantRefused(t, srv, dial(t, srv.addr, Config{ServerTLS: s2, ClientTLS: c2}), codes.Unauthenticated)
	})
	t.Run("right token, certificate from another CA", func(t *testing.T) {
		srv := startServer(t, server)
		c := presenting(c2, otherClient.Certificates[0])
		wantRefused(t, srv, dial(t, srv.addr, Config{ServerTLS: s2, ClientTLS: c, Token: clusterToken}), codes.OK)
	})
}
