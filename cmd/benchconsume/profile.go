package main

import (
	"context"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	bu "github.com/ddmq-go/carrera/internal/benchutil"
)

// profileWindow is how long the profiles of a phase cover (from its start).
const profileWindow = 3 * time.Second

// startProfiles, with a non-empty dir, profiles this process and cproxy (its
// admin server) for the first profileWindow of a phase, into
// dir/<name>-bench.pprof and dir/<name>-cproxy.pprof. The returned function
// waits until both are written. Failures are logged and do not fail the run.
func startProfiles(ctx context.Context, dir, name, adminAddr string) (wait func()) {
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		logf("profile: %v", err)
		return func() {}
	}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := profileSelf(ctx, filepath.Join(dir, name+"-bench.pprof")); err != nil {
			logf("profile: %v", err)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		if err := bu.FetchProfile(ctx, adminAddr, profileWindow, filepath.Join(dir, name+"-cproxy.pprof")); err != nil {
			logf("profile: cproxy: %v", err)
		}
	}()
	return func() { <-done; <-done }
}

// profileSelf writes this process's CPU profile over profileWindow to path.
func profileSelf(ctx context.Context, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	t := time.NewTimer(profileWindow)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}
