package security

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// NodeKey is the gRPC metadata key under which a node declares its ID on
// every RPC and stream it opens.
const NodeKey = "dchan-node"

// SPIFFEPrefix begins the path of the URI SAN that names a node in its
// certificate: spiffe://<trust-domain>/dchan/<node-id>.
const SPIFFEPrefix = "/dchan/"

// ErrIdentity: a certificate names no node, or several, or another node
// than the one configured.
var ErrIdentity = errors.New("security: node identity")

// CertIdentity returns the node ID a certificate vouches for: the
// <node-id> of its URI SAN spiffe://<trust-domain>/dchan/<node-id> if it
// has one, else its subject's Common Name. A certificate with several
// dchan URI SANs, or with neither kind of name, names no node.
func CertIdentity(cert *x509.Certificate) (string, error) {
	var ids []string
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" && strings.HasPrefix(u.Path, SPIFFEPrefix) {
			if id := strings.TrimPrefix(u.Path, SPIFFEPrefix); id != "" && !strings.Contains(id, "/") {
				ids = append(ids, id)
			}
		}
	}
	switch {
	case len(ids) == 1:
		return ids[0], nil
	case len(ids) > 1:
		return "", fmt.Errorf("%w: the certificate names %d nodes in its URI SANs (%s)", ErrIdentity, len(ids), strings.Join(ids, ", "))
	case cert.Subject.CommonName != "":
		return cert.Subject.CommonName, nil
	}
	return "", fmt.Errorf("%w: the certificate has neither a spiffe://.../dchan/<node-id> URI SAN nor a Common Name", ErrIdentity)
}

// ConfigIdentity returns the node ID that the first certificate of a TLS
// config vouches for, or "" without one.
func ConfigIdentity(c *tls.Config) (string, error) {
	if c == nil || len(c.Certificates) == 0 || len(c.Certificates[0].Certificate) == 0 {
		return "", nil
	}
	leaf := c.Certificates[0].Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificates[0].Certificate[0]); err != nil {
			return "", fmt.Errorf("%w: parsing the node's certificate: %w", ErrIdentity, err)
		}
	}
	return CertIdentity(leaf)
}

type identityKey struct{}

// PeerIdentity returns the node ID of the peer that opened the RPC or
// stream of ctx, as the Guard established it: the one its verified client
// certificate names, or, without client certificates, the one it declared
// when it opened the RPC or stream. "" when the Guard established none.
func PeerIdentity(ctx context.Context) string {
	id, _ := ctx.Value(identityKey{}).(string)
	return id
}

// identify establishes the identity of a new RPC or stream's peer and
// records it in the returned ctx. With a verified client certificate the
// certificate's identity is the peer's, and a different declared one is
// refused; without, the declared one is taken (one value at most).
func (g *Guard) identify(ctx context.Context, method string, md metadata.MD) (context.Context, error) {
	declared := md.Get(NodeKey)
	if len(declared) > 1 {
		g.refuseRPC(ctx, method, "several node IDs declared")
		return ctx, status.Error(codes.PermissionDenied, "dchan: several node IDs declared")
	}
	id := ""
	if len(declared) == 1 {
		id = declared[0]
	}
	if certID, ok, err := verifiedIdentity(ctx); ok {
		if err != nil {
			g.refuseRPC(ctx, method, err.Error())
			return ctx, status.Error(codes.PermissionDenied, "dchan: "+err.Error())
		}
		if id != "" && id != certID {
			g.refuseRPC(ctx, method, fmt.Sprintf("declared node %q, certificate names %q", id, certID))
			return ctx, status.Errorf(codes.PermissionDenied, "dchan: declared node %q but the certificate names %q", id, certID)
		}
		id = certID
	}
	if id == "" {
		g.refuseRPC(ctx, method, "no node ID")
		return ctx, status.Error(codes.PermissionDenied, "dchan: the peer declared no node ID")
	}
	return context.WithValue(ctx, identityKey{}, id), nil
}

// verifiedIdentity returns the identity of ctx's peer's verified client
// certificate; ok is false when the connection has none.
func verifiedIdentity(ctx context.Context) (id string, ok bool, err error) {
	p, found := peer.FromContext(ctx)
	if !found || p.AuthInfo == nil {
		return "", false, nil
	}
	info, isTLS := p.AuthInfo.(credentials.TLSInfo)
	if !isTLS || len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		return "", false, nil
	}
	id, err = CertIdentity(info.State.PeerCertificates[0])
	return id, true, err
}
