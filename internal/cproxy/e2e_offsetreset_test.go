package cproxy_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/testenv"
)

// TestE2EAutoOffsetResetEarliest: with extra["auto.offset.reset"] =
// "earliest" on the Kafka cluster, a group that never committed starts at
// the oldest offset, so messages produced before its first pull are
// delivered (the delay service's inner group relies on it). The default
// (latest) is covered by TestE2EPullSubmitAndStats.
func TestE2EAutoOffsetResetEarliest(t *testing.T) {
	s := &stack{zk: testenv.StartZooKeeper(t), kafka: startKafka(t)}
	s.kafka.CreateTopic("early", 4)
	produce(t, s.kafka, "early", 12, "before")

	startEarliest(t, s, "cg_early", groupJSON("cg_early", "early", nil))

	seen := pullAll(t, dial(t, s.addr), "cg_early", 12, false)
	for i := range 12 {
		if body := fmt.Sprintf("before-%d", i); seen[body] != 1 {
			t.Fatalf("%s delivered %d times, want 1 (seen %v)", body, seen[body], seen)
		}
	}
}

// TestE2EFetchThreadsRunsMembers: a Kafka unit with fetchThreads 2 joins
// the broker group as two members of this instance, which split the
// partitions between them; every message is delivered once and every
// partition's offset committed to its high watermark.
func TestE2EFetchThreadsRunsMembers(t *testing.T) {
	const group, topic, n = "cg_members", "spread", 80
	s := &stack{zk: testenv.StartZooKeeper(t), kafka: startKafka(t)}
	s.kafka.CreateTopic(topic, 4)
	produce(t, s.kafka, topic, n, "m")

	startEarliest(t, s, group, groupJSON(group, topic, map[string]any{"fetchThreads": 2}))
	c := dial(t, s.addr)

	seen := pullAll(t, c, group, n, false)
	for i := range n {
		if body := fmt.Sprintf("m-%d", i); seen[body] != 1 {
			t.Fatalf("%s delivered %d times, want 1", body, seen[body])
		}
	}
	if state, members := groupMembers(t, s.kafka, group); members != 2 {
		t.Fatalf("broker group %s: state %q with %d members, want 2 (fetchThreads 2)", group, state, members)
	}
	testenv.Eventually(t, 10*time.Second, "committed offsets reach the high watermarks", func() bool {
		ok, _ := statsCaughtUp(c, group, topic, 4)
		return ok
	})
}

// startEarliest seeds the /cproxy node, with auto.offset.reset=earliest on
// the Kafka cluster, and group's node, then starts an in-process cproxy
// into s.
func startEarliest(t *testing.T, s *stack, group string, groupNode []byte) {
	t.Helper()
	var node map[string]any
	if err := json.Unmarshal(cproxyNode(s.kafka.Addrs(), []string{group}), &node); err != nil {
		t.Fatal(err)
	}
	kc := node["kafkaConfigs"].(map[string]any)["K_e2e"].(map[string]any)
	kc["extra"].(map[string]any)["auto.offset.reset"] = "earliest"
	b, err := json.Marshal(node)
	if err != nil {
		t.Fatal(err)
	}
	testenv.SeedZK(t, s.zk.Addr, chroot, map[string][]byte{
		"/cproxy/" + instance: b,
		"/group/" + group:     groupNode,
	})
	s.addr, s.stop = startInProc(t, s.zk, 9713)
}
