package remoting

// The wire protocol version. Every RPC and stream a node opens carries
// ProtocolVersion in its headers; a node serves peers whose version lies
// in [MinProtocolVersion, ProtocolVersion] and refuses others at once,
// before reading their requests, with an error that names both versions
// (ErrIncompatiblePeer on the caller's side). A release that changes what
// goes over the wire raises ProtocolVersion; one that can still serve the
// previous version keeps MinProtocolVersion below it, so that a cluster
// can be upgraded one node at a time (docs/operations.md).
const (
	ProtocolVersion    = 1
	MinProtocolVersion = 1
)
