package daemon

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// get fetches url and returns status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestAdminServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "carrera_test_requests_total", Help: "x"}, []string{"code"})
	reg.MustRegister(reqs)
	reqs.WithLabelValues("0").Add(3)

	a := NewAdminServer("127.0.0.1:0", reg, nil)
	if a.Addr() != nil {
		t.Fatal("Addr before Start")
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err == nil {
		t.Fatal("second Start succeeded")
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	base := "http://" + a.Addr().String()

	if code, body := get(t, c, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	code, body := get(t, c, base+"/metrics")
	if code != 200 || !strings.Contains(body, `carrera_test_requests_total{code="0"} 3`) {
		t.Fatalf("/metrics = %d:\n%s", code, body)
	}
	if code, body := get(t, c, base+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/ = %d", code)
	}
	if code, _ := get(t, c, base+"/debug/pprof/cmdline"); code != 200 {
		t.Fatalf("/debug/pprof/cmdline = %d", code)
	}

	a.SetShuttingDown()
	if code, body := get(t, c, base+"/healthz"); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "shutting down" {
		t.Fatalf("/healthz after SetShuttingDown = %d %q", code, body)
	}
	// Metrics stay available while draining.
	if code, _ := get(t, c, base+"/metrics"); code != 200 {
		t.Fatalf("/metrics while shutting down = %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
	if _, err := c.Get(base + "/healthz"); err == nil {
		t.Fatal("still serving after Shutdown")
	}
	if err := a.Start(); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}

func TestAdminServerShutdownMarksUnhealthy(t *testing.T) {
	a := NewAdminServer("127.0.0.1:0", nil, nil)
	if err := a.Shutdown(context.Background()); err != nil { // never started
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("/healthz after Shutdown = %d", rec.Code)
	}
}

func TestAdminServerBadAddr(t *testing.T) {
	a := NewAdminServer("256.0.0.1:bad", nil, nil)
	if err := a.Start(); err == nil {
		t.Fatal("Start on a bad address succeeded")
	}
}

func TestAdminServerExtraHandler(t *testing.T) {
	a := NewAdminServer("127.0.0.1:0", prometheus.NewRegistry(), nil)
	a.Handle("/debug/extra", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("extra")) }))
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/extra", nil))
	if rec.Body.String() != "extra" {
		t.Fatalf("extra handler body = %q", rec.Body.String())
	}
}

func TestPIDFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "pproxy.pid")
	if err := WritePIDFile(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file = %q, %v", data, err)
	}
	if err := WritePIDFile(path); err != nil { // overwrite is fine
		t.Fatal(err)
	}
	if err := RemovePIDFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pid file still there: %v", err)
	}
	if err := RemovePIDFile(path); err != nil {
		t.Fatalf("removing a missing pid file: %v", err)
	}
	// Another process's file is left alone.
	if err := os.WriteFile(path, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := RemovePIDFile(path); err == nil {
		t.Fatal("removed another process's pid file")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("foreign pid file removed: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func TestSignalContext(t *testing.T) {
	ctx, stop := SignalContext(context.Background())
	defer stop()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("context not cancelled by SIGTERM")
	}
}

func TestRunSteps(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	var order []string
	step := func(name string, err error) Step {
		return Step{Name: name, Fn: func(context.Context) error { order = append(order, name); return err }}
	}
	boom := errors.New("boom")
	err := RunSteps(context.Background(), zap.New(core),
		step("lame duck", nil),
		step("drain", boom),
		Step{Name: "flush", Fn: func(context.Context) error { order = append(order, "flush"); panic("oops") }},
		step("close producers", nil),
	)
	if got := strings.Join(order, ","); got != "lame duck,drain,flush,close producers" {
		t.Fatalf("order = %s", got)
	}
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "drain: boom") || !strings.Contains(err.Error(), "flush: panic: oops") {
		t.Fatalf("err = %v", err)
	}
	if n := logs.FilterMessage("shutdown step failed").Len(); n != 2 {
		t.Fatalf("failed-step logs = %d", n)
	}
	if n := logs.FilterMessage("shutdown step done").Len(); n != 2 {
		t.Fatalf("done-step logs = %d", n)
	}
	if err := RunSteps(context.Background(), nil); err != nil {
		t.Fatalf("no steps = %v", err)
	}
}
