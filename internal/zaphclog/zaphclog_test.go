package zaphclog

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// observed returns an adapter over an observer core enabled at min, and the
// observer's logs.
func observed(min zapcore.Level, opts ...zap.Option) (hclog.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(min)
	return New(zap.New(core, opts...)), logs
}

// only returns the single entry logged so far, failing the test otherwise.
func only(t *testing.T, logs *observer.ObservedLogs) observer.LoggedEntry {
	t.Helper()
	all := logs.TakeAll()
	if len(all) != 1 {
		t.Fatalf("got %d entries, want 1: %+v", len(all), all)
	}
	return all[0]
}

func TestLevels(t *testing.T) {
	tests := []struct {
		name string
		log  func(l hclog.Logger)
		want zapcore.Level
	}{
		{"trace", func(l hclog.Logger) { l.Trace("m") }, zapcore.DebugLevel},
		{"debug", func(l hclog.Logger) { l.Debug("m") }, zapcore.DebugLevel},
		{"info", func(l hclog.Logger) { l.Info("m") }, zapcore.InfoLevel},
		{"warn", func(l hclog.Logger) { l.Warn("m") }, zapcore.WarnLevel},
		{"error", func(l hclog.Logger) { l.Error("m") }, zapcore.ErrorLevel},
		{"Log trace", func(l hclog.Logger) { l.Log(hclog.Trace, "m") }, zapcore.DebugLevel},
		{"Log debug", func(l hclog.Logger) { l.Log(hclog.Debug, "m") }, zapcore.DebugLevel},
		{"Log info", func(l hclog.Logger) { l.Log(hclog.Info, "m") }, zapcore.InfoLevel},
		{"Log warn", func(l hclog.Logger) { l.Log(hclog.Warn, "m") }, zapcore.WarnLevel},
		{"Log error", func(l hclog.Logger) { l.Log(hclog.Error, "m") }, zapcore.ErrorLevel},
		{"Log no level", func(l hclog.Logger) { l.Log(hclog.NoLevel, "m") }, zapcore.InfoLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, logs := observed(zapcore.DebugLevel)
			tt.log(l)
			e := only(t, logs)
			if e.Level != tt.want || e.Message != "m" {
				t.Fatalf("got %v %q, want %v %q", e.Level, e.Message, tt.want, "m")
			}
		})
	}
}

func TestLogOffDrops(t *testing.T) {
	l, logs := observed(zapcore.DebugLevel)
	l.Log(hclog.Off, "m")
	l.Log(hclog.Level(42), "m")
	if n := logs.Len(); n != 0 {
		t.Fatalf("got %d entries, want 0", n)
	}
}

