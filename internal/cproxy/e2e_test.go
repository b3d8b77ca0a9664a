package cproxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
)

// pullUntil pulls (acking every batch with the next pull, as the SDKs do)
// until n distinct bodies were seen or the deadline passes.
func pullAll(t *testing.T, c *consumer.ConsumerServiceClient, group string, n int, nackFirst bool) map[string]int {
	t.Helper()
	seen := map[string]int{}
	var ack *consumer.ConsumeResult_
	deadline := time.Now().Add(30 * time.Second)
	nacked := map[string]bool{}
	for len(seen) < n {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d", len(seen), n)
		}
		bs, ml := int32(8), int32(200)
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			t.Fatal(err)
		}
		ack = nil
		if len(resp.Messages) == 0 {
			continue
		}
		if len(resp.Messages) > 8 {
			t.Fatalf("batch of %d > maxBatchSize 8", len(resp.Messages))
		}
		ack = &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			body := string(m.Value)
			if m.Properties["traceId"] != "x" {
				t.Fatalf("properties lost: %v", m.Properties)
			}
			if nackFirst && !nacked[body] {
				nacked[body] = true
				ack.FailOffsets = append(ack.FailOffsets, m.Offset)
				continue
			}
			seen[body]++
			ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
		}
	}
	if ack != nil {
		if ok, err := c.Submit(context.Background(), ack); !ok || err != nil {
			t.Fatalf("submit %v %v", ok, err)
		}
	}
	return seen
}

func TestE2EPullSubmitAndStats(t *testing.T) {
	s := startStack(t, map[string][]byte{"cg_pull": groupJSON("cg_pull", "orders", nil)})
	s.kafka.CreateTopic("orders", 4)
	c := dial(t, s.addr)
	// The group starts on the first pull and consumes from the newest offset.
	bs, ml := int32(8), int32(50)
	if resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_pull", MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil || len(resp.Messages) != 0 {
		t.Fatalf("first pull: %v %v", resp, err)
	}
	produce(t, s.kafka, "orders", 40, "a")
	seen := pullAll(t, c, "cg_pull", 40, true)
	for body, n := range seen {
		if n != 1 {
			t.Fatalf("%s delivered %d times after success", body, n)
		}
	}
	// getConsumeStats: committed offsets reach the high watermarks.
	topic := "orders"
	deadline := time.Now().Add(10 * time.Second)
	for {
		stats, err := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: "cg_pull", Topic: &topic})
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) == 1 && len(stats[0].ProduceOffsets) == 4 {
			done := true
			for q, hw := range stats[0].ProduceOffsets {
				if !strings.HasPrefix(q, "K_e2e_") || stats[0].ConsumeOffsets[q] != hw {
					done = false
				}
			}
			if done {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never caught up: %+v", stats)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Unknown group and unknown topic: empty list.
	if st, _ := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: "nope"}); len(st) != 0 {
		t.Fatalf("unknown group stats %v", st)
	}
	other := "other"
	if st, _ := c.GetConsumeStats(context.Background(), &consumer.ConsumeStatsRequest{Group: "cg_pull", Topic: &other}); len(st) != 0 {
		t.Fatalf("unknown topic stats %v", st)
	}
}

// TestE2ERestartDoesNotRedeliverAcked: after a clean stop the new instance
// delivers neither acknowledged messages below the committed offset nor
// acknowledged ones above an unacknowledged message (commit metadata).
func TestE2ERestartDoesNotRedeliverAcked(t *testing.T) {
	groups := map[string][]byte{"cg_r": groupJSON("cg_r", "events", nil)}
	s := startStack(t, groups)
	s.kafka.CreateTopic("events", 4)
	c := dial(t, s.addr)
	bs, ml := int32(8), int32(50)
	if _, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_r", MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil {
		t.Fatal(err)
	}
	produce(t, s.kafka, "events", 20, "b")
	first := pullAll(t, c, "cg_r", 20, false)
	if len(first) != 20 {
		t.Fatalf("first run got %d", len(first))
	}
	// Ten messages on partition 1: acknowledge all but g-3, which stays
	// unacknowledged (in flight, redelivered on timeout, never acked).
	specs := make([]kmsgSpec, 10)
	for i := range specs {
		specs[i] = kmsgSpec{partition: 1, key: fmt.Sprint("g", i), body: fmt.Sprint("g-", i)}
	}
	produceSpecs(t, s.kafka, "events", specs)
	acked := map[string]bool{}
	sawGap := false
	var ack *consumer.ConsumeResult_
	deadline := time.Now().Add(20 * time.Second)
	for len(acked) < 9 || !sawGap {
		if time.Now().After(deadline) {
			t.Fatalf("acked %d of 9, saw g-3 %v", len(acked), sawGap)
		}
		resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_r", MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			t.Fatal(err)
		}
		ack = nil
		if len(resp.Messages) == 0 {
			continue
		}
		ack = &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			body := string(m.Value)
			if body == "g-3" {
				sawGap = true
				continue
			}
			if !strings.HasPrefix(body, "g-") {
				t.Fatalf("unexpected %s", body)
			}
			acked[body] = true
			ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
		}
	}
	if ok, err := c.Submit(context.Background(), ack); !ok || err != nil {
		t.Fatalf("submit %v %v", ok, err)
	}
	s.stop() // clean shutdown commits what is committable (offset of g-3 plus the finished offsets above it)
	s2 := startStack2(t, s)
	c2 := dial(t, s2)
	produce(t, s.kafka, "events", 8, "c")
	second := pullAll(t, c2, "cg_r", 9, false)
	for body := range second {
		if body != "g-3" && !strings.HasPrefix(body, "c-") {
			t.Fatalf("acknowledged message %s redelivered after a clean restart (got %v)", body, second)
		}
	}
	if second["g-3"] == 0 {
		t.Fatalf("unacknowledged g-3 not redelivered: %v", second)
	}
	// Nothing else trails behind.
	ml = 300
	resp, err := c2.Pull(context.Background(), &consumer.PullRequest{GroupId: "cg_r", MaxBatchSize: &bs, MaxLingerTime: &ml})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range resp.Messages {
		t.Fatalf("unexpected delivery %s after the restart", m.Value)
	}
}
