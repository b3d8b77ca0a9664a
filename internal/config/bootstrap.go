package config

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"
)

// Bootstrap defaults. DefaultChroot is the ZooKeeper chroot of all proxy
// nodes (zookeeper-layout.md §2).
const (
	DefaultChroot          = "/carrera/v4/config"
	DefaultLogLevel        = "info"
	DefaultZKStartTimeout  = 5 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	// DefaultMaxFrameBytes is the Thrift frame limit used when neither
	// maxFrameBytes nor thriftServer.maxReadBufferBytes is set (the Go
	// Thrift library's default).
	DefaultMaxFrameBytes = 16384000
	// AdminPortOffset: the default admin address is 127.0.0.1:<port+10000>
	// (127.0.0.1:<port-10000> when port+10000 exceeds 65535).
	AdminPortOffset = 10000
	// DefaultCacheDirName is the cache directory under $HOME.
	DefaultCacheDirName = "carrera.conf"
)

// Bootstrap is the local start-up file, conf/carrera.yaml
// (zookeeper-layout.md §1). The first four keys are DDMQ's; the others are
// this project's additions, all optional:
//
//	zookeeperAddr:   "10.0.0.1:2181,10.0.0.2:2181/carrera/v4/config"  # required
//	host:            ""            # blank = first non-loopback IPv4
//	port:            9613          # required, 1..65535
//	defaultTopicInfoConf: {topics: [...]}   # static TopicConfigs (pproxy)
//	adminAddr:       "127.0.0.1:19613"  # admin/metrics/pprof HTTP; default 127.0.0.1:<port+10000>
//	logLevel:        info          # debug, info, warn, error
//	logDir:          ""            # blank = log to stderr
//	configCacheDir:  ~/carrera.conf  # ZooKeeper data cache (~ and $VARS expanded)
//	zkStartTimeout:  5s            # wait for ZooKeeper at start, then use the cache
//	shutdownTimeout: 10s           # graceful shutdown budget
//	maxFrameBytes:   0             # 0 = thriftServer.maxReadBufferBytes, else 16384000
//	consumerGroup:                 # cproxy only: broker group protocol timings
//	  sessionTimeout: 10s          # 0 = adapter default
//	  heartbeatInterval: 3s
//	  rebalanceTimeout: 60s
//	  commitInterval: 1s           # offset commit flush period
//	  pullIdleTimeout: 60s         # stop a pull group after this long without a pull
type Bootstrap struct {
	ZookeeperAddr        string
	Host                 string
	Port                 int
	DefaultTopicInfoConf TopicInfoConf

	AdminAddr       string
	LogLevel        string
	LogDir          string
	ConfigCacheDir  string
	ZKStartTimeout  time.Duration
	ShutdownTimeout time.Duration
	MaxFrameBytes   int64

	// ConsumerGroup tunes cproxy's broker group membership; zero fields
	// keep the adapter defaults.
	ConsumerGroup ConsumerGroupTimings
}

// ConsumerGroupTimings are cproxy's broker group protocol settings.
type ConsumerGroupTimings struct {
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	RebalanceTimeout  time.Duration
	CommitInterval    time.Duration
	PullIdleTimeout   time.Duration
}

// bootstrapYAML is the raw file shape. defaultTopicInfoConf is decoded
// generically and re-parsed as JSON so static topics get exactly the
// defaults, aliases and validation of ZooKeeper topics.
type bootstrapYAML struct {
	ZookeeperAddr        string `yaml:"zookeeperAddr"`
	Host                 string `yaml:"host"`
	Port                 int    `yaml:"port"`
	DefaultTopicInfoConf any    `yaml:"defaultTopicInfoConf"`
	AdminAddr            string `yaml:"adminAddr"`
	LogLevel             string `yaml:"logLevel"`
	LogDir               string `yaml:"logDir"`
	ConfigCacheDir       string `yaml:"configCacheDir"`
	ZKStartTimeout       string `yaml:"zkStartTimeout"`
	ShutdownTimeout      string `yaml:"shutdownTimeout"`
	MaxFrameBytes        int64  `yaml:"maxFrameBytes"`
	ConsumerGroup        struct {
		SessionTimeout    string `yaml:"sessionTimeout"`
		HeartbeatInterval string `yaml:"heartbeatInterval"`
		RebalanceTimeout  string `yaml:"rebalanceTimeout"`
		CommitInterval    string `yaml:"commitInterval"`
		PullIdleTimeout   string `yaml:"pullIdleTimeout"`
	} `yaml:"consumerGroup"`
}

