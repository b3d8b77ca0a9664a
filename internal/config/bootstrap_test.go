package config

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseBootstrap(t *testing.T) {
	home, _ := os.UserHomeDir()
	tests := []struct {
		name  string
		yaml  string
		check func(t *testing.T, b *Bootstrap)
	}{
		{"DDMQ shipped file", "zookeeperAddr: 127.0.0.1:2181/carrera/v4/config\nport: 9613\n", func(t *testing.T, b *Bootstrap) {
			if b.Port != 9613 || b.Host != "" || b.ZookeeperAddr != "127.0.0.1:2181/carrera/v4/config" {
				t.Fatalf("%+v", b)
			}
			if b.AdminAddr != "127.0.0.1:19613" || b.LogLevel != "info" || b.LogDir != "" {
				t.Fatalf("defaults: %+v", b)
			}
			if b.ConfigCacheDir != filepath.Join(home, "carrera.conf") {
				t.Fatalf("cache dir: %q", b.ConfigCacheDir)
			}
			if b.ZKStartTimeout != 5*time.Second || b.ShutdownTimeout != 10*time.Second || b.MaxFrameBytes != 0 {
				t.Fatalf("durations: %+v", b)
			}
			if b.DefaultTopicInfoConf.Topics == nil || len(b.DefaultTopicInfoConf.Topics) != 0 {
				t.Fatalf("static topics: %+v", b.DefaultTopicInfoConf)
			}
			servers, chroot := b.ZKServers()
			if !equalStrings(servers, []string{"127.0.0.1:2181"}) || chroot != DefaultChroot {
				t.Fatalf("zk: %v %q", servers, chroot)
			}
		}},
		{"all project keys", `
zookeeperAddr: "10.0.0.1:2181,10.0.0.2:2181"
host: 10.0.0.11
port: 9713
adminAddr: "0.0.0.0:8080"
logLevel: debug
logDir: /var/log/carrera
configCacheDir: "~/cache"
zkStartTimeout: 750ms
shutdownTimeout: 1m
maxFrameBytes: 1000
someUnknownKey: [1, 2]
`, func(t *testing.T, b *Bootstrap) {
			if b.InstanceName() != "10.0.0.11:9713" || b.AdminAddr != "0.0.0.0:8080" || b.LogLevel != "debug" || b.LogDir != "/var/log/carrera" {
				t.Fatalf("%+v", b)
			}
			if b.ConfigCacheDir != filepath.Join(home, "cache") {
				t.Fatalf("cache dir: %q", b.ConfigCacheDir)
			}
			if b.ZKStartTimeout != 750*time.Millisecond || b.ShutdownTimeout != time.Minute || b.MaxFrameBytes != 1000 {
				t.Fatalf("%+v", b)
			}
			if servers, chroot := b.ZKServers(); len(servers) != 2 || chroot != DefaultChroot {
				t.Fatalf("zk: %v %q", servers, chroot)
			}
		}},
		{"admin port above 65535", "zookeeperAddr: h:2181\nport: 60000\n", func(t *testing.T, b *Bootstrap) {
			if b.AdminAddr != "127.0.0.1:50000" {
				t.Fatalf("admin: %q", b.AdminAddr)
			}
		}},
		{"static topics in YAML", `
zookeeperAddr: h:2181
port: 9613
defaultTopicInfoConf:
  topics:
    - topic: static_t
      topicUnits:
        - brokerCluster: R_default
          proxies: {P_x: ["10.0.0.11:9613"]}
          maxTps: 100
`, func(t *testing.T, b *Bootstrap) {
			ts := b.DefaultTopicInfoConf.Topics
			if len(ts) != 1 || ts[0].Topic != "static_t" || ts[0].TopicUnits[0].MaxTps != 100 ||
				ts[0].TopicUnits[0].TotalMaxTps != DefaultUnitMaxTps || ts[0].LimiterFailureRetryInterval != -1 {
				t.Fatalf("%+v", ts)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBootstrap([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, b)
		})
	}
}

func TestParseBootstrapInvalid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", "", []string{"zookeeperAddr is required", "port must be in 1..65535"}},
		{"no servers", "zookeeperAddr: /carrera\nport: 1\n", []string{"has no host:port"}},
		{"port too big", "zookeeperAddr: h:1\nport: 70000\n", []string{"port must be in 1..65535, got 70000"}},
		{"bad duration", "zookeeperAddr: h:1\nport: 1\nzkStartTimeout: 5\n", []string{"zkStartTimeout"}},
		{"negative duration", "zookeeperAddr: h:1\nport: 1\nshutdownTimeout: -1s\n", []string{"shutdownTimeout"}},
		{"bad log level", "zookeeperAddr: h:1\nport: 1\nlogLevel: loud\n", []string{"logLevel"}},
		{"bad admin addr", "zookeeperAddr: h:1\nport: 1\nadminAddr: nonsense\n", []string{"adminAddr"}},
		{"negative frame", "zookeeperAddr: h:1\nport: 1\nmaxFrameBytes: -1\n", []string{"maxFrameBytes"}},
		{"invalid static topic", "zookeeperAddr: h:1\nport: 1\ndefaultTopicInfoConf: {topics: [{topic: x}]}\n",
			[]string{"defaultTopicInfoConf.topics[0].topicUnits must not be empty"}},
		{"static topics wrong shape", "zookeeperAddr: h:1\nport: 1\ndefaultTopicInfoConf: [1]\n", []string{"defaultTopicInfoConf"}},
		{"not YAML", "port: [\n", []string{"invalid YAML"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBootstrap([]byte(tc.yaml))
			if b != nil {
				t.Fatalf("got %+v", b)
			}
			wantErr(t, err, tc.want...)
		})
	}
}

