package security

import (
	"crypto/tls"
	"fmt"

	"go.uber.org/zap"
)

// MaxTokenLen is the longest cluster token Validate accepts. A token travels
// in an HTTP/2 header of every RPC; 32 random bytes, hex- or
// base64-encoded, are plenty.
const MaxTokenLen = 1024

// Config is a node's transport security. The zero Config is plaintext with
// no token: every peer that can reach the address is accepted.
type Config struct {
	// ServerTLS secures the node's gRPC server. Nil means plaintext. For
	// mutual TLS set ClientAuth to tls.RequireAndVerifyClientCert and
	// ClientCAs to the cluster's CA. ServerTLS and ClientTLS are set
	// together or not at all, since every node both serves and dials.
	ServerTLS *tls.Config

	// ClientTLS secures the node's connections to its peers. Nil means
	// plaintext. RootCAs verifies the peers' server certificates (nil means
	// the host's roots); Certificates is what the node presents to peers
	// that require client certificates. A non-empty ServerName is the name
	// every peer's certificate is verified against, whatever address the
	// peer is dialled at (see the package documentation).
	ClientTLS *tls.Config

	// Token is the shared cluster secret. When set, the client attaches it
	// to every RPC and stream and the server refuses any RPC or stream that
	// does not carry it. Empty means no check. Without TLS the token
	// crosses the network in clear text, readable by anyone on the path.
	// Visible ASCII only (0x21-0x7E), at most MaxTokenLen bytes.
	Token string

	// Protocol is the node's wire protocol version range: sent with every
	// RPC and stream, and checked on every one it serves. Zero: neither.
	Protocol Protocol

	// NodeID is this node's ID, declared on every RPC and stream it opens.
	// With a certificate in ClientTLS, that certificate must name it
	// (CertIdentity): peers take a node's identity from its verified
	// certificate and refuse a declared ID that differs. A Guard with a
	// NodeID also requires one of every peer, and records it in each
	// RPC's context (PeerIdentity); without, it establishes none.
	NodeID string

	// Open lists full method names ("/grpc.health.v1.Health/Check")
	// served to anyone who passes TLS, without the token or a protocol
	// version. Only methods that reveal nothing and change nothing belong
	// here.
	Open []string

	// Logger receives refusals (Warn, rate limited) under the name
	// "security". Nil means silent.
	Logger *zap.Logger
}

// Validate reports the first problem of c as an error wrapping
// ErrInvalidConfig, or nil.
func (c Config) Validate() error {
	if (c.ServerTLS == nil) != (c.ClientTLS == nil) {
		return fmt.Errorf("%w: ServerTLS and ClientTLS must be both set or both nil (a node both serves and dials its peers)", ErrInvalidConfig)
	}
	if c.ServerTLS != nil {
		if err := validateServerTLS(c.ServerTLS); err != nil {
			return err
		}
		if !authenticatesClients(c.ServerTLS) && c.Token == "" {
			// TLS that does not authenticate clients, and no token: every
			// client that reaches the node is a member. Plaintext without a
			// token says so plainly; this looks secure and is not.
			return fmt.Errorf("%w: ServerTLS.ClientAuth %v does not require client certificates and there is no token, so any client that reaches the node would be a member: require and verify client certificates (mutual TLS), or set a token", ErrInvalidConfig, c.ServerTLS.ClientAuth)
		}
	}
	if c.ClientTLS != nil {
		if err := validateClientTLS(c.ClientTLS); err != nil {
			return err
		}
	}
	if c.NodeID != "" && c.ClientTLS != nil {
		id, err := ConfigIdentity(c.ClientTLS)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		if id != "" && id != c.NodeID {
			return fmt.Errorf("%w: %w: the node's certificate names %q, its node ID is %q", ErrInvalidConfig, ErrIdentity, id, c.NodeID)
		}
	}
	if c.Protocol.Version < 0 || c.Protocol.Min < 0 || c.Protocol.Min > c.Protocol.Version {
		return fmt.Errorf("%w: protocol range [%d, %d] is empty or negative", ErrInvalidConfig, c.Protocol.Min, c.Protocol.Version)
	}
	return validateToken(c.Token)
}

// authenticatesClients reports whether s lets in only clients with a
// certificate that is verified: by the CA, or by a callback. A dynamic
// config (GetConfigForClient) is taken at its word.
func authenticatesClients(s *tls.Config) bool {
	custom := s.VerifyPeerCertificate != nil || s.VerifyConnection != nil
	return s.GetConfigForClient != nil || s.ClientAuth == tls.RequireAndVerifyClientCert ||
		(s.ClientAuth == tls.RequireAnyClientCert && custom)
}

func validateServerTLS(s *tls.Config) error {
	dynamic := s.GetConfigForClient != nil
	if len(s.Certificates) == 0 && s.GetCertificate == nil && !dynamic {
		return fmt.Errorf("%w: ServerTLS has no certificate (Certificates, GetCertificate or GetConfigForClient)", ErrInvalidConfig)
	}
	if err := validateVersion("ServerTLS", s); err != nil {
		return err
	}
	custom := s.VerifyPeerCertificate != nil || s.VerifyConnection != nil || dynamic
	switch s.ClientAuth {
	case tls.RequestClientCert, tls.RequireAnyClientCert:
		if !custom {
			return fmt.Errorf("%w: ServerTLS.ClientAuth %v accepts any client certificate unverified; use RequireAndVerifyClientCert with ClientCAs", ErrInvalidConfig, s.ClientAuth)
		}
	case tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert:
		if s.ClientCAs == nil && !custom {
			return fmt.Errorf("%w: ServerTLS.ClientAuth %v needs ClientCAs (the cluster CA); nil would trust the host's roots", ErrInvalidConfig, s.ClientAuth)
		}
	}
	return nil
}

func validateClientTLS(c *tls.Config) error {
	if err := validateVersion("ClientTLS", c); err != nil {
		return err
	}
	if c.InsecureSkipVerify && c.VerifyPeerCertificate == nil && c.VerifyConnection == nil {
		return fmt.Errorf("%w: ClientTLS.InsecureSkipVerify without VerifyPeerCertificate or VerifyConnection accepts any server, and hands it the token", ErrInvalidConfig)
	}
	return nil
}

// validateVersion refuses versions below TLS 1.2, which HTTP/2 (RFC 9113
// section 9.2) and therefore gRPC forbid.
func validateVersion(field string, c *tls.Config) error {
	if c.MinVersion != 0 && c.MinVersion < tls.VersionTLS12 {
		return fmt.Errorf("%w: %s.MinVersion %s is below TLS 1.2, which gRPC requires", ErrInvalidConfig, field, tls.VersionName(c.MinVersion))
	}
	if c.MaxVersion != 0 && c.MaxVersion < tls.VersionTLS12 {
		return fmt.Errorf("%w: %s.MaxVersion %s is below TLS 1.2, which gRPC requires", ErrInvalidConfig, field, tls.VersionName(c.MaxVersion))
	}
	return nil
}

func validateToken(token string) error {
	if len(token) > MaxTokenLen {
		return fmt.Errorf("%w: token is %d bytes, longer than %d", ErrInvalidConfig, len(token), MaxTokenLen)
	}
	for i := 0; i < len(token); i++ {
		if b := token[i]; b < 0x21 || b > 0x7e {
			// Name the position, never the byte: a config error must
			// not leak part of the secret into logs.
			return fmt.Errorf("%w: token byte %d is not visible ASCII (0x21-0x7E)", ErrInvalidConfig, i)
		}
	}
	return nil
}
