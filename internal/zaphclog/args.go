package zaphclog

import (
	"fmt"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
)

// fields converts hclog key/value arguments to zap fields. A non-string key is
// formatted with fmt; a trailing value without a key is kept under
// hclog.MissingKey.
func fields(args []any) []zap.Field {
	if len(args) == 0 {
		return nil
	}
	out := make([]zap.Field, 0, (len(args)+1)/2)
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			out = append(out, field(hclog.MissingKey, args[i]))
			break
		}
		out = append(out, field(keyString(args[i]), args[i+1]))
	}
	return out
}

// keyString returns key as a string.
func keyString(key any) string {
	if s, ok := key.(string); ok {
		return s
	}
	return fmt.Sprint(key)
}

// field converts one value, formatting hclog's formatting wrappers the way
// hclog does.
func field(key string, val any) zap.Field {
	switch v := val.(type) {
	case hclog.Format:
		if len(v) == 0 {
			return zap.String(key, "")
		}
		if format, ok := v[0].(string); ok {
			return zap.String(key, fmt.Sprintf(format, v[1:]...))
		}
		return zap.String(key, fmt.Sprint(v...))
	case hclog.Hex:
		return zap.String(key, "0x"+strconv.FormatInt(int64(v), 16))
	case hclog.Octal:
		return zap.String(key, "0"+strconv.FormatInt(int64(v), 8))
	case hclog.Binary:
		return zap.String(key, "0b"+strconv.FormatInt(int64(v), 2))
	case hclog.Quote:
		return zap.String(key, strconv.Quote(string(v)))
	default:
		return zap.Any(key, val)
	}
}

// mergeArgs returns implied followed by args, normalised to key/value pairs
// with string keys; a key already present takes the new value in place.
func mergeArgs(implied, args []any) []any {
	out := append(make([]any, 0, len(implied)+len(args)+1), implied...)
	for i := 0; i < len(args); i += 2 {
		var key string
		var val any
		if i+1 == len(args) {
			key, val = hclog.MissingKey, args[i]
		} else {
			key, val = keyString(args[i]), args[i+1]
		}
		replaced := false
		for j := 0; j+1 < len(out); j += 2 {
			if out[j] == key {
				out[j+1] = val
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, key, val)
		}
	}
	return out
}