func TestLoadBootstrap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "carrera.yaml")
	if err := os.WriteFile(path, []byte("zookeeperAddr: h:2181\nport: 9613\nhost: 1.2.3.4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := LoadBootstrap(path)
	if err != nil || b.InstanceName() != "1.2.3.4:9613" {
		t.Fatalf("%v %+v", err, b)
	}
	if _, err := LoadBootstrap(path + ".missing"); err == nil {
		t.Fatal("missing file: want error")
	}
}

func TestInstanceNameBlankHost(t *testing.T) {
	b := &Bootstrap{Port: 9613}
	name := b.InstanceName()
	host, port, err := net.SplitHostPort(name)
	if err != nil || port != "9613" {
		t.Fatalf("%q: %v", name, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil {
		t.Fatalf("host %q is not IPv4", host)
	}
	if host != "127.0.0.1" && ip.IsLoopback() {
		t.Fatalf("host %q is loopback", host)
	}
	if host != LocalIPv4() {
		t.Fatalf("InstanceName host %q != LocalIPv4 %q", host, LocalIPv4())
	}
}

func TestFrameLimit(t *testing.T) {
	tests := []struct {
		name string
		cfg  int64
		node int64
		want int64
	}{
		{"bootstrap wins", 100, 5000000, 100},
		{"node maxReadBufferBytes", 0, 5000000, 5000000},
		{"library default", 0, 0, DefaultMaxFrameBytes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &Bootstrap{MaxFrameBytes: tc.cfg}
			if got := b.FrameLimit(tc.node); got != tc.want {
				t.Fatalf("got %d want %d", got, tc.want)
			}
		})
	}
}

func TestParseZKAddr(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		servers []string
		chroot  string
	}{
		{"with chroot", "10.0.0.1:2181,10.0.0.2:2181/carrera/v4/config", []string{"10.0.0.1:2181", "10.0.0.2:2181"}, "/carrera/v4/config"},
		{"no path", "127.0.0.1:2181", []string{"127.0.0.1:2181"}, "/carrera/v4/config"},
		{"trailing slash", "h:1/", []string{"h:1"}, "/carrera/v4/config"},
		{"other path gets suffix", "h:1/ddmq", []string{"h:1"}, "/ddmq/carrera/v4/config"},
		{"prefixed chroot kept", "h:1/env/carrera/v4/config/", []string{"h:1"}, "/env/carrera/v4/config"},
		{"blanks dropped", " a:1, ,b:2 /carrera/v4/config", []string{"a:1", "b:2"}, "/carrera/v4/config"},
		{"empty", "", nil, "/carrera/v4/config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			servers, chroot := ParseZKAddr(tc.in)
			if !equalStrings(servers, tc.servers) || chroot != tc.chroot {
				t.Fatalf("got %q %q", servers, chroot)
			}
		})
	}
}

func TestBootstrapConsumerGroupTimings(t *testing.T) {
	b, err := ParseBootstrap([]byte("zookeeperAddr: 127.0.0.1:2181\nport: 9713\nconsumerGroup:\n  sessionTimeout: 1s\n  heartbeatInterval: 100ms\n  rebalanceTimeout: 2s\n  commitInterval: 250ms\n  pullIdleTimeout: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := ConsumerGroupTimings{SessionTimeout: time.Second, HeartbeatInterval: 100 * time.Millisecond,
		RebalanceTimeout: 2 * time.Second, CommitInterval: 250 * time.Millisecond, PullIdleTimeout: 30 * time.Second}
	if b.ConsumerGroup != want {
		t.Fatalf("got %+v, want %+v", b.ConsumerGroup, want)
	}
	b, err = ParseBootstrap([]byte("zookeeperAddr: 127.0.0.1:2181\nport: 9713\n"))
	if err != nil || b.ConsumerGroup != (ConsumerGroupTimings{}) {
		t.Fatalf("absent block: %+v %v", b.ConsumerGroup, err)
	}
	for _, bad := range []string{"sessionTimeout: soon", "commitInterval: -1s"} {
		if _, err := ParseBootstrap([]byte("zookeeperAddr: 127.0.0.1:2181\nport: 9713\nconsumerGroup:\n  " + bad + "\n")); err == nil ||
			!strings.Contains(err.Error(), "consumerGroup.") {
			t.Errorf("%q: error %v, want one naming the key", bad, err)
		}
	}
}