// LoadBootstrap reads and parses the bootstrap file at path.
func LoadBootstrap(path string) (*Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	b, err := ParseBootstrap(data)
	if err != nil {
		return nil, fmt.Errorf("bootstrap %s: %w", path, err)
	}
	return b, nil
}

// ParseBootstrap parses bootstrap YAML, applies the defaults and validates.
// Unknown keys are ignored.
func ParseBootstrap(data []byte) (*Bootstrap, error) {
	var raw bootstrapYAML
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	b := &Bootstrap{
		ZookeeperAddr:  strings.TrimSpace(raw.ZookeeperAddr),
		Host:           strings.TrimSpace(raw.Host),
		Port:           raw.Port,
		AdminAddr:      raw.AdminAddr,
		LogLevel:       raw.LogLevel,
		LogDir:         raw.LogDir,
		ConfigCacheDir: raw.ConfigCacheDir,
		MaxFrameBytes:  raw.MaxFrameBytes,
	}
	var p problems

	b.DefaultTopicInfoConf.Topics = []*TopicConfig{}
	if raw.DefaultTopicInfoConf != nil {
		js, err := json.Marshal(raw.DefaultTopicInfoConf)
		if err != nil {
			p.addf("defaultTopicInfoConf: %v", err)
		} else if err := json.Unmarshal(js, &b.DefaultTopicInfoConf); err != nil {
			p.addf("defaultTopicInfoConf: %v", err)
		} else {
			if b.DefaultTopicInfoConf.Topics == nil {
				b.DefaultTopicInfoConf.Topics = []*TopicConfig{}
			}
			for i, t := range b.DefaultTopicInfoConf.Topics {
				path := fmt.Sprintf("defaultTopicInfoConf.topics[%d]", i)
				if t == nil {
					p.addf("%s must not be null", path)
					continue
				}
				p.nest(path, t.Validate())
			}
		}
	}

	if b.ZookeeperAddr == "" {
		p.addf("zookeeperAddr is required")
	} else if servers, _ := ParseZKAddr(b.ZookeeperAddr); len(servers) == 0 {
		p.addf("zookeeperAddr %q has no host:port", b.ZookeeperAddr)
	}
	if b.Port <= 0 || b.Port > 65535 {
		p.addf("port must be in 1..65535, got %d", b.Port)
	}

	if b.AdminAddr == "" && b.Port > 0 && b.Port <= 65535 {
		ap := b.Port + AdminPortOffset
		if ap > 65535 {
			ap = b.Port - AdminPortOffset
		}
		b.AdminAddr = "127.0.0.1:" + strconv.Itoa(ap)
	} else if b.AdminAddr != "" {
		if _, _, err := net.SplitHostPort(b.AdminAddr); err != nil {
			p.addf("adminAddr %q: %v", b.AdminAddr, err)
		}
	}

	if b.LogLevel == "" {
		b.LogLevel = DefaultLogLevel
	}
	if _, err := zapcore.ParseLevel(b.LogLevel); err != nil {
		p.addf("logLevel: %v", err)
	}

	if b.ConfigCacheDir == "" {
		home, err := os.UserHomeDir()
		if err != nil || home == "" {
			home = os.TempDir()
		}
		b.ConfigCacheDir = filepath.Join(home, DefaultCacheDirName)
	} else {
		b.ConfigCacheDir = expandPath(b.ConfigCacheDir)
	}

	var err error
	if b.ZKStartTimeout, err = parseDuration(raw.ZKStartTimeout, DefaultZKStartTimeout); err != nil {
		p.addf("zkStartTimeout: %v", err)
	}
	if b.ShutdownTimeout, err = parseDuration(raw.ShutdownTimeout, DefaultShutdownTimeout); err != nil {
		p.addf("shutdownTimeout: %v", err)
	}
	for _, d := range []struct {
		key string
		raw string
		dst *time.Duration
	}{
		{"consumerGroup.sessionTimeout", raw.ConsumerGroup.SessionTimeout, &b.ConsumerGroup.SessionTimeout},
		{"consumerGroup.heartbeatInterval", raw.ConsumerGroup.HeartbeatInterval, &b.ConsumerGroup.HeartbeatInterval},
		{"consumerGroup.rebalanceTimeout", raw.ConsumerGroup.RebalanceTimeout, &b.ConsumerGroup.RebalanceTimeout},
		{"consumerGroup.commitInterval", raw.ConsumerGroup.CommitInterval, &b.ConsumerGroup.CommitInterval},
		{"consumerGroup.pullIdleTimeout", raw.ConsumerGroup.PullIdleTimeout, &b.ConsumerGroup.PullIdleTimeout},
	} {
		if *d.dst, err = parseDuration(d.raw, 0); err != nil {
			p.addf("%s: %v", d.key, err)
		} else if *d.dst < 0 {
			p.addf("%s must not be negative", d.key)
		}
	}
	if b.MaxFrameBytes < 0 {
		p.addf("maxFrameBytes must be >= 0, got %d", b.MaxFrameBytes)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return b, nil
}

func parseDuration(s string, def time.Duration) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative, got %s", s)
	}
	return d, nil
}

