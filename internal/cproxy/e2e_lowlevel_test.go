package cproxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// TestE2ELowLevelFetchAck: a LowLevel group fetches from the latest offset,
// then at the returned offsets, acks, and getConsumeStats shows the acks.
func TestE2ELowLevelFetchAck(t *testing.T) {
	const group, topic, n = "cg_low", "lowt", 10
	s := startStack(t, map[string][]byte{group: groupJSON(group, topic,
		map[string]any{"actions": []string{"LowLevel", "PullServer"}, "maxPullBatchSize": 4})})
	s.kafka.CreateTopic(topic, 2)
	c := dial(t, s.addr)
	ctx := context.Background()
	fetch := func(offsets map[string]map[string]int64) map[string]*consumer.QidResponse {
		t.Helper()
		bs, ml := int32(100), int32(50)
		resp, err := c.Fetch(ctx, &consumer.FetchRequest{ConsumerId: "1@host#0", GroupId: group, Cluster: "K_e2e",
			FetchOffset: offsets, MaxBatchSize: &bs, MaxLingerTime: &ml})
		if err != nil {
			t.Fatal(err)
		}
		if resp.IsSetCode() {
			t.Fatalf("code set: %+v", resp)
		}
		out := map[string]*consumer.QidResponse{}
		for _, q := range resp.Results {
			if q.Topic != topic || !q.IsSetNextRequestOffset() {
				t.Fatalf("bad qid response %+v", q)
			}
			out[q.Qid] = q
		}
		return out
	}
	// The fetcher joins the group; the first answer with both qids is at
	// the latest offsets.
	var got map[string]*consumer.QidResponse
	testenv.Eventually(t, 15*time.Second, "both qids assigned", func() bool { got = fetch(nil); return len(got) == 2 })
	next := map[string]int64{}
	for q, r := range got {
		if len(r.Messages) != 0 || r.GetNextRequestOffset() != 0 {
			t.Fatalf("%s: first fetch %+v", q, r)
		}
		next[q] = 0
	}
	specs := make([]kmsgSpec, n)
	for i := range n {
		specs[i] = kmsgSpec{partition: int32(i % 2), key: fmt.Sprint("k", i), body: fmt.Sprint("m-", i)}
	}
	produceSpecs(t, s.kafka, topic, specs)
	seen := map[string]bool{}
	testenv.Eventually(t, 10*time.Second, "all messages fetched", func() bool {
		for q, r := range fetch(map[string]map[string]int64{topic: next}) {
			if len(r.Messages) > 4 {
				t.Fatalf("batch of %d > maxPullBatchSize", len(r.Messages))
			}
			for i, m := range r.Messages {
				if m.Offset != next[q]+int64(i) || m.Properties["traceId"] != "x" {
					t.Fatalf("%s: message %+v at %d", q, m, next[q])
				}
				seen[string(m.Value)] = true
			}
			next[q] = r.GetNextRequestOffset()
		}
		return len(seen) == n
	})
	if next["K_e2e_0"] != n/2 || next["K_e2e_1"] != n/2 {
		t.Fatalf("next offsets %v", next)
	}
	// Ack (next offset to read) and see it in getConsumeStats.
	acked := map[string]int64{"K_e2e_0": n / 2, "K_e2e_1": n/2 - 1}
	if ok, err := c.Ack(ctx, &consumer.AckResult_{ConsumerId: "1@host#0", GroupId: group, Cluster: "K_e2e",
		Offsets: map[string]map[string]int64{topic: acked}}); !ok || err != nil {
		t.Fatalf("ack: %v %v", ok, err)
	}
	tp := topic
	testenv.Eventually(t, 10*time.Second, "committed offsets", func() bool {
		st, err := c.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: group, Topic: &tp})
		return err == nil && len(st) == 1 && st[0].ConsumeOffsets["K_e2e_0"] == acked["K_e2e_0"] &&
			st[0].ConsumeOffsets["K_e2e_1"] == acked["K_e2e_1"] && st[0].ProduceOffsets["K_e2e_0"] == n/2
	})
	if ok, err := c.Ack(ctx, &consumer.AckResult_{ConsumerId: "nobody", GroupId: group, Cluster: "K_e2e",
		Offsets: map[string]map[string]int64{topic: {"K_e2e_0": 1}}}); ok || err != nil {
		t.Fatalf("ack of an unknown consumer: %v %v", ok, err)
	}
	// A bogus offset far beyond the end is corrected to the log end.
	got = fetch(map[string]map[string]int64{topic: {"K_e2e_0": 1 << 40, "K_e2e_1": n / 2}})
	if r := got["K_e2e_0"]; r == nil || len(r.Messages) != 0 || r.GetNextRequestOffset() != n/2 {
		t.Fatalf("bogus offset: %+v", r)
	}
	// A pull for the low-level group answers empty.
	bs, ml := int32(8), int32(20)
	if resp, err := c.Pull(ctx, &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml}); err != nil || len(resp.Messages) != 0 {
		t.Fatalf("pull of a low-level group: %+v %v", resp, err)
	}
}
