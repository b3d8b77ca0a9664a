// Package benchutil is the shared harness of the benchmark commands
// (cmd/benchproduce, cmd/benchconsume, cmd/benchdelay): the command outline
// (Main: signals, cleanup, report, JSON), building the binaries, starting
// ZooKeeper, kfakeserver and the proxies as child processes, readiness
// checks, /proc sampling, Prometheus scraping, the cleanup stack that stops
// everything on every exit path, and latency statistics.
package benchutil

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/go-zookeeper/zk"
	"golang.org/x/sys/unix"

	"github.com/ddmq-go/carrera/internal/testenv"
)

const (
	zkServerJar = "/usr/share/java/zookeeper.jar"
	zkSlf4jJar  = "/usr/share/java/slf4j-simple.jar"
	zkMainClass = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
	ZKChroot    = "/carrera/v4/config"

	StopGrace = 10 * time.Second // SIGTERM → SIGKILL

	SegmentBytes = 1 << 20 // segment.bytes of the bench topic
)

// Proc is a child process whose output goes to a log file.
type Proc struct {
	Name    string
	cmd     *exec.Cmd
	LogPath string
	Done    chan struct{} // closed when the process has exited
	WaitErr error         // valid after Done
	stopMu  sync.Mutex
}

// StartProc starts argv with stdout and stderr appended to logPath. The
// child gets its own process group (a Ctrl-C in the terminal reaches only
// this program, which then stops the children in order) and SIGKILL if
// this program dies without cleaning up.
//
// cpus, if not empty, is a taskset CPU list the process (all its threads)
// is confined to; env entries (KEY=VALUE) are added to this program's
// environment.
func StartProc(name, dir, logPath, cpus string, env []string, argv ...string) (*Proc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...) // taskset execs: same pid
	}
	defer lf.Close() // the child has its own descriptor
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, LogPath: logPath, Done: make(chan struct{})}
	go func() {
		p.WaitErr = cmd.Wait()
		close(p.Done)
	}()
	return p, nil
}

func (p *Proc) PID() int { return p.cmd.Process.Pid }

func (p *Proc) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to grace, then SIGKILLs and waits.
// Idempotent. It reports whether the process had to be killed.
func (p *Proc) Stop(grace time.Duration) (killed bool) {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.Exited() {
		return false
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Done:
		return false
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.Done
	return true
}

// LogTail returns the last n lines of the process's log.
func (p *Proc) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}

// Failure wraps err with the process's log tail.
func (p *Proc) Failure(err error) error {
	return fmt.Errorf("%s: %w\n  last lines of %s:\n%s", p.Name, err, p.LogPath, p.LogTail(25))
}

// Cleanups is a LIFO stack of shutdown actions, run once.
type Cleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *Cleanups) Push(fn func()) {
	c.mu.Lock()
	c.fns = append(c.fns, fn)
	c.mu.Unlock()
}

func (c *Cleanups) Run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// StopOnCleanup registers p to be stopped (and says so on stderr).
func (c *Cleanups) StopOnCleanup(p *Proc) {
	c.Push(func() {
		if p.Exited() {
			Logf("%s (pid %d) had already exited: %v", p.Name, p.PID(), p.WaitErr)
			return
		}
		start := time.Now()
		if p.Stop(StopGrace) {
			Logf("%s (pid %d) did not stop within %s: killed", p.Name, p.PID(), StopGrace)
		} else {
			Logf("stopped %s (pid %d) in %s", p.Name, p.PID(), time.Since(start).Round(time.Millisecond))
		}
	})
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1 (held open
// together while choosing, so they differ).
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ModuleRoot finds the directory of go.mod (the program is run from inside
// the module by `go run` or `make`).
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w (is the go tool on PATH?)", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the carrera module: run from the repository (go run ./cmd/" + program + ")")
	}
	return filepath.Dir(mod), nil
}

