package testenv

import (
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// FreePort returns a free TCP port on 127.0.0.1 below the usual ephemeral
// range (32768+), so that no process binding port 0 (kfake, ZooKeeper
// clients, other tests) takes it between this check and a child's listen,
// nor while a child is down between a kill and its restart.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port
	}
	t.Fatal("testenv: no free port in 20000-31999")
	return 0
}

// BuildCmd compiles ./cmd/<name> of this module into a temp dir and returns
// the binary's path.
func BuildCmd(t testing.TB, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, "github.com/ddmq-go/carrera/cmd/"+name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build %s: %v\n%s", name, err, out)
	}
	return bin
}

// KillWithParent makes the kernel SIGKILL cmd's process when the test
// process dies (a test binary that panics on -timeout runs no cleanups), so
// no server outlives its test. Call before cmd.Start.
func KillWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
