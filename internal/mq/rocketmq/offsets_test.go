package rocketmq

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/internal/mq"
)

// TestOffsetReader covers queue counts, max/min offsets, a group's stored
// offsets (none, then committed without membership) and direct fetches.
func TestOffsetReader(t *testing.T) {
	leakCheck(t)
	s := startTestBroker(t)
	s.CreateTopic("stats", 2)
	sendMsgs(t, s, "stats",
		testMsg{broker: "broker-a", queue: 0, tags: "x", keys: "k0", body: "a0"},
		testMsg{broker: "broker-a", queue: 0, body: "a1"},
		testMsg{broker: "broker-a", queue: 0, body: "a2"},
		testMsg{broker: "broker-b", queue: 1, body: "b0"})
	r := newReader(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pa0, _ := QueuePartition("broker-a", 0)
	pb1, _ := QueuePartition("broker-b", 1)

	if n, err := r.Partitions(ctx, "stats"); err != nil || n != 4 {
		t.Fatalf("Partitions %d %v", n, err)
	}
	if _, err := r.Partitions(ctx, "nope"); !errors.Is(err, mq.ErrTopicNotExist) {
		t.Fatalf("unknown topic: %v", err)
	}
	hw, err := r.HighWatermarks(ctx, "stats")
	if err != nil || len(hw) != 4 || hw[pa0] != 3 || hw[pb1] != 1 {
		t.Fatalf("HighWatermarks %v %v", hw, err)
	}
	lw, err := r.LowWatermarks(ctx, "stats")
	if err != nil || len(lw) != 4 || lw[pa0] != 0 {
		t.Fatalf("LowWatermarks %v %v", lw, err)
	}
	if c, err := r.Committed(ctx, "cgx", "stats"); err != nil || len(c) != 0 {
		t.Fatalf("Committed of a new group %v %v", c, err)
	}
	if err := r.Commit(ctx, "cgx", "stats", map[int32]mq.CommittedOffset{pa0: {Offset: 2, Metadata: "dropped"}, pb1: {Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	c, err := r.Committed(ctx, "cgx", "stats")
	if err != nil || len(c) != 2 || c[pa0] != (mq.CommittedOffset{Offset: 2}) || c[pb1].Offset != 1 {
		t.Fatalf("Committed %v %v", c, err)
	}
	if err := r.Commit(ctx, "cgx", "stats", map[int32]mq.CommittedOffset{1 << 29: {Offset: 1}}); err == nil {
		t.Fatal("commit to an unknown partition accepted")
	}

	msgs, next, err := r.Fetch(ctx, "stats", pa0, 0, 2, 0)
	if err != nil || len(msgs) != 2 || next != 2 || string(msgs[0].Body) != "a0" || msgs[0].Key != "k0" ||
		msgs[0].Tags != "x" || msgs[1].Offset != 1 || msgs[0].Partition != pa0 {
		t.Fatalf("Fetch %v next %d err %v", msgs, next, err)
	}
	msgs, next, err = r.Fetch(ctx, "stats", pa0, 2, 10, 0)
	if err != nil || len(msgs) != 1 || next != 3 {
		t.Fatalf("Fetch from 2: %d msgs next %d err %v", len(msgs), next, err)
	}
	// As a group, with a tag filter: only a0 is tagged x.
	msgs, next, err = r.FetchAs(ctx, "cgx", "x", "stats", pa0, 0, 10, 0)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "a0" || next != 3 {
		t.Fatalf("FetchAs with tags: %d msgs next %d err %v", len(msgs), next, err)
	}
	start := time.Now()
	msgs, next, err = r.Fetch(ctx, "stats", pa0, 3, 10, 100*time.Millisecond)
	if err != nil || len(msgs) != 0 || next != 3 {
		t.Fatalf("Fetch at the end: %d msgs next %d err %v", len(msgs), next, err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("Fetch at the end held %v", time.Since(start))
	}
	// Beyond the end: the broker's correction (RocketMQ: the min offset
	// when it is 0).
	msgs, next, err = r.Fetch(ctx, "stats", pa0, 50, 10, 0)
	if err != nil || len(msgs) != 0 || next != 0 {
		t.Fatalf("Fetch beyond the end: %d msgs next %d err %v", len(msgs), next, err)
	}
	if _, _, err := r.Fetch(ctx, "stats", 1<<29, 0, 1, 0); err == nil {
		t.Fatal("fetch of an unknown partition accepted")
	}
}