// BuildBinaries runs `go build -o binDir/ pkgs...` in root.
func BuildBinaries(ctx context.Context, root, binDir string, pkgs ...string) error {
	args := append([]string{"build", "-o", binDir + string(os.PathSeparator)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, out)
	}
	return nil
}

// WaitReady polls ready every 20 ms until it is true, p exits, ctx ends or
// timeout passes.
func WaitReady(ctx context.Context, p *Proc, timeout time.Duration, what string, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.Done:
			return p.Failure(fmt.Errorf("exited before %s: %v", what, p.WaitErr))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return p.Failure(fmt.Errorf("not %s after %s", what, timeout))
		}
	}
}

// StartZooKeeper writes zoo.cfg under dir and starts the Debian ZooKeeper
// on port; it returns once `srvr` reports a Mode: line.
func StartZooKeeper(ctx context.Context, dir string, port int, cpus string) (*Proc, error) {
	if _, err := os.Stat(zkServerJar); err != nil {
		return nil, fmt.Errorf("ZooKeeper jar %s not found: install it with `apt-get install -y zookeeper` (or `make deps`)", zkServerJar)
	}
	if _, err := exec.LookPath("java"); err != nil {
		return nil, errors.New("java not found: install it with `apt-get install -y openjdk-17-jre-headless` (or `make deps`)")
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPort=%d\n"+
		"clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok,stat,srvr,mntr\nmaxClientCnxns=0\n",
		data, port)
	cfgPath := filepath.Join(dir, "zoo.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	cp := zkServerJar
	if _, err := os.Stat(zkSlf4jJar); err == nil {
		cp += ":" + zkSlf4jJar
	}
	p, err := StartProc("zookeeper", dir, filepath.Join(dir, "zookeeper.log"), cpus, nil,
		"java", "-Xmx256m", "-cp", cp, zkMainClass, cfgPath)
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := WaitReady(ctx, p, 60*time.Second, "serving", func() bool { return testenv.ZKServing(addr) }); err != nil {
		p.Stop(StopGrace)
		return nil, err
	}
	return p, nil
}

type quietZKLogger struct{}

func (quietZKLogger) Printf(string, ...any) {}

// SeedZK writes nodes (paths inside chroot) in path order, creating missing
// parents with the data "default" as the DDMQ console does.
func SeedZK(addr, chroot string, nodes map[string][]byte) error {
	conn, events, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(quietZKLogger{}))
	if err != nil {
		return fmt.Errorf("connect to ZooKeeper %s: %w", addr, err)
	}
	defer conn.Close()
	timeout := time.After(10 * time.Second)
	for connected := false; !connected; {
		select {
		case ev := <-events:
			connected = ev.State == zk.StateHasSession
		case <-timeout:
			return fmt.Errorf("no ZooKeeper session with %s after 10s", addr)
		}
	}
	paths := make([]string, 0, len(nodes))
	for p := range nodes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range paths {
		full := path.Join("/", chroot, p)
		parts := strings.Split(strings.Trim(full, "/"), "/")
		cur := ""
		for _, part := range parts[:len(parts)-1] {
			cur += "/" + part
			if _, err := conn.Create(cur, []byte("default"), 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return fmt.Errorf("create %s: %w", cur, err)
			}
		}
		_, err := conn.Create(full, nodes[p], 0, acl)
		if errors.Is(err, zk.ErrNodeExists) {
			_, err = conn.Set(full, nodes[p], -1)
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", full, err)
		}
	}
	return nil
}

