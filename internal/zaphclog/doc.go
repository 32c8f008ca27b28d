// Package zaphclog adapts a *zap.Logger to hashicorp/go-hclog's Logger
// interface, so that hashicorp/raft (which only speaks hclog) logs through the
// zap logger a dchan Node was given, and stays silent when that logger is a
// no-op. Without it raft builds its own hclog logger and writes DEBUG lines to
// stderr.
//
// # Usage
//
//	cfg := raft.DefaultConfig()
//	cfg.Logger = zaphclog.New(logger.Named("raft"))
//
// # Mapping
//
//   - Levels: hclog Trace and Debug go to zap Debug; Info, Warn and Error go to
//     the zap level of the same name. hclog.NoLevel logs at Info; hclog.Off
//     drops the entry.
//   - Arguments: hclog's alternating key/value arguments become zap fields
//     (zap.Any, so errors become error fields). A non-string key is turned into
//     a string with fmt; an odd trailing value is kept under the key
//     hclog.MissingKey ("EXTRA_VALUE_AT_END"), as hclog itself does. Nothing
//     the arguments contain makes the adapter panic.
//   - hclog.Format, Hex, Octal, Binary and Quote values are formatted the way
//     hclog formats them.
//   - Names: Named appends ".name" to the hclog name, ResetNamed replaces it.
//     The resulting zap logger name is the name of the *zap.Logger given to New
//     followed by the hclog name, so New(z.Named("raft")).Named("snapshot")
//     logs as "raft.snapshot", and ResetNamed("x") logs as "raft.x": the zap
//     logger's own name is a prefix the adapter never removes.
//   - With adds implied arguments (zap context fields); a key given again
//     replaces the earlier value, as in hclog. ImpliedArgs returns them.
//   - Levels are checked against the zap core: IsDebug reports false when the
//     zap core has Debug disabled (always so for zap.NewNop()), so callers can
//     skip expensive log preparation. SetLevel can only narrow what the zap
//     core lets through; it is shared by a logger and every logger derived
//     from it (Named, ResetNamed, With). GetLevel returns the level set with
//     SetLevel, or else the lowest level the zap core enables (hclog.Trace
//     when zap Debug is on, hclog.Off for a no-op core).
//   - StandardLogger and StandardWriter return a *log.Logger and an io.Writer
//     that write each line through zap at Info, or at the level inferred from
//     a "[WARN]"-style prefix (InferLevels), or at ForceLevel.
//
// Caller information (zap.AddCaller) points at the code that called the hclog
// method, not at this adapter.
//
// # Goroutines
//
// None. The adapter holds no mutable state apart from the level shared by
// related loggers (an atomic), so every method is safe for concurrent use.
package zaphclog
