package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// SignalContext returns a context derived from parent that is cancelled on
// the first SIGINT or SIGTERM. Call stop to release the signal handler; after
// stop (or after the first signal) a second signal has its default effect,
// which lets an operator kill a process whose drain is stuck.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
}

// WritePIDFile writes the current process id to path (atomically, via a
// temporary file in the same directory), creating the directory if needed.
func WritePIDFile(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("daemon: pid file: %w", err)
	}
	f, err := os.CreateTemp(dir, ".pid-*")
	if err != nil {
		return fmt.Errorf("daemon: pid file: %w", err)
	}
	tmp := f.Name()
	_, werr := f.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("daemon: pid file: %w", err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("daemon: pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("daemon: pid file: %w", err)
	}
	return nil
}

// RemovePIDFile removes path if it holds this process's id. A missing file
// is not an error; a file naming another process (a newer instance) is left
// alone and reported.
func RemovePIDFile(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon: pid file: %w", err)
	}
	if strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("daemon: pid file %s belongs to process %q, not removed", path, strings.TrimSpace(string(data)))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("daemon: pid file: %w", err)
	}
	return nil
}

// Step is one named stage of an ordered shutdown.
type Step struct {
	Name string
	Fn   func(ctx context.Context) error
}

// RunSteps runs steps in order with ctx (typically a drain deadline),
// logging each step's duration and error. A failing step does not stop the
// later ones (producers must still be closed if the drain timed out); once
// ctx has ended the remaining steps still run, with the ended ctx, so they
// take their fast paths. A panicking step is reported as an error. It
// returns all step errors joined.
func RunSteps(ctx context.Context, log *zap.Logger, steps ...Step) error {
	if log == nil {
		log = zap.NewNop()
	}
	var errs []error
	for _, s := range steps {
		start := time.Now()
		err := runStep(ctx, s)
		if err != nil {
			log.Warn("shutdown step failed", zap.String("step", s.Name),
				zap.Duration("took", time.Since(start)), zap.Error(err))
			errs = append(errs, fmt.Errorf("%s: %w", s.Name, err))
			continue
		}
		log.Info("shutdown step done", zap.String("step", s.Name), zap.Duration("took", time.Since(start)))
	}
	return errors.Join(errs...)
}

// runStep runs one step, turning a panic into an error so the later steps
// still run.
func runStep(ctx context.Context, s Step) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return s.Fn(ctx)
}
