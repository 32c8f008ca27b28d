package zaphclog

import (
	"bytes"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
)

// stdWriter is the io.Writer behind StandardLogger and StandardWriter: each
// Write becomes one entry.
type stdWriter struct {
	l    *logger     // for the level checks
	zl   *zap.Logger // l.zl with the caller skip of a *log.Logger call
	opts hclog.StandardLoggerOptions
}

// stdCallerSkip is the number of frames a *log.Logger adds between its
// caller and stdWriter.Write (Printf and Logger.output), plus Write itself,
// beyond the frames callerSkip already counts.
const stdCallerSkip = 1

// levelTags are the prefixes InferLevels recognises, as in hclog.
var levelTags = []struct {
	tag   string
	level hclog.Level
}{
	{"[TRACE]", hclog.Trace},
	{"[DEBUG]", hclog.Debug},
	{"[INFO]", hclog.Info},
	{"[WARN]", hclog.Warn},
	{"[ERROR]", hclog.Error},
	{"[ERR]", hclog.Error},
}

// Write logs p (without its trailing newline) and reports it fully written.
func (w *stdWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, " \t\r\n"))
	level := hclog.Info
	switch {
	case w.opts.ForceLevel != hclog.NoLevel:
		level = w.opts.ForceLevel
		_, msg = splitLevel(msg, w.opts.InferLevelsWithTimestamp)
	case w.opts.InferLevels:
		if inferred, rest := splitLevel(msg, w.opts.InferLevelsWithTimestamp); inferred != hclog.NoLevel {
			level, msg = inferred, rest
		}
	}
	if w.l.enabled(level) {
		zlvl, _ := zapLevel(level)
		if ce := w.zl.Check(zlvl, msg); ce != nil {
			ce.Write()
		}
	}
	return len(p), nil
}

// splitLevel finds a level tag at the start of msg (or, with anywhere, after
// a leading timestamp) and returns its level and msg without it. It returns
// hclog.NoLevel and msg unchanged when there is none.
func splitLevel(msg string, anywhere bool) (hclog.Level, string) {
	for _, t := range levelTags {
		i := indexTag(msg, t.tag, anywhere)
		if i < 0 {
			continue
		}
		rest := msg[i+len(t.tag):]
		if len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		return t.level, msg[:i] + rest
	}
	return hclog.NoLevel, msg
}

func indexTag(msg, tag string, anywhere bool) int {
	if !anywhere {
		if len(msg) >= len(tag) && msg[:len(tag)] == tag {
			return 0
		}
		return -1
	}
	return bytes.Index([]byte(msg), []byte(tag))
}
