package rocketmq

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/internal/mq"
	testbroker "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// Helpers of the consumer tests: a test broker with two broker names, raw
// SEND_MESSAGE through the remoting client (no library producer, so the
// package keeps -race), and a recording claim handler.

// leakCheck fails the test if it leaves goroutines behind (rocketmq-client-go's
// package-level cache janitor excepted).
func leakCheck(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent(), goleak.IgnoreTopFunction("github.com/patrickmn/go-cache.(*janitor).Run")}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// startTestBroker starts a test broker with broker-a and broker-b (mods
// applied after).
func startTestBroker(t *testing.T, mods ...testenv.RocketMQOption) *testenv.RocketMQ {
	t.Helper()
	opts := append([]testenv.RocketMQOption{testenv.RocketMQBrokers("broker-a", "broker-b"),
		func(o *testbroker.Options) { o.MaxPullHold = 300 * time.Millisecond }}, mods...)
	return testenv.StartRocketMQ(t, opts...)
}

// testMsg is a message to send.
type testMsg struct {
	queue      int // queue id on the broker
	broker     string
	tags, keys string
	props      map[string]string
	body       string
}

// sendMsgs stores messages with SEND_MESSAGE (code 10) and returns their
// queue offsets.
func sendMsgs(t *testing.T, s *testenv.RocketMQ, topic string, msgs ...testMsg) []int64 {
	t.Helper()
	out := make([]testenv.RocketMQMessage, len(msgs))
	for i, m := range msgs {
		props := map[string]string{"WAIT": "true"}
		maps.Copy(props, m.props)
		out[i] = testenv.RocketMQMessage{Broker: m.broker, Queue: m.queue, Keys: m.keys, Tags: m.tags, Properties: props, Body: m.body}
	}
	return s.Send(t, topic, "test_producer", "U", out...)
}

// spread returns n messages "<prefix>-<i>" round-robin over 4 queues of
// both brokers.
func spread(n int, prefix string) []testMsg {
	out := make([]testMsg, n)
	for i := range n {
		out[i] = testMsg{broker: []string{"broker-a", "broker-b"}[i%2], queue: (i / 2) % 4,
			keys: "k" + strconv.Itoa(i), tags: "tagA", props: map[string]string{"traceId": "x"},
			body: fmt.Sprintf("%s-%d", prefix, i)}
	}
	return out
}

// recorder is a ClaimHandler that records claims and deliveries and (with
// commit) commits offset+1 of every delivery.
type recorder struct {
	commit   bool
	clientID string // set by the test, for its own checks

	mu      sync.Mutex
	setups  []map[string][]int32
	claims  map[string]mq.Claim // by queue name, live claims only
	got     []*mq.Delivery
	cleanup int
	changed chan struct{} // 1-buffered
}

func newRecorder(commit bool) *recorder {
	return &recorder{commit: commit, claims: map[string]mq.Claim{}, changed: make(chan struct{}, 1)}
}

func (r *recorder) kick() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) Setup(a map[string][]int32) {
	r.mu.Lock()
	r.setups = append(r.setups, a)
	r.mu.Unlock()
	r.kick()
}

func (r *recorder) Cleanup() {
	r.mu.Lock()
	r.cleanup++
	r.mu.Unlock()
}

func claimName(c mq.Claim) string { return c.Topic() + "@" + QueueName(c.Partition()) }

func (r *recorder) Claim(c mq.Claim) {
	name := claimName(c)
	r.mu.Lock()
	r.claims[name] = c
	r.mu.Unlock()
	r.kick()
	defer func() {
		r.mu.Lock()
		if r.claims[name] == c {
			delete(r.claims, name)
		}
		r.mu.Unlock()
		r.kick()
	}()
	for {
		select {
		case d, ok := <-c.Messages():
			if !ok {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, d)
			r.mu.Unlock()
			if r.commit {
				c.Commit(mq.CommittedOffset{Offset: d.Offset + 1})
			}
			r.kick()
		case <-c.Context().Done():
			return
		}
	}
}

// claimed returns the names of the live claims, sorted.
func (r *recorder) claimed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.claims))
	for n := range r.claims {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (r *recorder) deliveries() []*mq.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// bodies counts deliveries by body.
func (r *recorder) bodies() map[string]int {
	out := map[string]int{}
	for _, d := range r.deliveries() {
		out[string(d.Body)]++
	}
	return out
}

// fastOptions are member options for tests against s.
func fastOptions(s *testenv.RocketMQ, group string, topics ...string) ConsumerOptions {
	o := ConsumerOptions{
		Cluster: "R_test", NameServers: []string{s.NameServer}, Group: group,
		ConsumeFrom:       ConsumeFromFirstOffset,
		HeartbeatInterval: time.Second, RebalanceInterval: 2 * time.Second, RouteInterval: time.Second,
		CommitInterval: 50 * time.Millisecond, PullSuspend: time.Second, RetryBackoff: 50 * time.Millisecond,
		RequestTimeout: 2 * time.Second,
	}
	for _, tp := range topics {
		o.Subscriptions = append(o.Subscriptions, Subscription{Topic: tp, Expression: "*"})
	}
	return o
}

// runMember runs a member until the returned stop is called (also at
// cleanup); stop waits for Run to return.
func runMember(t *testing.T, o ConsumerOptions, h mq.ClaimHandler) (*GroupConsumer, func()) {
	t.Helper()
	g, err := NewGroupConsumer(o, zaptest.NewLogger(t).Named(o.InstanceName))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, h) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return within 15s of cancellation")
			}
		})
	}
	t.Cleanup(stop)
	return g, stop
}

func newReader(t *testing.T, s *testenv.RocketMQ) *OffsetReader {
	t.Helper()
	r, err := NewOffsetReader(ConsumerOptions{Cluster: "R_test", NameServers: []string{s.NameServer},
		RequestTimeout: 2 * time.Second}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}
