package rocketmq

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	rmqconsumer "github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// TestAllocateMatchesClientLibrary checks the allocation against
// rocketmq-client-go's AllocateByAveragely (the port of Java's
// AllocateMessageQueueAveragely) on random groups: every member computes
// the library's answer, the members' shares are disjoint and cover every
// queue. The library gets its input sorted, as its rebalance does.
func TestAllocateMatchesClientLibrary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		nb, nq, nc := 1+rng.IntN(3), 1+rng.IntN(8), 1+rng.IntN(7)
		var all []mqueue
		for b := range nb {
			for q := range nq {
				all = append(all, mqueue{Topic: "t", Broker: fmt.Sprintf("broker-%c", 'a'+b), QueueID: int32(q)})
			}
		}
		var cids []string
		for c := range nc {
			cids = append(cids, fmt.Sprintf("10.0.0.%d@%d", 1+rng.IntN(3), c))
		}
		// Inputs in random order: the allocation must sort them itself.
		shuffled := slices.Clone(all)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		libQueues := make([]*primitive.MessageQueue, len(all))
		for i, q := range all {
			libQueues[i] = &primitive.MessageQueue{Topic: q.Topic, BrokerName: q.Broker, QueueId: int(q.QueueID)}
		}
		sortedCids := slices.Clone(cids)
		slices.Sort(sortedCids)
		owner := map[mqueue]string{}
		for _, me := range cids {
			got := allocateAveragely(me, cids, shuffled)
			want := rmqconsumer.AllocateByAveragely("g", me, libQueues, sortedCids)
			if len(got) != len(want) {
				t.Fatalf("round %d %s: got %v, library %d queues", round, me, got, len(want))
			}
			for i, q := range got {
				w := want[i]
				if q.Broker != w.BrokerName || int(q.QueueID) != w.QueueId {
					t.Fatalf("round %d %s: queue %d is %v, library %v", round, me, i, q, w)
				}
				if o, dup := owner[q]; dup {
					t.Fatalf("round %d: %v owned by %s and %s", round, q, o, me)
				}
				owner[q] = me
			}
		}
		if len(owner) != len(all) {
			t.Fatalf("round %d: %d of %d queues allocated", round, len(owner), len(all))
		}
	}
}

func TestAllocateEdgeCases(t *testing.T) {
	qs := []mqueue{{Topic: "t", Broker: "b", QueueID: 0}, {Topic: "t", Broker: "b", QueueID: 1}}
	for _, c := range []struct {
		name string
		me   string
		cids []string
		want int
	}{
		{"NotAMember", "x", []string{"a", "b"}, 0},
		{"NoMembers", "a", nil, 0},
		{"MoreMembersThanQueues", "c", []string{"a", "b", "c"}, 0},
		{"FirstOfThree", "a", []string{"c", "b", "a"}, 1},
		{"Alone", "a", []string{"a"}, 2},
		{"DuplicateIDs", "b", []string{"a", "b", "a"}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := allocateAveragely(c.me, c.cids, qs); len(got) != c.want {
				t.Fatalf("got %v, want %d queues", got, c.want)
			}
		})
	}
}

func TestQueuePartitionRoundTrip(t *testing.T) {
	seen := map[int32]bool{}
	for _, b := range []string{"broker-a", "broker-b", "broker-a", "x_y"} {
		for _, id := range []int32{0, 1, 7, maxQueueID} {
			p, ok := QueuePartition(b, id)
			if !ok || p < 0 {
				t.Fatalf("QueuePartition(%q, %d) = %d, %v", b, id, p, ok)
			}
			gb, gid, ok := PartitionQueue(p)
			if !ok || gb != b || gid != id {
				t.Fatalf("PartitionQueue(%d) = %q %d %v, want %q %d", p, gb, gid, ok, b, id)
			}
			if want := fmt.Sprintf("%s_%d", b, id); QueueName(p) != want {
				t.Fatalf("QueueName(%d) = %q, want %q", p, QueueName(p), want)
			}
			seen[p] = true
		}
	}
	if len(seen) != 12 {
		t.Fatalf("%d distinct partitions for 12 queues", len(seen))
	}
	for _, id := range []int32{-1, maxQueueID + 1} {
		if _, ok := QueuePartition("broker-a", id); ok {
			t.Fatalf("queue id %d accepted", id)
		}
	}
	if _, _, ok := PartitionQueue(1 << 30); ok {
		t.Fatal("unknown partition accepted")
	}
	if _, _, ok := PartitionQueue(-5); ok {
		t.Fatal("negative partition accepted")
	}
}
