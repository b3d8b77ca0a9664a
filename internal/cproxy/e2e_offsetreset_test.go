package cproxy_test

import (
	"encoding/json"
	"fmt"
	"testing"

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

	var node map[string]any
	if err := json.Unmarshal(cproxyNode(s.kafka.Addrs(), []string{"cg_early"}), &node); err != nil {
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
		"/group/cg_early":     groupJSON("cg_early", "early", nil),
	})
	s.addr, s.stop = startInProc(t, s.zk, 9713)

	seen := pullAll(t, dial(t, s.addr), "cg_early", 12, false)
	for i := range 12 {
		if body := fmt.Sprintf("before-%d", i); seen[body] != 1 {
			t.Fatalf("%s delivered %d times, want 1 (seen %v)", body, seen[body], seen)
		}
	}
}