// expandPath expands a leading "~/" to the home directory and $VARS.
func expandPath(p string) string {
	p = os.ExpandEnv(p)
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, strings.TrimPrefix(p[1:], "/"))
		}
	}
	return p
}

// InstanceName returns "<host>:<port>", the name under /pproxy (or /cproxy)
// and in the proxies sets. A blank host is replaced by LocalIPv4(). Nothing
// is normalised: the result must be byte-identical to what the console wrote.
func (b *Bootstrap) InstanceName() string {
	host := b.Host
	if host == "" {
		host = LocalIPv4()
	}
	return host + ":" + strconv.Itoa(b.Port)
}

// ZKServers returns the ZooKeeper servers and chroot of ZookeeperAddr.
func (b *Bootstrap) ZKServers() (servers []string, chroot string) {
	return ParseZKAddr(b.ZookeeperAddr)
}

// FrameLimit is the Thrift maximum frame size: maxFrameBytes when set, else
// the node's thriftServer.maxReadBufferBytes (pass 0 if unknown), else
// DefaultMaxFrameBytes.
func (b *Bootstrap) FrameLimit(maxReadBufferBytes int64) int64 {
	switch {
	case b.MaxFrameBytes > 0:
		return b.MaxFrameBytes
	case maxReadBufferBytes > 0:
		return maxReadBufferBytes
	default:
		return DefaultMaxFrameBytes
	}
}

// LocalIPv4 returns the first non-loopback IPv4 address of an interface
// that is up, in interface order; "127.0.0.1" if there is none.
func LocalIPv4() string {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "127.0.0.1"
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil && !ip4.IsLoopback() && !ip4.IsUnspecified() {
				return ip4.String()
			}
		}
	}
	return "127.0.0.1"
}

// ParseZKAddr splits a ZooKeeper connect string into its servers and the
// chroot. The servers are the comma-separated part before the first '/';
// the chroot is the rest. Like DDMQ, DefaultChroot is appended when the
// path does not already end with it ("h:2181" → "/carrera/v4/config",
// "h:2181/x" → "/x/carrera/v4/config"). Blank server entries are dropped;
// trailing slashes of the path are ignored.
func ParseZKAddr(s string) (servers []string, chroot string) {
	s = strings.TrimSpace(s)
	hosts, path := s, ""
	if i := strings.IndexByte(s, '/'); i >= 0 {
		hosts, path = s[:i], s[i:]
	}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			servers = append(servers, h)
		}
	}
	path = strings.TrimRight(path, "/")
	if !strings.HasSuffix(path, DefaultChroot) {
		path += DefaultChroot
	}
	return servers, path
}