// StartKafka starts kfakeserver (one broker on port; auto-created topics
// get partitions partitions). dataDir "" keeps the data in memory;
// otherwise it is persisted there (kfakeserver then fsyncs every batch). It
// returns once the ready line is in the log.
func StartKafka(ctx context.Context, bin, dir string, port, partitions int, dataDir, cpus string) (*Proc, error) {
	args := []string{bin, "-ports", strconv.Itoa(port), "-partitions", strconv.Itoa(partitions)}
	if dataDir != "" {
		args = append(args, "-data-dir", dataDir)
	}
	p, err := StartProc("kfakeserver", dir, filepath.Join(dir, "kfakeserver.log"), cpus, nil, args...)
	if err != nil {
		return nil, err
	}
	ready := func() bool {
		b, _ := os.ReadFile(p.LogPath)
		return strings.Contains(string(b), "kfakeserver listening on")
	}
	if err := WaitReady(ctx, p, 30*time.Second, "listening", ready); err != nil {
		p.Stop(StopGrace)
		return nil, err
	}
	return p, nil
}

// BrokerAdmin creates the bench topic and empties it between phases.
//
// kfake keeps every record in memory and slows down as the log grows
// (measured: from ~160k to ~4k msgs/s at 2.5 GB), which would penalise
// whichever phase runs later. So every phase starts from an empty topic
// (DeleteRecords up to the end), and within a phase retention.bytes per
// partition, enforced every second (broker config log.cleaner.backoff.ms),
// bounds the log.
type BrokerAdmin struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
	topic  string
}

func NewBrokerAdmin(brokers []string, topic string) (*BrokerAdmin, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.ClientID = program + "-admin"
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, err
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	return &BrokerAdmin{client: client, admin: admin, topic: topic}, nil
}

// Client is the admin's sarama client (offsets, metadata).
func (b *BrokerAdmin) Client() sarama.Client { return b.client }

func (b *BrokerAdmin) Close() { _ = b.admin.Close() } // closes the client too

// CreateTopic sets the broker's retention check interval and creates the
// topic with partitions partitions and retentionBytes per partition.
func (b *BrokerAdmin) CreateTopic(partitions int, retentionBytes int64) error {
	bs := b.client.Brokers()
	if len(bs) != 1 {
		return fmt.Errorf("want 1 broker, metadata lists %d", len(bs))
	}
	interval := "1000"
	if err := b.admin.AlterConfig(sarama.BrokerResource, strconv.Itoa(int(bs[0].ID())),
		map[string]*string{"log.cleaner.backoff.ms": &interval}, false); err != nil {
		return fmt.Errorf("broker config log.cleaner.backoff.ms: %w", err)
	}
	// Retention drops whole segments only (kfake keeps even its in-memory
	// "files" until a segment is removed), so segments must be small
	// next to retention.bytes: 1 MiB instead of the default 100 MiB.
	err := b.admin.CreateTopic(b.topic, &sarama.TopicDetail{NumPartitions: int32(partitions), ReplicationFactor: 1,
		ConfigEntries: topicConfig(retentionBytes)}, false)
	if err != nil {
		return fmt.Errorf("create topic %q: %w", b.topic, err)
	}
	return nil
}

// topicConfig is the bench topic's configuration for retentionBytes per
// partition.
func topicConfig(retentionBytes int64) map[string]*string {
	ret := strconv.FormatInt(retentionBytes, 10)
	seg := strconv.FormatInt(min(retentionBytes, SegmentBytes), 10)
	return map[string]*string{"retention.bytes": &ret, "segment.bytes": &seg}
}

// SetRetention changes the topic's retention.bytes per partition. An
// AlterConfigs request replaces all of a topic's settings, so segment.bytes
// is sent again, as CreateTopic sets it.
func (b *BrokerAdmin) SetRetention(retentionBytes int64) error {
	if err := b.admin.AlterConfig(sarama.TopicResource, b.topic, topicConfig(retentionBytes), false); err != nil {
		return fmt.Errorf("topic %q retention.bytes: %w", b.topic, err)
	}
	return nil
}

