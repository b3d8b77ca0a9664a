package testenv

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Daemon is one of the project's daemons (built with BuildCmd) run as a
// child process with "-conf Conf", its output appended to LogPath, healthy
// when http://Admin/healthz answers 200. A test may start, signal and
// restart it; Kill runs at the test's cleanup.
type Daemon struct {
	Name    string // for messages
	Bin     string
	Conf    string
	LogPath string
	Admin   string // host:port of the admin HTTP server

	t       testing.TB
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// NewDaemon prepares a daemon (nothing runs until Start) and registers its
// Kill as a cleanup of t.
func NewDaemon(t testing.TB, name, bin, conf, logPath, admin string) *Daemon {
	d := &Daemon{Name: name, Bin: bin, Conf: conf, LogPath: logPath, Admin: admin, t: t}
	t.Cleanup(d.Kill)
	return d
}

// Start launches the process and waits until it is healthy; the test fails
// (with the log) if it exits first or is not healthy within 30 s.
func (d *Daemon) Start() {
	t := d.t
	t.Helper()
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(d.Bin, "-conf", d.Conf)
	KillWithParent(cmd)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { d.waitErr = cmd.Wait(); logf.Close(); close(exited) }()
	d.cmd, d.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + d.Admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(d.LogPath)
			t.Fatalf("%s child exited (%v):\n%s", d.Name, d.waitErr, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s child not healthy", d.Name)
		}
		time.Sleep(20 * time.Millisecond) // polling interval against the deadline
	}
}

// Kill sends SIGKILL and waits for the exit (no-op if not running).
func (d *Daemon) Kill() { d.Signal(syscall.SIGKILL) }

// Term sends SIGTERM and waits for the exit (no-op if not running).
func (d *Daemon) Term() { d.Signal(syscall.SIGTERM) }

// Signal sends sig and waits for the exit (no-op if not running).
func (d *Daemon) Signal(sig syscall.Signal) {
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(sig)
	<-d.exited
	d.cmd = nil
}

// LogTail returns the last 40 lines of the log.
func (d *Daemon) LogTail() string {
	b, _ := os.ReadFile(d.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
