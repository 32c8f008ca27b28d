package zaphclog

import (
	"io"
	"log"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// callerSkip is the number of adapter frames between the caller of an hclog
// method and zap's Check: the hclog method and logger.log.
const callerSkip = 2

// logger implements hclog.Logger over a zap logger.
type logger struct {
	base    *zap.Logger   // as given to New, with caller skip; no hclog name or fields
	zl      *zap.Logger   // base with the hclog name and implied fields applied
	name    string        // hclog name, relative to base's name
	implied []any         // With arguments, normalised to key/value pairs
	level   *atomic.Int32 // hclog.Level set with SetLevel; shared by derived loggers
}

var _ hclog.Logger = (*logger)(nil)

// New returns an hclog.Logger that writes through l. A nil l yields a silent
// logger (zap.NewNop()).
func New(l *zap.Logger) hclog.Logger {
	if l == nil {
		l = zap.NewNop()
	}
	base := l.WithOptions(zap.AddCallerSkip(callerSkip))
	return &logger{
		base:  base,
		zl:    base,
		level: new(atomic.Int32), // hclog.NoLevel: defer to the zap core
	}
}

// derive returns a logger sharing l's level with the given name and implied
// arguments.
func (l *logger) derive(name string, implied []any) *logger {
	zl := l.base.Named(name)
	if len(implied) > 0 {
		zl = zl.With(fields(implied)...)
	}
	return &logger{base: l.base, zl: zl, name: name, implied: implied, level: l.level}
}

// zapLevel maps an hclog level to the zap level it is written at. ok is false
// for hclog.Off.
func zapLevel(level hclog.Level) (zapcore.Level, bool) {
	switch {
	case level == hclog.NoLevel:
		return zapcore.InfoLevel, true
	case level <= hclog.Debug: // Trace and Debug
		return zapcore.DebugLevel, true
	case level == hclog.Info:
		return zapcore.InfoLevel, true
	case level == hclog.Warn:
		return zapcore.WarnLevel, true
	case level == hclog.Error:
		return zapcore.ErrorLevel, true
	default: // Off and anything above
		return 0, false
	}
}

// enabled reports whether an entry at level would be written.
func (l *logger) enabled(level hclog.Level) bool {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if min := hclog.Level(l.level.Load()); min != hclog.NoLevel && level < min {
		return false
	}
	zlvl, ok := zapLevel(level)
	return ok && l.zl.Core().Enabled(zlvl)
}

// log writes one entry. It must be called directly by the exported method
// that the user called, so that callerSkip stays right.
func (l *logger) log(level hclog.Level, msg string, args []any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if !l.enabled(level) {
		return
	}
	zlvl, _ := zapLevel(level)
	if ce := l.zl.Check(zlvl, msg); ce != nil {
		ce.Write(fields(args)...)
	}
}

// Log emits msg at level with the given key/value pairs.
func (l *logger) Log(level hclog.Level, msg string, args ...any) { l.log(level, msg, args) }

// Trace emits msg at zap's Debug level.
func (l *logger) Trace(msg string, args ...any) { l.log(hclog.Trace, msg, args) }

// Debug emits msg at zap's Debug level.
func (l *logger) Debug(msg string, args ...any) { l.log(hclog.Debug, msg, args) }

// Info emits msg at zap's Info level.
func (l *logger) Info(msg string, args ...any) { l.log(hclog.Info, msg, args) }

// Warn emits msg at zap's Warn level.
func (l *logger) Warn(msg string, args ...any) { l.log(hclog.Warn, msg, args) }

// Error emits msg at zap's Error level.
func (l *logger) Error(msg string, args ...any) { l.log(hclog.Error, msg, args) }

// IsTrace reports whether Trace entries would be written.
func (l *logger) IsTrace() bool { return l.enabled(hclog.Trace) }

// IsDebug reports whether Debug entries would be written.
func (l *logger) IsDebug() bool { return l.enabled(hclog.Debug) }

// IsInfo reports whether Info entries would be written.
func (l *logger) IsInfo() bool { return l.enabled(hclog.Info) }

// IsWarn reports whether Warn entries would be written.
func (l *logger) IsWarn() bool { return l.enabled(hclog.Warn) }

// IsError reports whether Error entries would be written.
func (l *logger) IsError() bool { return l.enabled(hclog.Error) }

// ImpliedArgs returns a copy of the key/value pairs added with With.
func (l *logger) ImpliedArgs() []any {
	return append([]any(nil), l.implied...)
}

// With returns a logger that adds args to every entry. A key already implied
// gets the new value.
func (l *logger) With(args ...any) hclog.Logger {
	if len(args) == 0 {
		return l
	}
	return l.derive(l.name, mergeArgs(l.implied, args))
}

// Name returns the hclog name (without the zap logger's own name).
func (l *logger) Name() string { return l.name }

// Named returns a logger whose name is l's name followed by "." and name.
func (l *logger) Named(name string) hclog.Logger {
	if name == "" {
		return l
	}
	if l.name != "" {
		name = l.name + "." + name
	}
	return l.derive(name, l.implied)
}

// ResetNamed returns a logger named name, dropping l's hclog name. The name
// of the zap logger given to New stays as a prefix.
func (l *logger) ResetNamed(name string) hclog.Logger {
	return l.derive(name, l.implied)
}

// SetLevel sets the lowest level written by l and every logger related to it.
// hclog.NoLevel defers to the zap core again. The zap core's own level still
// applies: SetLevel(hclog.Trace) does not enable zap Debug output.
func (l *logger) SetLevel(level hclog.Level) {
	l.level.Store(int32(level))
}

// GetLevel returns the level set with SetLevel or, if none, the lowest level
// the zap core enables (hclog.Off when it enables none).
func (l *logger) GetLevel() hclog.Level {
	if level := hclog.Level(l.level.Load()); level != hclog.NoLevel {
		return level
	}
	for _, level := range []hclog.Level{hclog.Trace, hclog.Info, hclog.Warn, hclog.Error} {
		if l.enabled(level) {
			return level
		}
	}
	return hclog.Off
}

// StandardLogger returns a *log.Logger that writes each line through l.
func (l *logger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

// StandardWriter returns an io.Writer that logs each Write through l, at the
// level opts selects (Info by default).
func (l *logger) StandardWriter(opts *hclog.StandardLoggerOptions) io.Writer {
	var o hclog.StandardLoggerOptions
	if opts != nil {
		o = *opts
	}
	return &stdWriter{l: l, zl: l.zl.WithOptions(zap.AddCallerSkip(stdCallerSkip)), opts: o}
}
