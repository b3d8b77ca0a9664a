package chronos

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the delay service's YAML file (conf/chronos.yaml). The keys are
// DDMQ Chronos's (behaviour.md §3.8); keys marked "extension" are this
// project's. Unknown keys (DDMQ's RocksDB tuning, pullBatchItemNum,
// msgByteBaseLen, poolSize, pushIntervalMs, deleteWhen, zk retry knobs) are
// accepted and ignored.
type Config struct {
	// ClusterName and GroupName name the delay group for master election
	// (/chronos/master/<clusterName>/<groupName>).
	ClusterName string `yaml:"clusterName"`
	GroupName   string `yaml:"groupName"`
	// PullOn: consume the inner topic. PushOn: deliver due messages (a node
	// with pushOn false only advances). DeleteOn: run retention.
	PullOn   bool `yaml:"pullOn"`
	PushOn   bool `yaml:"pushOn"`
	DeleteOn bool `yaml:"deleteOn"`
	// StandAlone: master without election (no ZooKeeper needed).
	StandAlone bool `yaml:"standAlone"`
	// FakeSend pretends every delivery succeeded (benchmarks).
	FakeSend bool `yaml:"fakeSend"`

	// AdminAddr serves /metrics, /healthz and /debug/pprof (extension;
	// default 127.0.0.1:12222, "-" disables).
	AdminAddr string `yaml:"adminAddr"`
	// LogLevel and LogDir configure zap (extension; "" = info, stderr).
	LogLevel string `yaml:"logLevel"`
	LogDir   string `yaml:"logDir"`
	// ShutdownTimeout bounds the ordered shutdown (extension; default 10s).
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`

	DB     DBConfig     `yaml:"dbConfig"`
	Pull   PullConfig   `yaml:"pullConfig"`
	Push   PushConfig   `yaml:"pushConfig"`
	Delete DeleteConfig `yaml:"deleteConfig"`
	ZK     ZKConfig     `yaml:"zkConfig"`
}

// DBConfig configures the store.
type DBConfig struct {
	// DBPath is the store directory (required).
	DBPath string `yaml:"dbPath"`
	// CacheMB and MemTableMB bound the store's memory (extension; defaults
	// 16 and 16).
	CacheMB    int `yaml:"cacheMB"`
	MemTableMB int `yaml:"memTableMB"`
}

// PullConfig configures ingestion through cproxy.
type PullConfig struct {
	// InnerGroup is this node's consumer group of the inner topic; every
	// replica has its own (required).
	InnerGroup string `yaml:"innerGroup"`
	// InnerTopic is the inner topic this delay group serves (required).
	InnerTopic string `yaml:"innerTopic"`
	// CproxyAddrs are cproxy addresses (YAML list, or DDMQ's ";"-separated
	// string); pulling goroutine i uses address i mod n.
	CproxyAddrs AddrList `yaml:"cproxyAddrs"`
	// ThreadNum is the number of pulling goroutines (default 4).
	ThreadNum int `yaml:"threadNum"`
	// MaxBatchSize is the pull's maxBatchSize (default 200).
	MaxBatchSize int `yaml:"maxBatchSize"`
	// TimeoutMs is the Thrift socket timeout of a pull (default 3000).
	TimeoutMs int `yaml:"timeoutMs"`
	// MaxLingerTimeMs is the pull's long-poll time (extension; default
	// 500, capped below timeoutMs).
	MaxLingerTimeMs int `yaml:"maxLingerTimeMs"`
	// RetryIntervalMs is the pause after a failed pull (default 500).
	RetryIntervalMs int `yaml:"retryIntervalMs"`
	// BackupHoldMs: how long a backup's pulling goroutine waits for the
	// master's published offsets to cover a batch before it leaves the rest
	// un-acknowledged for cproxy to redeliver (extension; default 2000).
	BackupHoldMs int `yaml:"backupHoldMs"`
	// MaxCatchUp bounds how many already-due occurrences of one loop
	// message are sent at ingestion; the rest are skipped, counted and
	// logged (extension; default 1000).
	MaxCatchUp int `yaml:"maxCatchUp"`
}

// PushConfig configures delivery through pproxy.
type PushConfig struct {
	// PproxyAddrs are pproxy addresses (list or ";"-separated string).
	PproxyAddrs AddrList `yaml:"pproxyAddrs"`
	// ProxyTimeoutMs is sendSync's timeout argument (default 200).
	ProxyTimeoutMs int `yaml:"proxyTimeoutMs"`
	// ClientTimeoutMs is the Thrift socket timeout (default 300 +
	// proxyTimeoutMs).
	ClientTimeoutMs int `yaml:"clientTimeoutMs"`
	// ClientRetry: immediate retries on another pproxy after a transport
	// error before the 100 ms pause (default 2).
	ClientRetry int `yaml:"clientRetry"`
	// BatchSendThreadNum is the number of sending goroutines, each with its
	// own connection (default 16).
	BatchSendThreadNum int `yaml:"batchSendThreadNum"`
	// RetryIntervalMs is the pause between attempts of a failed delivery
	// (extension; default 100, behaviour.md §3.4).
	RetryIntervalMs int `yaml:"retryIntervalMs"`
}

// DeleteConfig configures retention.
type DeleteConfig struct {
	// SaveHours: keys older than seek − saveHours are deleted (default 6).
	SaveHours int `yaml:"saveHours"`
	// IntervalMinutes between retention runs (extension; default 10).
	IntervalMinutes int `yaml:"intervalMinutes"`
}

// ZKConfig configures election and meta publishing.
type ZKConfig struct {
	// ZkAddrs is the ZooKeeper connect string (no chroot; the paths below
	// are absolute). Required unless standAlone.
	ZkAddrs string `yaml:"zkAddrs"`
	// ZkSessionTimeoutMs (default 30000).
	ZkSessionTimeoutMs int `yaml:"zkSessionTimeoutMs"`
	// Path prefixes and node names (zookeeper-layout.md §8).
	MasterPathPrefix  string `yaml:"masterPathPrefix"`
	MetaPathPrefix    string `yaml:"metaPathPrefix"`
	OffsetsProp       string `yaml:"offsetsProp"`
	SeekTimestampProp string `yaml:"seekTimestampProp"`
	// PublishIntervalMs is how often the master publishes and backups read
	// the meta nodes (extension; default 1000).
	PublishIntervalMs int `yaml:"publishIntervalMs"`
}

// AddrList is a list of host:port, from a YAML sequence or a string
// separated by ";" or ",".
type AddrList []string

// UnmarshalYAML accepts a sequence or a separated string.
func (a *AddrList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.SequenceNode:
		var list []string
		if err := n.Decode(&list); err != nil {
			return err
		}
		*a = nil
		for _, s := range list {
			*a = append(*a, splitAddrs(s)...)
		}
		return nil
	case yaml.ScalarNode:
		*a = splitAddrs(n.Value)
		return nil
	}
	return fmt.Errorf("line %d: want a list or a string of addresses", n.Line)
}

func splitAddrs(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// DefaultConfig returns the defaults every file starts from.
func DefaultConfig() *Config {
	return &Config{
		PullOn: true, PushOn: true, DeleteOn: true,
		AdminAddr:       "127.0.0.1:12222",
		ShutdownTimeout: 10 * time.Second,
		DB:              DBConfig{CacheMB: 16, MemTableMB: 16},
		Pull: PullConfig{ThreadNum: 4, MaxBatchSize: 200, TimeoutMs: 3000, MaxLingerTimeMs: 500,
			RetryIntervalMs: 500, BackupHoldMs: 2000, MaxCatchUp: 1000},
		Push:   PushConfig{ProxyTimeoutMs: 200, ClientRetry: 2, BatchSendThreadNum: 16, RetryIntervalMs: 100},
		Delete: DeleteConfig{SaveHours: 6, IntervalMinutes: 10},
		ZK: ZKConfig{ZkSessionTimeoutMs: 30000, MasterPathPrefix: "/chronos/master", MetaPathPrefix: "/chronos/meta",
			OffsetsProp: "offsets", SeekTimestampProp: "seektimestamp", PublishIntervalMs: 1000},
	}
}

// LoadConfig reads and validates the file at p.
func LoadConfig(p string) (*Config, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("chronos config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("chronos config %s: %w", p, err)
	}
	return c, nil
}

// ParseConfig parses YAML over the defaults and validates the result.
func ParseConfig(data []byte) (*Config, error) {
	c := DefaultConfig()
	if err := yaml.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks required keys and ranges; it lists every problem.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DB.DBPath == "" {
		bad("dbConfig.dbPath is required")
	}
	if c.DB.CacheMB <= 0 || c.DB.MemTableMB <= 0 {
		bad("dbConfig.cacheMB and memTableMB must be > 0")
	}
	if c.PullOn {
		if c.Pull.InnerGroup == "" || c.Pull.InnerTopic == "" {
			bad("pullConfig.innerGroup and innerTopic are required when pullOn")
		}
		if len(c.Pull.CproxyAddrs) == 0 {
			bad("pullConfig.cproxyAddrs is required when pullOn")
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"pullConfig.threadNum", c.Pull.ThreadNum}, {"pullConfig.maxBatchSize", c.Pull.MaxBatchSize},
		{"pullConfig.timeoutMs", c.Pull.TimeoutMs}, {"pullConfig.maxLingerTimeMs", c.Pull.MaxLingerTimeMs},
		{"pushConfig.proxyTimeoutMs", c.Push.ProxyTimeoutMs}, {"pushConfig.batchSendThreadNum", c.Push.BatchSendThreadNum},
		{"pushConfig.retryIntervalMs", c.Push.RetryIntervalMs}, {"deleteConfig.saveHours", c.Delete.SaveHours},
		{"deleteConfig.intervalMinutes", c.Delete.IntervalMinutes}, {"zkConfig.publishIntervalMs", c.ZK.PublishIntervalMs},
		{"pullConfig.maxCatchUp", c.Pull.MaxCatchUp},
	} {
		if f.v <= 0 {
			bad("%s must be > 0, got %d", f.name, f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"pullConfig.retryIntervalMs", c.Pull.RetryIntervalMs}, {"pullConfig.backupHoldMs", c.Pull.BackupHoldMs},
		{"pushConfig.clientRetry", c.Push.ClientRetry}, {"pushConfig.clientTimeoutMs", c.Push.ClientTimeoutMs},
	} {
		if f.v < 0 {
			bad("%s must be >= 0, got %d", f.name, f.v)
		}
	}
	if c.PushOn && !c.FakeSend && len(c.Push.PproxyAddrs) == 0 {
		bad("pushConfig.pproxyAddrs is required when pushOn (unless fakeSend)")
	}
	if !c.StandAlone {
		if c.ZK.ZkAddrs == "" {
			bad("zkConfig.zkAddrs is required unless standAlone")
		}
		if c.ClusterName == "" || c.GroupName == "" || strings.Contains(c.ClusterName+c.GroupName, "/") {
			bad("clusterName and groupName are required (without '/') unless standAlone")
		}
		if c.ZK.ZkSessionTimeoutMs <= 0 {
			bad("zkConfig.zkSessionTimeoutMs must be > 0")
		}
		for _, p := range []struct{ name, v string }{{"masterPathPrefix", c.ZK.MasterPathPrefix}, {"metaPathPrefix", c.ZK.MetaPathPrefix}} {
			if !strings.HasPrefix(p.v, "/") || path.Clean(p.v) != p.v || p.v == "/" {
				bad("zkConfig.%s must be an absolute path, got %q", p.name, p.v)
			}
		}
		if c.ZK.OffsetsProp == "" || c.ZK.SeekTimestampProp == "" || strings.Contains(c.ZK.OffsetsProp+c.ZK.SeekTimestampProp, "/") {
			bad("zkConfig.offsetsProp and seekTimestampProp must be node names")
		}
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdownTimeout must be > 0")
	}
	return errors.Join(errs...)
}

// derived settings.

func (c *Config) masterPath() string {
	return path.Join(c.ZK.MasterPathPrefix, c.ClusterName, c.GroupName)
}
func (c *Config) metaPath() string { return path.Join(c.ZK.MetaPathPrefix, c.ClusterName, c.GroupName) }

func (c *Config) clientTimeout() time.Duration {
	if c.Push.ClientTimeoutMs > 0 {
		return ms(c.Push.ClientTimeoutMs)
	}
	return ms(300 + c.Push.ProxyTimeoutMs)
}

func (c *Config) linger() time.Duration {
	l := min(c.Pull.MaxLingerTimeMs, c.Pull.TimeoutMs*2/3)
	return ms(max(l, 20))
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }
