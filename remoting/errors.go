package remoting

import "errors"

var (
	// ErrEncode reports a message value that could not be encoded: its type
	// is not registered with the codec, or the codec cannot represent it
	// (a nil pointer, a channel, a func, a failing GobEncode...). It fails
	// that message alone; the stream and the values after it are unaffected.
	ErrEncode = errors.New("remoting: cannot encode message")

	// ErrDecode reports bytes from a peer that do not decode to a message:
	// garbage, truncated or trailing bytes, an unknown type, a value that
	// does not fit the registered type. The stream that carried them is
	// unusable afterwards and must be dropped and reopened; nothing panics.
	ErrDecode = errors.New("remoting: cannot decode message")
)

var (
	// ErrNodeLost: the connection to the target's node broke while the
	// message was in flight, or could not be established. The message may
	// or may not have been delivered; it is never resent.
	ErrNodeLost = errors.New("remoting: node lost")
	// ErrTooLarge: the encoded message exceeds the maximum message size.
	ErrTooLarge = errors.New("remoting: message too large")
	// ErrUnknownNode: the resolver knows no address for the node.
	ErrUnknownNode = errors.New("remoting: unknown node")
	// ErrClosed: the endpoint is closed.
	ErrClosed = errors.New("remoting: endpoint closed")
	// ErrProtocol: a peer broke the stream protocol; the stream is closed.
	ErrProtocol = errors.New("remoting: protocol violation")
	// ErrInvalidOption: an option had a value out of range.
	ErrInvalidOption = errors.New("remoting: invalid option")
	// ErrAdvertiseAddr: the endpoint listens on every interface and no
	// single address of the host can be advertised to peers (none, or
	// several); the error names the candidates. Set WithAdvertiseAddr.
	ErrAdvertiseAddr = errors.New("remoting: no address to advertise")
	// ErrIncompatiblePeer: the peer speaks a wire protocol version this
	// node cannot talk to, or refuses this node's (see ProtocolVersion);
	// the error names both versions.
	ErrIncompatiblePeer = errors.New("remoting: incompatible peer")
	// ErrImpersonation: a peer sent a message in another node's name; its
	// stream is closed.
	ErrImpersonation = errors.New("remoting: sender is not the stream's node")
	// ErrNoCredit: TrySendTracked found no credit for the link right now.
	ErrNoCredit = errors.New("remoting: no credit")
)
