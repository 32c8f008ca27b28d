package supervisor

import "errors"

// ErrInvalidOption reports a strategy option out of range.
var ErrInvalidOption = errors.New("supervisor: invalid option")
