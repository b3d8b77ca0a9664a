package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"
)

// profileSeconds is how long the profiles of a phase cover (from its start).
const profileSeconds = 3

// startProfiles, with a non-empty dir, profiles this process and cproxy (its
// admin /debug/pprof/profile) for the first profileSeconds of a phase, into
// dir/<name>-bench.pprof and dir/<name>-cproxy.pprof. The returned function
// waits until both profiles are written. Profiling failures are logged and
// do not fail the run.
func startProfiles(dir, name, adminAddr string) (wait func()) {
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
		f, err := os.Create(filepath.Join(dir, name+"-bench.pprof"))
		if err != nil {
			logf("profile: %v", err)
			return
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			logf("profile: %v", err)
			return
		}
		time.Sleep(profileSeconds * time.Second) // the profile's window, not a synchronisation
		pprof.StopCPUProfile()
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		resp, err := http.Get("http://" + adminAddr + "/debug/pprof/profile?seconds=" + strconv.Itoa(profileSeconds))
		if err != nil {
			logf("profile: cproxy: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(dir, name+"-cproxy.pprof"))
		if err != nil {
			logf("profile: %v", err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			logf("profile: cproxy: %v", err)
		}
	}()
	return func() { <-done; <-done }
}
