package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
)

// ZooKeeper server jars of the Debian package "zookeeper" (3.8.0). The
// slf4j-simple jar is optional: with it the server logs to its log file.
const (
	zkServerJar   = "/usr/share/java/zookeeper.jar"
	zkSlf4jJar    = "/usr/share/java/slf4j-simple.jar"
	zkMainClass   = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
	zkInstallHint = "install it with `apt-get install -y zookeeper` (or run `make deps`)"
	zkReadyWait   = 60 * time.Second
	zkStopWait    = 10 * time.Second
)

// ZooKeeper is a real ZooKeeper server (a java child process) listening on
// 127.0.0.1 with its own port and data directory, stopped by PID when the
// test ends. Its methods must be called from the test goroutine.
type ZooKeeper struct {
	// Addr is "127.0.0.1:<port>".
	Addr string
	// Port is the client port.
	Port int
	// Dir holds zoo.cfg, zk.log and the data directory.
	Dir string

	t       testing.TB
	cfgPath string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// ZKOption tunes StartZooKeeper.
type ZKOption func(*zkOptions)

type zkOptions struct {
	tickTime int // ms
}

// WithTickTime sets zoo.cfg's tickTime in milliseconds (default 2000). The
// minimum session timeout is 2 × tickTime, so session-expiry tests lower
// it (e.g. 500).
func WithTickTime(ms int) ZKOption {
	return func(o *zkOptions) { o.tickTime = ms }
}

// StartZooKeeper writes a zoo.cfg (test-environment.md §1.2) with a
// free port and a data directory under t.TempDir(), starts the server with
// java, and waits until `srvr` reports a "Mode:" line. The server is
// stopped by PID in t.Cleanup. A missing java or ZooKeeper jar fails the
// test with the install step; it never skips.
func StartZooKeeper(t testing.TB, opts ...ZKOption) *ZooKeeper {
	t.Helper()
	o := zkOptions{tickTime: 2000}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := os.Stat(zkServerJar); err != nil {
		t.Fatalf("testenv: ZooKeeper server jar %s not found: %s", zkServerJar, zkInstallHint)
	}
	if _, err := exec.LookPath("java"); err != nil {
		t.Fatalf("testenv: java not found (ZooKeeper needs it): install it with `apt-get install -y openjdk-17-jre-headless` (or run `make deps`)")
	}

	dir := t.TempDir()
	port, err := zkFreePort()
	if err != nil {
		t.Fatalf("testenv: no free port for ZooKeeper: %v", err)
	}
	z := &ZooKeeper{
		Addr:    "127.0.0.1:" + strconv.Itoa(port),
		Port:    port,
		Dir:     dir,
		t:       t,
		cfgPath: filepath.Join(dir, "zoo.cfg"),
		logPath: filepath.Join(dir, "zk.log"),
	}
	cfg := fmt.Sprintf(`tickTime=%d
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat,srvr,mntr
maxClientCnxns=0
`, o.tickTime, filepath.Join(dir, "data"), port)
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := os.WriteFile(z.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(z.Stop)
	z.start()
	return z
}

// ConnectString returns the DDMQ-style connect string "127.0.0.1:<port>"
// followed by chroot (which may be empty).
func (z *ZooKeeper) ConnectString(chroot string) string {
	return z.Addr + chroot
}

// Running reports whether the server process is alive.
func (z *ZooKeeper) Running() bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.cmd == nil {
		return false
	}
	select {
	case <-z.done:
		return false
	default:
		return true
	}
}

// Stop stops the server (SIGTERM, SIGKILL after 10 s) and waits for the
// process to exit. The data directory is kept. Stopping a stopped server
// is a no-op.
func (z *ZooKeeper) Stop() {
	z.mu.Lock()
	cmd, done := z.cmd, z.done
	z.cmd, z.done = nil, nil
	z.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(zkStopWait):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server if it runs and starts it again on the same port
// with the same data directory, waiting until it serves requests.
func (z *ZooKeeper) Restart() {
	z.t.Helper()
	z.Stop()
	z.start()
}

// start launches java and waits for readiness.
func (z *ZooKeeper) start() {
	z.t.Helper()
	classpath := zkServerJar
	if _, err := os.Stat(zkSlf4jJar); err == nil {
		classpath += ":" + zkSlf4jJar
	}
	logf, err := os.OpenFile(z.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		z.t.Fatalf("testenv: %v", err)
	}
	cmd := exec.Command("java", "-Xmx256m", "-cp", classpath, zkMainClass, z.cfgPath)
	cmd.Dir = z.Dir
	KillWithParent(cmd)
	// An *os.File as stdout/stderr: the child writes directly, no copying
	// goroutine in this process.
	cmd.Stdout = logf
	cmd.Stderr = logf
	err = cmd.Start()
	_ = logf.Close() // the child has its own descriptor
	if err != nil {
		z.t.Fatalf("testenv: start ZooKeeper: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	z.mu.Lock()
	z.cmd, z.done = cmd, done
	z.mu.Unlock()

	deadline := time.Now().Add(zkReadyWait)
	for {
		if ZKServing(z.Addr) {
			return
		}
		select {
		case <-done:
			z.t.Fatalf("testenv: ZooKeeper exited during start-up; log tail:\n%s", z.logTail())
		default:
		}
		if time.Now().After(deadline) {
			z.Stop()
			z.t.Fatalf("testenv: ZooKeeper not serving after %s; log tail:\n%s", zkReadyWait, z.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logTail returns the last lines of the server log for failure messages.
func (z *ZooKeeper) logTail() string {
	b, err := os.ReadFile(z.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

// Mntr runs the four-letter command "mntr" and returns its key/value
// lines, e.g. "zk_global_sessions" → "1" (the number of live sessions).
func (z *ZooKeeper) Mntr() (map[string]string, error) {
	c, err := net.DialTimeout("tcp", z.Addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("mntr")); err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "\t"); ok {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("testenv: empty mntr answer from %s", z.Addr)
	}
	return out, nil
}

// ZKServing sends the four-letter command "srvr" and reports whether the
// answer has a "Mode:" line ("imok" alone is not enough: the server may not
// serve requests yet).
func ZKServing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "Mode: ") {
			return true
		}
	}
	return false
}

func zkFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// zkQuietLogger drops go-zookeeper's client logs.
type zkQuietLogger struct{}

func (zkQuietLogger) Printf(string, ...any) {}

// zkDial opens a client session to addr, waiting up to 10 s for it.
func zkDial(t testing.TB, addr string) *zk.Conn {
	t.Helper()
	conn, events, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(zkQuietLogger{}))
	if err != nil {
		t.Fatalf("testenv: connect to ZooKeeper %s: %v", addr, err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn
			}
		case <-timeout:
			conn.Close()
			t.Fatalf("testenv: no ZooKeeper session with %s after 10s", addr)
		}
	}
}

// SeedZK writes nodes (paths inside chroot → data) to the ZooKeeper at
// addr, in path order. Missing parents, including the chroot itself, are
// created with the data "default" as the DDMQ console does; existing nodes
// are overwritten. Use it for the initial layout and for later updates.
func SeedZK(t testing.TB, addr, chroot string, nodes map[string][]byte) {
	t.Helper()
	conn := zkDial(t, addr)
	defer conn.Close()
	paths := make([]string, 0, len(nodes))
	for p := range nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := path.Join("/", chroot, p)
		if err := zkEnsureParents(conn, full); err != nil {
			t.Fatalf("testenv: create parents of %s: %v", full, err)
		}
		_, err := conn.Create(full, nodes[p], 0, zk.WorldACL(zk.PermAll))
		if errors.Is(err, zk.ErrNodeExists) {
			_, err = conn.Set(full, nodes[p], -1)
		}
		if err != nil {
			t.Fatalf("testenv: write %s: %v", full, err)
		}
	}
}

// DeleteZK deletes nodes (paths inside chroot); missing nodes are ignored.
func DeleteZK(t testing.TB, addr, chroot string, paths ...string) {
	t.Helper()
	conn := zkDial(t, addr)
	defer conn.Close()
	for _, p := range paths {
		full := path.Join("/", chroot, p)
		if err := conn.Delete(full, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			t.Fatalf("testenv: delete %s: %v", full, err)
		}
	}
}

// zkEnsureParents creates every missing ancestor of full with data "default".
func zkEnsureParents(conn *zk.Conn, full string) error {
	parts := strings.Split(strings.Trim(full, "/"), "/")
	cur := ""
	for _, part := range parts[:len(parts)-1] {
		cur += "/" + part
		_, err := conn.Create(cur, []byte("default"), 0, zk.WorldACL(zk.PermAll))
		if err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return err
		}
	}
	return nil
}
