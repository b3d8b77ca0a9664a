package rocketmq

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

func TestProducerParseRoute(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		want    []Queue
		brokers map[string]string
	}{
		{
			name: "quoted ids, sorted although listed b then a",
			body: `{"queueDatas":[{"brokerName":"broker-b","readQueueNums":2,"writeQueueNums":2,"perm":6,"topicSynFlag":0},
				{"brokerName":"broker-a","readQueueNums":3,"writeQueueNums":3,"perm":6,"topicSynFlag":0}],
				"brokerDatas":[{"cluster":"c","brokerName":"broker-b","brokerAddrs":{"0":"127.0.0.1:2"}},
				{"cluster":"c","brokerName":"broker-a","brokerAddrs":{"0":"127.0.0.1:1"}}]}`,
			want:    []Queue{{"broker-a", 0}, {"broker-a", 1}, {"broker-a", 2}, {"broker-b", 0}, {"broker-b", 1}},
			brokers: map[string]string{"broker-a": "127.0.0.1:1", "broker-b": "127.0.0.1:2"},
		},
		{
			name: "Java NameServer: bare integer keys, slave ignored",
			body: `{"orderTopicConf":null,"queueDatas":[{"brokerName":"b1","perm":6,"readQueueNums":2,"topicSynFlag":0,"writeQueueNums":2}],
				"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"b1","cluster":"DefaultCluster"}],
				"filterServerTable":{}}`,
			want:    []Queue{{"b1", 0}, {"b1", 1}},
			brokers: map[string]string{"b1": "10.0.0.1:10911"},
		},
		{
			name: "read-only queue data and broker without master skipped; write count, not read count",
			body: `{"queueDatas":[{"brokerName":"ro","readQueueNums":4,"writeQueueNums":4,"perm":4},
				{"brokerName":"noMaster","readQueueNums":4,"writeQueueNums":4,"perm":6},
				{"brokerName":"rw","readQueueNums":8,"writeQueueNums":2,"perm":2}],
				"brokerDatas":[{"brokerName":"ro","brokerAddrs":{"0":"h:1"}},{"brokerName":"noMaster","brokerAddrs":{"1":"h:2"}},
				{"brokerName":"rw","brokerAddrs":{"0":"h:3"}}]}`,
			want:    []Queue{{"rw", 0}, {"rw", 1}},
			brokers: map[string]string{"ro": "h:1", "rw": "h:3"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRoute([]byte(c.body))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.Queues, c.want) {
				t.Errorf("queues %v, want %v", r.Queues, c.want)
			}
			if len(r.Brokers) != len(c.brokers) {
				t.Errorf("brokers %v, want %v", r.Brokers, c.brokers)
			}
			for k, v := range c.brokers {
				if r.Brokers[k] != v {
					t.Errorf("broker %s at %q, want %q", k, r.Brokers[k], v)
				}
			}
		})
	}
	if _, err := ParseRoute([]byte(`{"queueDatas":[`)); err == nil {
		t.Error("truncated route parsed without error")
	}
}