func TestArgs(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		args []any
		want map[string]any
	}{
		{"none", nil, map[string]any{}},
		{"pairs", []any{"a", 1, "b", "x"}, map[string]any{"a": int64(1), "b": "x"}},
		{"odd count", []any{"a", 1, "dangling"}, map[string]any{"a": int64(1), hclog.MissingKey: "dangling"}},
		{"single value", []any{42}, map[string]any{hclog.MissingKey: int64(42)}},
		{"int key", []any{7, "v"}, map[string]any{"7": "v"}},
		{"nil key and value", []any{nil, nil}, map[string]any{"<nil>": nil}},
		{"error value", []any{"err", boom}, map[string]any{"err": "boom"}},
		{"format", []any{"f", hclog.Fmt("%d-%s", 3, "x")}, map[string]any{"f": "3-x"}},
		{"empty format", []any{"f", hclog.Format{}}, map[string]any{"f": ""}},
		{"format without string", []any{"f", hclog.Format{1, 2}}, map[string]any{"f": "1 2"}},
		{"hex", []any{"h", hclog.Hex(255)}, map[string]any{"h": "0xff"}},
		{"octal", []any{"o", hclog.Octal(8)}, map[string]any{"o": "010"}},
		{"binary", []any{"b", hclog.Binary(5)}, map[string]any{"b": "0b101"}},
		{"quote", []any{"q", hclog.Quote(`a"b`)}, map[string]any{"q": `"a\"b"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, logs := observed(zapcore.DebugLevel)
			l.Info("m", tt.args...)
			got := only(t, logs).ContextMap()
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("fields = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		name     string
		zapName  string
		derive   func(hclog.Logger) hclog.Logger
		wantName string // hclog Name()
		wantZap  string // zap logger name of the entry
	}{
		{"unnamed", "", func(l hclog.Logger) hclog.Logger { return l }, "", ""},
		{"named", "", func(l hclog.Logger) hclog.Logger { return l.Named("a") }, "a", "a"},
		{"named twice", "", func(l hclog.Logger) hclog.Logger { return l.Named("a").Named("b") }, "a.b", "a.b"},
		{"named empty", "", func(l hclog.Logger) hclog.Logger { return l.Named("a").Named("") }, "a", "a"},
		{"reset", "", func(l hclog.Logger) hclog.Logger { return l.Named("a").ResetNamed("c") }, "c", "c"},
		{"zap prefix", "raft", func(l hclog.Logger) hclog.Logger { return l.Named("a") }, "a", "raft.a"},
		{"zap prefix reset", "raft", func(l hclog.Logger) hclog.Logger { return l.Named("a").ResetNamed("c") }, "c", "raft.c"},
		{"with keeps name", "", func(l hclog.Logger) hclog.Logger { return l.Named("a").With("k", 1) }, "a", "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			l := tt.derive(New(zap.New(core).Named(tt.zapName)))
			if got := l.Name(); got != tt.wantName {
				t.Errorf("Name() = %q, want %q", got, tt.wantName)
			}
			l.Info("m")
			if got := only(t, logs).LoggerName; got != tt.wantZap {
				t.Errorf("zap name = %q, want %q", got, tt.wantZap)
			}
		})
	}
}

func TestWith(t *testing.T) {
	l, logs := observed(zapcore.DebugLevel)
	parent := l.With("a", 1, "b", 2)
	child := parent.Named("n").With("b", 3, 4, "c", "odd")

	if got, want := parent.ImpliedArgs(), []any{"a", 1, "b", 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("parent ImpliedArgs = %#v, want %#v", got, want)
	}
	if got, want := child.ImpliedArgs(), []any{"a", 1, "b", 3, "4", "c", hclog.MissingKey, "odd"}; !reflect.DeepEqual(got, want) {
		t.Errorf("child ImpliedArgs = %#v, want %#v", got, want)
	}
	if got := l.ImpliedArgs(); len(got) != 0 {
		t.Errorf("root ImpliedArgs = %#v, want none", got)
	}

	child.Info("m", "d", 5)
	got := only(t, logs).ContextMap()
	want := map[string]any{"a": int64(1), "b": int64(3), "4": "c", hclog.MissingKey: "odd", "d": int64(5)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fields = %#v, want %#v", got, want)
	}

	// Changing the returned slice must not change the logger.
	args := parent.ImpliedArgs()
	args[1] = 99
	parent.Info("m")
	if got := only(t, logs).ContextMap()["a"]; got != int64(1) {
		t.Fatalf("a = %v after mutating ImpliedArgs' result, want 1", got)
	}
}

func TestLevelChecks(t *testing.T) {
	type checks struct{ trace, debug, info, warn, error bool }
	tests := []struct {
		name     string
		logger   *zap.Logger
		setLevel hclog.Level
		want     checks
		wantGet  hclog.Level
	}{
		{"nop", zap.NewNop(), hclog.NoLevel, checks{}, hclog.Off},
		{"nil", nil, hclog.NoLevel, checks{}, hclog.Off},
		{"zap debug", observerLogger(zapcore.DebugLevel), hclog.NoLevel, checks{true, true, true, true, true}, hclog.Trace},
		{"zap info", observerLogger(zapcore.InfoLevel), hclog.NoLevel, checks{false, false, true, true, true}, hclog.Info},
		{"zap warn", observerLogger(zapcore.WarnLevel), hclog.NoLevel, checks{false, false, false, true, true}, hclog.Warn},
		{"zap error", observerLogger(zapcore.ErrorLevel), hclog.NoLevel, checks{false, false, false, false, true}, hclog.Error},
		{"set debug narrows", observerLogger(zapcore.DebugLevel), hclog.Debug, checks{false, true, true, true, true}, hclog.Debug},
		{"set warn narrows", observerLogger(zapcore.DebugLevel), hclog.Warn, checks{false, false, false, true, true}, hclog.Warn},
		{"set trace cannot widen", observerLogger(zapcore.InfoLevel), hclog.Trace, checks{false, false, true, true, true}, hclog.Trace},
		{"set off", observerLogger(zapcore.DebugLevel), hclog.Off, checks{}, hclog.Off},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(tt.logger)
			l.SetLevel(tt.setLevel)
			got := checks{l.IsTrace(), l.IsDebug(), l.IsInfo(), l.IsWarn(), l.IsError()}
			if got != tt.want {
				t.Errorf("checks = %+v, want %+v", got, tt.want)
			}
			if got := l.GetLevel(); got != tt.wantGet {
				t.Errorf("GetLevel() = %v, want %v", got, tt.wantGet)
			}
		})
	}
}

func observerLogger(min zapcore.Level) *zap.Logger {
	core, _ := observer.New(min)
	return zap.New(core)
}

func TestNopIsSilent(t *testing.T) {
	l := New(zap.NewNop())
	if l.IsDebug() {
		t.Fatal("IsDebug() = true for a Nop logger")
	}
	// Must not panic, whatever the arguments.
	l.Named("x").With(1, 2, 3).Error("m", nil, func() {}, "k")
	l.StandardLogger(nil).Print("m")
}

func TestSetLevelIsShared(t *testing.T) {
	l, logs := observed(zapcore.DebugLevel)
	child := l.Named("child").With("k", "v")
	l.SetLevel(hclog.Warn)
	child.Info("dropped")
	child.Warn("kept")
	e := only(t, logs)
	if e.Message != "kept" {
		t.Fatalf("message = %q, want %q", e.Message, "kept")
	}
	if got := child.GetLevel(); got != hclog.Warn {
		t.Fatalf("child GetLevel() = %v, want %v", got, hclog.Warn)
	}
	child.SetLevel(hclog.NoLevel)
	l.Debug("back")
	if e := only(t, logs); e.Message != "back" {
		t.Fatalf("message = %q, want %q", e.Message, "back")
	}
}

func TestStandardLogger(t *testing.T) {
	tests := []struct {
		name      string
		opts      *hclog.StandardLoggerOptions
		line      string
		wantLevel zapcore.Level
		wantMsg   string
	}{
		{"nil options", nil, "[WARN] hello", zapcore.InfoLevel, "[WARN] hello"},
		{"plain", &hclog.StandardLoggerOptions{}, "hello", zapcore.InfoLevel, "hello"},
		{"infer warn", &hclog.StandardLoggerOptions{InferLevels: true}, "[WARN] hello", zapcore.WarnLevel, "hello"},
		{"infer err", &hclog.StandardLoggerOptions{InferLevels: true}, "[ERR] hello", zapcore.ErrorLevel, "hello"},
		{"infer trace", &hclog.StandardLoggerOptions{InferLevels: true}, "[TRACE] hello", zapcore.DebugLevel, "hello"},
		{"infer none", &hclog.StandardLoggerOptions{InferLevels: true}, "hello [WARN]", zapcore.InfoLevel, "hello [WARN]"},
		{"infer timestamp", &hclog.StandardLoggerOptions{InferLevels: true, InferLevelsWithTimestamp: true}, "2024/01/02 03:04:05 [ERROR] hello", zapcore.ErrorLevel, "2024/01/02 03:04:05 hello"},
		{"force", &hclog.StandardLoggerOptions{ForceLevel: hclog.Error}, "[DEBUG] hello", zapcore.ErrorLevel, "hello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, logs := observed(zapcore.DebugLevel)
			l.Named("std").StandardLogger(tt.opts).Println(tt.line)
			e := only(t, logs)
			if e.Level != tt.wantLevel || e.Message != tt.wantMsg || e.LoggerName != "std" {
				t.Fatalf("got %v %q %q, want %v %q %q", e.Level, e.Message, e.LoggerName, tt.wantLevel, tt.wantMsg, "std")
			}
		})
	}
}

func TestStandardWriterRespectsLevel(t *testing.T) {
	l, logs := observed(zapcore.WarnLevel)
	w := l.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})
	if _, err := fmt.Fprintln(w, "[INFO] dropped"); err != nil {
		t.Fatal(err)
	}
	n, err := fmt.Fprintln(w, "[ERROR] kept")
	if err != nil || n != len("[ERROR] kept\n") {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if e := only(t, logs); e.Message != "kept" || e.Level != zapcore.ErrorLevel {
		t.Fatalf("got %v %q", e.Level, e.Message)
	}
}

func TestCallerIsTheCaller(t *testing.T) {
	l, logs := observed(zapcore.DebugLevel, zap.AddCaller())
	l.Info("direct")
	l.Log(hclog.Warn, "via Log")
	l.Named("n").With("k", 1).Debug("derived")
	l.StandardLogger(nil).Print("std")
	all := logs.TakeAll()
	if len(all) != 4 {
		t.Fatalf("got %d entries, want 4", len(all))
	}
	for _, e := range all {
		if got := filepath.Base(e.Caller.File); got != "zaphclog_test.go" {
			t.Errorf("%q: caller %s, want zaphclog_test.go", e.Message, e.Caller.String())
		}
	}
}
