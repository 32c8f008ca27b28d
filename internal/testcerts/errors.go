package testcerts

import "errors"

// ErrEmptyName is returned for an empty authority or certificate name.
var ErrEmptyName = errors.New("testcerts: empty name")