func FuzzProducerParseRoute(f *testing.F) {
	f.Add([]byte(`{"queueDatas":[{"brokerName":"a","writeQueueNums":3,"perm":6}],"brokerDatas":[{"brokerName":"a","brokerAddrs":{0:"h:1"}}]}`))
	f.Add([]byte(`{"queueDatas":[{"brokerName":"a","writeQueueNums":-3,"perm":6}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRoute(b)
		if err != nil {
			return
		}
		if !slices.IsSortedFunc(r.Queues, func(a, b Queue) int {
			if a.Broker != b.Broker {
				if a.Broker < b.Broker {
					return -1
				}
				return 1
			}
			return a.ID - b.ID
		}) {
			t.Fatalf("queues not sorted: %v", r.Queues)
		}
	})
}

func testRoute() *Route {
	return &Route{
		Queues:  []Queue{{"a", 0}, {"a", 1}, {"a", 2}, {"b", 0}, {"b", 1}},
		Brokers: map[string]string{"a": "h:1", "b": "h:2"},
	}
}

func TestPickQueue(t *testing.T) {
	r := testRoute()
	n := len(r.Queues)
	for _, c := range []struct {
		sel     mq.Selector
		want    int
		wrapped bool
	}{
		{mq.Selector{PartitionID: 0}, 0, false},
		{mq.Selector{PartitionID: 4, HashID: 2}, 4, false},
		{mq.Selector{PartitionID: 5}, 0, true},
		{mq.Selector{PartitionID: 7}, 2, true},
		{mq.Selector{PartitionID: math.MaxInt32}, math.MaxInt32 % 5, true},
		{mq.Selector{PartitionID: -1, HashID: 7}, 2, false},
		{mq.Selector{PartitionID: -1, HashID: -7}, 2, false},
		{mq.Selector{PartitionID: -1, HashID: math.MinInt64}, 0, false},
		{mq.Selector{PartitionID: -1, HashID: math.MaxInt64}, int(math.MaxInt64 % 5), false},
	} {
		got, wrapped, err := pickQueue(r, c.sel)
		if err != nil || got != c.want || wrapped != c.wrapped {
			t.Errorf("pickQueue(%+v) = %d, %v, %v; want %d, %v", c.sel, got, wrapped, err, c.want, c.wrapped)
		}
	}
	seen := map[int]bool{}
	for range 500 {
		i, _, err := pickQueue(r, mq.Selector{PartitionID: -2})
		if err != nil || i < 0 || i >= n {
			t.Fatalf("random pick %d, %v", i, err)
		}
		seen[i] = true
	}
	if len(seen) != n {
		t.Errorf("500 random picks hit %d of %d queues", len(seen), n)
	}
	for _, avoid := range []string{"a", "b"} {
		starts := map[int]bool{}
		for i := range 300 {
			idx, _, err := pickQueue(r, mq.Selector{PartitionID: int32(i%4) - 2, HashID: int64(i), AvoidBroker: avoid})
			if err != nil || r.Queues[idx].Broker == avoid {
				t.Fatalf("AvoidBroker %q picked %v (%v)", avoid, r.Queues[idx], err)
			}
			starts[idx] = true
		}
		if len(starts) < 2 {
			t.Errorf("AvoidBroker %q always picked %v: the start is not random", avoid, starts)
		}
	}
	one := &Route{Queues: []Queue{{"a", 0}, {"a", 1}}}
	if i, _, err := pickQueue(one, mq.Selector{AvoidBroker: "a"}); err != nil || i < 0 || i > 1 {
		t.Errorf("AvoidBroker with one broker: %d, %v; want any queue", i, err)
	}
	if _, _, err := pickQueue(&Route{}, mq.Selector{}); !errors.Is(err, mq.ErrTopicNotExist) {
		t.Errorf("no queues: %v, want ErrTopicNotExist", err)
	}
}

func TestRouteFromResponse(t *testing.T) {
	resp := remoting.NewRequest(0, nil, nil)
	resp.Code = remoting.TopicNotExist
	if _, err := routeFromResponse("t", resp); !errors.Is(err, mq.ErrTopicNotExist) {
		t.Errorf("code 17: %v, want ErrTopicNotExist", err)
	}
	resp.Code = remoting.SystemError
	if _, err := routeFromResponse("t", resp); err == nil || errors.Is(err, mq.ErrTopicNotExist) {
		t.Errorf("code 1: %v, want a plain error", err)
	}
	resp.Code = remoting.Success
	resp.Body = []byte(`{"queueDatas":[{"brokerName":"a","writeQueueNums":2,"perm":4}],"brokerDatas":[{"brokerName":"a","brokerAddrs":{"0":"h:1"}}]}`)
	if _, err := routeFromResponse("t", resp); !errors.Is(err, mq.ErrTopicNotExist) {
		t.Errorf("no writable queue: %v, want ErrTopicNotExist", err)
	}
}

func BenchmarkPickQueueHash(b *testing.B) {
	r := testRoute()
	for i := range b.N {
		_, _, _ = pickQueue(r, mq.Selector{PartitionID: -1, HashID: int64(i)})
	}
}
