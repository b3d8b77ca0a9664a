// Package logx builds the process logger: zap's production JSON encoder
// with ISO8601 timestamps, an atomic level that configuration reloads can
// change, and output to stderr or to an append-only file.
package logx

import (
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a logger at level ("debug", "info", "warn", "error", ...;
// "" means "info") writing JSON to stderr when dir is "", otherwise
// appending to <dir>/<name>.log (the directory is created if missing).
// The returned AtomicLevel changes the level of the running logger.
// zap's production sampling applies: per second, the first 100 entries with
// the same level and message are written, then every 100th (this keeps a
// flood of identical warnings, e.g. from a misbehaving client, cheap).
// Callers should Sync the logger before exiting.
func New(level, dir, name string) (*zap.Logger, zap.AtomicLevel, error) {
	if level == "" {
		level = "info"
	}
	lvl, err := zap.ParseAtomicLevel(level)
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("logx: %w", err)
	}
	out := "stderr"
	if dir != "" {
		if name == "" {
			return nil, zap.AtomicLevel{}, fmt.Errorf("logx: empty log file name")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, zap.AtomicLevel{}, fmt.Errorf("logx: %w", err)
		}
		out = filepath.Join(dir, name+".log") // zap opens files O_APPEND|O_CREATE
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = lvl
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.OutputPaths = []string{out}
	cfg.ErrorOutputPaths = []string{"stderr"}
	log, err := cfg.Build()
	if err != nil {
		return nil, zap.AtomicLevel{}, fmt.Errorf("logx: %w", err)
	}
	return log, lvl, nil
}
