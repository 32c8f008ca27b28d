package security

import "errors"

// ErrInvalidConfig is returned by Config.Validate and New for a Config that
// would not secure the node as asked: a server TLS config without a
// certificate, verification switched off, a token gRPC metadata cannot carry.
var ErrInvalidConfig = errors.New("security: invalid config")
