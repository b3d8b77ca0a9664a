package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/config"
)

// result is one carreractl run.
type result struct {
	code           int
	stdout, stderr string
}

// runCLI runs carreractl with st as its ZooKeeper; st == nil fails the test
// if the command tries to connect.
func runCLI(t *testing.T, st store, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	open := func(string, time.Duration) (store, error) {
		if st == nil {
			t.Fatalf("carreractl %v connected to ZooKeeper", args)
		}
		return st, nil
	}
	code := run(context.Background(), args, &out, &errOut, open)
	return result{code: code, stdout: out.String(), stderr: errOut.String()}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		wantStderr string
	}{
		{"no command", nil, 2, "no command given"},
		{"unknown command", []string{"frob"}, 2, `unknown command "frob"`},
		{"group without verb", []string{"topic"}, 2, "topic: no sub-command given"},
		{"unknown verb", []string{"topic", "frob"}, 2, `unknown command "topic frob"`},
		{"help", []string{"-h"}, 0, "bind -topic T"},
		{"bad global flag", []string{"-nope", "get", "/"}, 2, "flag provided but not defined: -nope"},
		{"command help", []string{"bind", "-h"}, 0, "-proxy-cluster"},
		{"bind without flags", []string{"bind"}, 2, "flag -topic is required"},
		{"bind without cluster", []string{"bind", "-topic", "t", "-instance", "1.2.3.4:9613"}, 2, "flag -cluster is required"},
		{"bind bad instance", []string{"bind", "-topic", "t", "-cluster", "c", "-instance", "1.2.3.4"}, 2, `bad instance "1.2.3.4"`},
		{"bind bad port", []string{"bind", "-topic", "t", "-cluster", "c", "-instance", "h:0"}, 2, "bad port"},
		{"bind bad topic", []string{"bind", "-topic", "a/b", "-cluster", "c", "-instance", "h:1"}, 2, `bad topic "a/b"`},
		{"bind negative maxtps", []string{"bind", "-topic", "t", "-cluster", "c", "-instance", "h:1", "-maxtps", "-1"}, 2, "-maxtps must be >= 0"},
		{"bind positional", []string{"bind", "-topic", "t", "-cluster", "c", "-instance", "h:1", "extra"}, 2, "want 0 argument(s), got 1"},
		{"unbind unknown flag", []string{"unbind", "-cluster", "c"}, 2, "flag provided but not defined: -cluster"},
		{"put-node one arg", []string{"put-node", "/topic/t"}, 2, "want 2 argument(s), got 1"},
		{"put-node relative path", []string{"put-node", "topic/t", "f.json"}, 2, "bad node path"},
		{"get trailing slash", []string{"get", "/topic/"}, 2, "bad node path"},
		{"topic put no file", []string{"topic", "put"}, 2, "want 1 argument(s), got 0"},
		{"send without topic", []string{"send"}, 2, "flag -topic is required"},
		{"send n zero", []string{"send", "-topic", "t", "-n", "0"}, 2, "-n must be >= 1"},
		{"kafka-tail bad from", []string{"kafka-tail", "-topic", "t", "-from", "middle"}, 2, "-from must be oldest or newest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Fatalf("code %d (want %d), stderr:\n%s\nwant it to contain %q", r.code, tc.code, r.stderr, tc.wantStderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, nil, "version")
	if r.code != 0 || r.stdout != version+"\n" {
		t.Fatalf("%+v", r)
	}
}

const (
	testTopic = `{"topic":"clicks","topicUnits":[{"brokerCluster":"K_main","proxies":{"P_ddmq":["10.0.0.11:9613"]},"totalMaxTps":5000,"maxTps":5000}],"strongOrder":true,"limiterFailureRetryInterval":0}`
	testPP    = `{"instance":"10.0.0.12:9613","proxyCluster":"P_ddmq","brokerClusters":["K_main"],"topics":[],"carreraConfiguration":{"retryDelays":[200],"useKafka":true,"kafkaProducers":1,"thriftServer":{"selectorThreads":1,"workerThreads":0,"acceptQueueSizePerThread":100,"maxReadBufferBytes":5000000,"backlog":50,"clientTimeout":0,"workerQueueSize":100,"timeoutCheckerThreads":1,"port":9613},"kafkaConfigurationMap":{"K_main":{"bootstrapServers":["127.0.0.1:19092"],"acks":"all","retries":0,"batchSize":16384,"clientId":"pproxy","retryBackoff":100,"metadataMaxAge":300000,"metadataFetchTimeout":5000,"ackTimeout":3000,"bufferMemory":33554432}},"maxTps":30000,"tpsWarningRatio":0.8,"vendorKey":{"keep":"me"}}}`
)

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRun(t *testing.T, st store, args ...string) result {
	t.Helper()
	r := runCLI(t, st, args...)
	if r.code != 0 {
		t.Fatalf("carreractl %v: code %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

func TestPutNodeCreatesParents(t *testing.T) {
	st := newFakeStore()
	r := mustRun(t, st, "put-node", "/topic/clicks", writeFile(t, "t.json", testTopic+"\n"))
	if r.stdout != "/topic/clicks: created\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	if got := st.data("/topic"); got != "default" {
		t.Fatalf("/topic = %q, want the console's parent data", got)
	}
	if got := st.data("/topic/clicks"); got != testTopic {
		t.Fatalf("/topic/clicks = %s", got)
	}
	pretty := strings.ReplaceAll(strings.ReplaceAll(testTopic, ",", ",\n  "), `":`, `": `)
	r = mustRun(t, st, "put-node", "/topic/clicks", writeFile(t, "t.json", pretty))
	if got := st.data("/topic/clicks"); got != testTopic {
		t.Fatalf("JSON must be stored compactly: %s", got)
	}
	if r.stdout != "/topic/clicks: written\n" {
		t.Fatalf("stdout %q", r.stdout)
	}
	r = mustRun(t, st, "get", "/topic/clicks")
	if r.stdout != testTopic+"\n" {
		t.Fatalf("get: %q", r.stdout)
	}
	r = mustRun(t, st, "ls", "/")
	if r.stdout != "/topic\n" {
		t.Fatalf("ls: %q", r.stdout)
	}
}

func TestPutNodeValidates(t *testing.T) {
	st := newFakeStore()
	tests := []struct {
		name, path, data, wantErr string
	}{
		{"name mismatch", "/topic/other", testTopic, `differs from the node name "other"`},
		{"invalid topic", "/topic/clicks", `{"topic":"clicks","topicUnits":[]}`, "invalid TopicConfig"},
		{"not JSON", "/topic/clicks", `default`, "invalid TopicConfig"},
		{"pproxy name mismatch", "/pproxy/10.0.0.13:9613", testPP, `differs from the node name`},
		{"group not an object", "/group/g", `[]`, "not an object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runCLI(t, st, "put-node", tc.path, writeFile(t, "n.json", tc.data))
			if r.code != 1 || !strings.Contains(r.stderr, tc.wantErr) {
				t.Fatalf("code %d, stderr %q, want %q", r.code, r.stderr, tc.wantErr)
			}
			if _, _, err := st.Get(tc.path); err == nil {
				t.Fatal("invalid node was written")
			}
		})
	}
	// -force writes anyway; nodes outside the known directories are not checked.
	mustRun(t, st, "put-node", "-force", "/topic/clicks", writeFile(t, "n.json", `{}`))
	mustRun(t, st, "put-node", "/monitor/host", writeFile(t, "n.json", `anything`))
}

func TestNamedPut(t *testing.T) {
	st := newFakeStore()
	mustRun(t, st, "topic", "put", writeFile(t, "t.json", testTopic))
	mustRun(t, st, "pproxy", "put", writeFile(t, "p.json", testPP))
	if st.data("/topic/clicks") != testTopic || st.data("/pproxy/10.0.0.12:9613") != testPP {
		t.Fatal("nodes not written")
	}
	r := runCLI(t, st, "topic", "put", writeFile(t, "t.json", `{"topicUnits":[]}`))
	if r.code != 1 || !strings.Contains(r.stderr, `bad topic ""`) {
		t.Fatalf("%+v", r)
	}
}

func TestBindUnbind(t *testing.T) {
	st := newFakeStore()
	mustRun(t, st, "topic", "put", writeFile(t, "t.json", testTopic))
	mustRun(t, st, "pproxy", "put", writeFile(t, "p.json", testPP))

	r := mustRun(t, st, "bind", "-topic", "clicks", "-cluster", "K_main", "-instance", "10.0.0.12:9613")
	if r.stdout != "/topic/clicks: updated\n/pproxy/10.0.0.12:9613: updated\n" || r.stderr != "" {
		t.Fatalf("%+v", r)
	}
	wantTopic := strings.Replace(testTopic, `["10.0.0.11:9613"]`, `["10.0.0.11:9613","10.0.0.12:9613"]`, 1)
	wantPP := strings.Replace(testPP, `"topics":[]`, `"topics":["clicks"]`, 1)
	if got := st.data("/topic/clicks"); got != wantTopic {
		t.Fatalf("topic:\n got %s\nwant %s", got, wantTopic)
	}
	if got := st.data("/pproxy/10.0.0.12:9613"); got != wantPP {
		t.Fatalf("pproxy:\n got %s\nwant %s", got, wantPP)
	}

	r = mustRun(t, st, "bind", "-topic", "clicks", "-cluster", "K_main", "-instance", "10.0.0.12:9613")
	if r.stdout != "/topic/clicks: unchanged\n/pproxy/10.0.0.12:9613: unchanged\n" {
		t.Fatalf("second bind: %+v", r)
	}

	r = mustRun(t, st, "unbind", "-topic", "clicks", "-instance", "10.0.0.12:9613")
	if r.stdout != "/pproxy/10.0.0.12:9613: updated\n/topic/clicks: updated\n" {
		t.Fatalf("unbind: %+v", r)
	}
	if st.data("/topic/clicks") != testTopic || st.data("/pproxy/10.0.0.12:9613") != testPP {
		t.Fatalf("unbind did not restore the nodes:\n%s\n%s", st.data("/topic/clicks"), st.data("/pproxy/10.0.0.12:9613"))
	}
	r = mustRun(t, st, "unbind", "-topic", "nosuch", "-instance", "10.0.0.99:9613")
	if !strings.Contains(r.stdout, "/pproxy/10.0.0.99:9613: does not exist") {
		t.Fatalf("%+v", r)
	}
}

func TestBindErrors(t *testing.T) {
	st := newFakeStore()
	r := runCLI(t, st, "bind", "-topic", "clicks", "-cluster", "K_main", "-instance", "10.0.0.12:9613")
	if r.code != 1 || !strings.Contains(r.stderr, "/pproxy/10.0.0.12:9613 does not exist") {
		t.Fatalf("%+v", r)
	}
	mustRun(t, st, "pproxy", "put", writeFile(t, "p.json", testPP))
	r = runCLI(t, st, "bind", "-topic", "clicks", "-cluster", "K_main", "-instance", "10.0.0.12:9613")
	if r.code != 1 || !strings.Contains(r.stderr, "/topic/clicks does not exist") {
		t.Fatalf("%+v", r)
	}
	mustRun(t, st, "topic", "put", writeFile(t, "t.json", testTopic))
	r = runCLI(t, st, "bind", "-topic", "clicks", "-cluster", "R_other", "-instance", "10.0.0.12:9613", "-proxy-cluster", "P_x")
	if r.code != 0 || !strings.Contains(r.stderr, `no producer configuration for cluster "R_other"`) {
		t.Fatalf("%+v", r)
	}
	if !strings.Contains(st.data("/topic/clicks"), `{"brokerCluster":"R_other","proxies":{"P_x":["10.0.0.12:9613"]}}`) {
		t.Fatalf("unit not created: %s", st.data("/topic/clicks"))
	}
}

// A concurrent writer changes the node between carreractl's read and write:
// the write must be retried on the new version and keep both changes.
func TestBindRetriesOnVersionConflict(t *testing.T) {
	st := newFakeStore()
	mustRun(t, st, "topic", "put", writeFile(t, "t.json", testTopic))
	mustRun(t, st, "pproxy", "put", writeFile(t, "p.json", testPP))
	conflicts := 0
	st.beforeSet = func(p string) {
		if p != "/topic/clicks" || conflicts == 2 {
			return
		}
		conflicts++
		st.mu.Lock() // the concurrent writer
		n := st.nodes[p]
		n.data = []byte(strings.Replace(string(n.data), `"strongOrder":true`, `"strongOrder":false`, 1))
		n.version++
		st.mu.Unlock()
	}
	mustRun(t, st, "bind", "-topic", "clicks", "-cluster", "K_main", "-instance", "10.0.0.12:9613")
	got := st.data("/topic/clicks")
	if conflicts != 2 || !strings.Contains(got, `"strongOrder":false`) || !strings.Contains(got, `"10.0.0.12:9613"`) {
		t.Fatalf("conflicts=%d node=%s", conflicts, got)
	}
}

func TestUpdateNodeGivesUp(t *testing.T) {
	st := newFakeStore()
	if err := st.Create("/n", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	st.beforeSet = func(p string) {
		// Bump the version behind carreractl's back every time.
		st.mu.Lock()
		st.nodes[p].version++
		st.mu.Unlock()
	}
	_, err := updateNode(st, "/n", func(d []byte) ([]byte, bool, error) { return []byte(`{"a":1}`), true, nil })
	if err == nil || !strings.Contains(err.Error(), "version conflicts") {
		t.Fatalf("err = %v", err)
	}
}

// The demo's nodes must stay valid for the proxies' parsers.
func TestDemoNodesValid(t *testing.T) {
	for file, node := range map[string]string{
		"pproxy.json":            "/pproxy/127.0.0.1:9613",
		"topic-demo_orders.json": "/topic/demo_orders",
	} {
		data, err := os.ReadFile(filepath.Join("..", "..", "conf", "demo", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := validateNode(node, data); err != nil {
			t.Errorf("conf/demo/%s: %v", file, err)
		}
	}
}

func TestParseObjectKeepsBytes(t *testing.T) {
	in := `{"b":1.50,"a":{"z":[1, 2]},"B":"x&y","n":null}`
	o, err := parseObject([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := o.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"b":1.50,"a":{"z":[1,2]},"B":"x&y","n":null}`; string(out) != want {
		t.Fatalf("got %s want %s", out, want)
	}
	if _, ok := o.raw("n"); ok {
		t.Fatal("null must read as absent")
	}
	if raw, _ := o.raw("B"); string(raw) != `"x&y"` {
		t.Fatalf("exact key must win over a case-insensitive one: %s", raw)
	}
}

// The shipped bootstrap files must load (conf/ is copied into every build).
func TestShippedBootstrapFilesLoad(t *testing.T) {
	for file, port := range map[string]int{"carrera.yaml": 9613, "cproxy.yaml": 9713} {
		b, err := config.LoadBootstrap(filepath.Join("..", "..", "conf", file))
		if err != nil {
			t.Errorf("conf/%s: %v", file, err)
			continue
		}
		if b.Port != port || b.AdminAddr != fmt.Sprintf("127.0.0.1:%d", port+10000) {
			t.Errorf("conf/%s: port %d adminAddr %s", file, b.Port, b.AdminAddr)
		}
	}
}