// Empty deletes every record of the topic (log start = log end). It
// returns how many records the topic held and how many were ever written.
func (b *BrokerAdmin) Empty(partitions int) (held, written int64, err error) {
	ends := make(map[int32]int64, partitions)
	for p := range int32(partitions) {
		end, err := b.client.GetOffset(b.topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, 0, fmt.Errorf("end offset of %s/%d: %w", b.topic, p, err)
		}
		start, err := b.client.GetOffset(b.topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, 0, fmt.Errorf("start offset of %s/%d: %w", b.topic, p, err)
		}
		if end > start {
			ends[p] = end
			held += end - start
		}
		written += end
	}
	if len(ends) == 0 {
		return 0, written, nil
	}
	if err := b.admin.DeleteRecords(b.topic, ends); err != nil {
		return 0, 0, fmt.Errorf("delete records of %s: %w", b.topic, err)
	}
	return held, written, nil
}

// ProcStatusKiB returns a field of /proc/<pid>/status in KiB (e.g. "VmHWM").
func ProcStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// CPUTime returns the user+system CPU time of pid so far (all threads).
func CPUTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may contain spaces; fields after ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks
}

// MachineBusy returns the busy CPU time of the whole machine so far (all
// cores; everything but idle and iowait), from /proc/stat.
func MachineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var total int64
	for i, v := range f[1:] {
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		total += n
	}
	return time.Duration(total) * time.Second / clockTicks
}

// LoadAvg returns the 1-minute load average.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// CPUPlan confines processes to CPUs (-pin): the proxy gets the last CPU of
// its own, everything else (ZooKeeper, broker, this load generator) the
// others, in every phase. Empty lists mean unpinned.
type CPUPlan struct {
	Proxy, Others string
	OtherIDs      []int
}

func NewCPUPlan(pin bool, ncpu int) (CPUPlan, error) {
	if !pin {
		return CPUPlan{}, nil
	}
	if ncpu < 2 {
		return CPUPlan{}, fmt.Errorf("-pin needs at least 2 CPUs, have %d", ncpu)
	}
	if _, err := exec.LookPath("taskset"); err != nil {
		return CPUPlan{}, errors.New("-pin needs taskset: install it with `apt-get install -y util-linux`")
	}
	p := CPUPlan{Proxy: strconv.Itoa(ncpu - 1), Others: "0"}
	if ncpu > 2 {
		p.Others = fmt.Sprintf("0-%d", ncpu-2)
	}
	for i := range ncpu - 1 {
		p.OtherIDs = append(p.OtherIDs, i)
	}
	return p, nil
}

// PinSelf confines every thread of this process to cpus (threads created
// later inherit it) and sets GOMAXPROCS to match.
func PinSelf(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d: %w", tid, err)
		}
	}
	runtime.GOMAXPROCS(len(cpus))
	return nil
}

// WaitHealthy waits until http://adminAddr/healthz answers 200 (a proxy's
// readiness), p exits, ctx ends or timeout passes.
func WaitHealthy(ctx context.Context, p *Proc, adminAddr string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	return WaitReady(ctx, p, timeout, "healthy", func() bool {
		resp, err := client.Get("http://" + adminAddr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// BuildStack builds kfakeserver and ./cmd/<proxy> into <tmp>/bin; a
// non-empty override names a prebuilt proxy binary used instead. It returns
// the binary directory and the proxy binary's path.
func BuildStack(ctx context.Context, tmp, proxy, override string) (binDir, proxyBin string, err error) {
	root, err := ModuleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	binDir = filepath.Join(tmp, "bin")
	pkgs := []string{"./cmd/kfakeserver"}
	proxyBin = override
	if proxyBin == "" {
		pkgs = append(pkgs, "./cmd/"+proxy)
		proxyBin = filepath.Join(binDir, proxy)
	} else if proxyBin, err = filepath.Abs(proxyBin); err != nil {
		return "", "", err
	}
	Logf("building %s into %s", strings.Join(pkgs, " "), binDir)
	if err := BuildBinaries(ctx, root, binDir, pkgs...); err != nil {
		return "", "", err
	}
	return binDir, proxyBin, nil
}
