// Package testcerts issues throwaway X.509 certificates in memory for tests
// of dchan's TLS paths: a self-signed certificate authority and, per call,
// a fresh ECDSA P-256 leaf signed by it, wrapped in ready *tls.Config values.
//
// It is a normal package (it does not import "testing") so that the tests of
// every dchan package can use it; nothing in production code should.
//
// Every leaf is valid for IP 127.0.0.1, IP ::1 and DNS "localhost", carries
// both the server and the client extended key usage (each dchan node is
// both), and is valid from an hour ago for a day. The configs require TLS 1.3
// and verify the peer against the authority that issued them:
//
//	ca, err := testcerts.NewAuthority("cluster")
//	server, client, err := ca.NodeTLS("n1") // mTLS: server requires and verifies client certs
//
// Two authorities share nothing, so a config from one refuses a peer whose
// certificate comes from the other: that is how tests build a "wrong CA".
//
// An Authority holds no mutable state after NewAuthority returns and is safe
// for concurrent use.
package testcerts
