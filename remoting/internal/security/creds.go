package security

import (
	"net"

	"google.golang.org/grpc/credentials"
)

// serverCreds wraps the server's TLS credentials to log failed handshakes
// through the node's logger: a peer refused by TLS is logged like one
// refused for its token. gRPC then closes the connection; nothing the peer
// sent has been read as HTTP/2.
type serverCreds struct {
	credentials.TransportCredentials
	g *Guard
}

func (c serverCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		c.g.refuseConn(raw.RemoteAddr(), err)
	}
	return conn, info, err
}

func (c serverCreds) Clone() credentials.TransportCredentials {
	return serverCreds{TransportCredentials: c.TransportCredentials.Clone(), g: c.g}
}
