package chronos

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestShippedConfigLoads(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	c, err := LoadConfig(filepath.Join(filepath.Dir(file), "..", "..", "conf", "chronos.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pull.InnerGroup != "cg_R_test_chronos_inner_0_0" || len(c.Pull.CproxyAddrs) != 1 || c.Push.PproxyAddrs[0] != "127.0.0.1:9613" ||
		c.ShutdownTimeout != 10*time.Second || c.masterPath() != "/chronos/master/test/group_0" ||
		c.metaPath() != "/chronos/meta/test/group_0" || c.clientTimeout() != 500*time.Millisecond {
		t.Fatalf("parsed %+v", c)
	}
}

func TestDDMQConfigLoadsAndDefaults(t *testing.T) {
	// DDMQ's own file shape: RocksDB tuning and other unknown keys ignored,
	// cproxyAddrs as a ";" string.
	c, err := ParseConfig([]byte(`
clusterName : test
groupName : group_0
standAlone : false
dbConfig:
  dbPath : "/tmp/x"
  seekTimestampPath : "/tmp/seek"
  maxBackgroundFlushes : 10
pullConfig:
  innerGroup : cg_R_test_chronos_inner_0_1
  innerTopic : R_test_chronos_inner_0
  cproxyAddrs : 127.0.0.1:9713;127.0.0.2:9713
  pullBatchItemNum : 10000
pushConfig:
  pproxyAddrs :
    - 127.0.0.1:9613
deleteConfig:
  deleteWhen : 04
zkConfig:
  zkAddrs : "127.0.0.1:2181"
  baseSleepTimeMs : 10
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pull.CproxyAddrs) != 2 || c.Pull.CproxyAddrs[1] != "127.0.0.2:9713" || c.Pull.ThreadNum != 4 ||
		c.Push.BatchSendThreadNum != 16 || c.Delete.SaveHours != 6 || !c.PullOn || !c.PushOn || c.ZK.OffsetsProp != "offsets" {
		t.Fatalf("parsed %+v", c)
	}
	if l := c.linger(); l != 500*time.Millisecond {
		t.Fatalf("linger %v", l)
	}
}

func TestConfigValidation(t *testing.T) {
	for name, c := range map[string]struct{ yaml, want string }{
		"no db path":       {`standAlone: true` + "\npullOn: false\nfakeSend: true", "dbPath is required"},
		"no inner group":   {"standAlone: true\nfakeSend: true\ndbConfig: {dbPath: /x}\npullConfig: {cproxyAddrs: a:1}", "innerGroup and innerTopic"},
		"no cproxy":        {"standAlone: true\nfakeSend: true\ndbConfig: {dbPath: /x}\npullConfig: {innerGroup: g, innerTopic: t}", "cproxyAddrs is required"},
		"no pproxy":        {"standAlone: true\npullOn: false\ndbConfig: {dbPath: /x}", "pproxyAddrs is required"},
		"no zk":            {"pullOn: false\nfakeSend: true\ndbConfig: {dbPath: /x}\nclusterName: c\ngroupName: g", "zkAddrs is required"},
		"no names":         {"pullOn: false\nfakeSend: true\ndbConfig: {dbPath: /x}\nzkConfig: {zkAddrs: a:1}", "clusterName and groupName"},
		"relative prefix":  {"pullOn: false\nfakeSend: true\ndbConfig: {dbPath: /x}\nclusterName: c\ngroupName: g\nzkConfig: {zkAddrs: a:1, masterPathPrefix: chronos}", "masterPathPrefix must be an absolute path"},
		"zero threads":     {"standAlone: true\nfakeSend: true\ndbConfig: {dbPath: /x}\npullConfig: {innerGroup: g, innerTopic: t, cproxyAddrs: a:1, threadNum: 0}", "threadNum must be > 0"},
		"negative hold":    {"standAlone: true\nfakeSend: true\npullOn: false\ndbConfig: {dbPath: /x}\npullConfig: {backupHoldMs: -1}", "backupHoldMs must be >= 0"},
		"bad yaml":         {"dbConfig: [", "invalid YAML"},
		"bad address type": {"pullConfig: {cproxyAddrs: {a: b}}", "want a list or a string"},
	} {
		_, err := ParseConfig([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", name, err, c.want)
		}
	}
	if _, err := ParseConfig([]byte("standAlone: true\nfakeSend: true\npullOn: false\ndbConfig: {dbPath: /x}")); err != nil {
		t.Fatalf("minimal standalone config: %v", err)
	}
}

func TestSplitConnect(t *testing.T) {
	servers, chroot := splitConnect("a:1, b:2/chronos/")
	if len(servers) != 2 || servers[1] != "b:2" || chroot != "/chronos" {
		t.Fatalf("%v %q", servers, chroot)
	}
	if _, chroot := splitConnect("a:1/"); chroot != "" {
		t.Fatalf("root chroot %q", chroot)
	}
}
