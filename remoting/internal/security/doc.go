// Package security enforces a dchan node's transport security: optional TLS
// or mutual TLS on every connection, and an optional cluster token on every
// RPC and stream. It implements guarantee 10 of the design: a peer that
// fails TLS or the token is refused, and nothing it sent reaches an actor,
// the registry or Raft.
//
// # Use
//
// The remoting layer builds one Guard per node and uses it for the node's
// one gRPC server and for every client connection to a peer:
//
//	g, err := security.New(security.Config{
//		ServerTLS: serverTLS, // nil, nil: plaintext
//		ClientTLS: clientTLS,
//		Token:     token,     // "": no token check
//		Logger:    logger,
//	})
//	srv := grpc.NewServer(append(g.ServerOptions(), rawcodec.ServerOption())...)
//	cc, err := grpc.NewClient(addr, g.DialOptions()...)
//
// New validates the Config (Config.Validate) and fails with an error
// wrapping ErrInvalidConfig. A Guard runs no goroutine and needs no closing.
//
// # What is checked where
//
// TLS, on each connection, during the handshake, before gRPC reads a byte
// of HTTP/2. The server presents ServerTLS's certificate and, with
// ClientAuth tls.RequireAndVerifyClientCert, requires a client certificate
// that chains to ClientCAs: a peer without one, or with one from another
// CA, fails the handshake and the connection is closed (with TLS 1.3 the
// client learns it from an alert on its first read, so its RPC fails with
// codes.Unavailable). The client verifies the server's certificate against
// ClientTLS.RootCAs and the peer's address (see below) and hangs up on a
// server it does not trust, before sending the token. A plaintext client
// fails a TLS server's handshake; a TLS client fails against a plaintext
// server. Failed server handshakes are logged.
//
// Protocol version and token, on each RPC and each stream, in the
// server's tap handle (grpc.InTapHandle), which runs on the request's
// headers when the stream is created: before gRPC reads a byte of its body
// and before any handler or interceptor. The client attaches the token
// under TokenKey ("dchan-token") and its protocol version under
// ProtocolKey ("dchan-protocol") as metadata with per-RPC credentials, so
// every unary call and every stream (Raft's included) carries them. A peer
// whose version is outside Config.Protocol's range is refused with
// codes.FailedPrecondition and a message that names both versions
// (IsIncompatible recognises it). The server compares the SHA-256 digests
// of the presented and the configured token with crypto/subtle, in
// constant time, and refuses an RPC or stream whose metadata holds no
// token, a wrong one or more than one with codes.Unauthenticated. The
// status message says "missing" or "invalid" and never echoes what the
// peer sent. Every RPC and stream of every service on the server is
// checked, but for the methods listed in Config.Open (the health check),
// which are served to anyone who passes TLS.
//
// The token is only as secret as the wire: without TLS it crosses the
// network in clear text, and anyone who can read the traffic can replay
// it. Use a token without TLS only on a network you trust; with TLS it
// adds a second factor (a shared secret) to certificate-based membership.
// Use at least 32 random bytes, hex- or base64-encoded.
//
// # Logging
//
// Refusals are logged at Warn under the logger name "security", with the
// peer's address, and for a token refusal the method and the reason
// ("missing token", "wrong token", "several tokens"). Logging is rate
// limited per kind (TLS, token) to one entry a second; the refusals held
// back are counted in the next entry's "suppressed" field. A refusal held
// back costs a clock read and two atomic operations, so a peer flooding the
// node with bad connections or RPCs cannot flood its log.
//
// # Node identity
//
// A Guard with a NodeID is a node's: it declares that ID on every RPC and
// stream (NodeKey, "dchan-node") and requires one of every peer. With a
// verified client certificate, the peer's identity is the node the
// certificate names (CertIdentity: a URI SAN spiffe://<trust-domain>/dchan/<id>,
// or else the Common Name), and a different declared ID is refused with
// codes.PermissionDenied; without, it is the declared ID. The tap handle
// records it in the RPC's context (PeerIdentity) for the handlers, which
// let a peer act only as itself. Validate refuses a NodeID that the node's
// own certificate does not name.
//
// # Addressing peers by IP
//
// dchan dials peers at the addresses they listen on, usually IP:port. The
// client then verifies the server's certificate against that IP, and Go's
// crypto/tls only matches an IP against the certificate's IP address SANs
// (never its common name or DNS names). dchan expects operators to do one
// of the following:
//
//   - Preferred: issue each node a certificate from a private cluster CA
//     whose IP SANs hold every address peers dial it at (the address given
//     to WithListenAddr, or the one peers list in WithPeers), plus DNS SANs
//     for any host name used instead. Each node is both server and client,
//     so one certificate with both the server and the client extended key
//     usage serves both configs.
//   - When addresses are not known when certificates are issued (dynamic
//     IPs, containers): give every node's certificate one shared DNS SAN,
//     such as "dchan.cluster.internal", and set ClientTLS.ServerName to it.
//     gRPC then verifies that name, not the dialled address, and sends it
//     as SNI and :authority. This authenticates a peer as a member of the
//     cluster (holder of a certificate from its CA), not as the node at
//     that address; with a private CA per cluster that is the guarantee
//     dchan needs.
//
// In both cases ServerTLS should set ClientAuth to
// tls.RequireAndVerifyClientCert and ClientCAs to the cluster CA, and
// ClientTLS should set RootCAs to the same CA and Certificates to the
// node's certificate. InsecureSkipVerify is refused by Validate unless a
// VerifyPeerCertificate or VerifyConnection callback does the check.
// The internal/testcerts package issues certificates of the first kind
// (IP SANs 127.0.0.1 and ::1, DNS SAN localhost) for tests.
package security
