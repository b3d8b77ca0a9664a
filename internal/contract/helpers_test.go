package contract_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// Messages and codes of wire-contract.md §4 the suite checks.
const (
	msgOK         = "OK"
	msgIllegal    = "FAILED: Message is too large or illegal or the length is 0"
	msgNotAllowed = "FAILED: Topic is not in the proxy white list"
	msgNotExist   = "FAILED: Topic do not exist!"
	msgLimited    = "FAILED: Refused by the rate limiter."
	msgIsDelay    = "FAILED: Topic is delay"
)

// sendSync sends m with the proxy-side timeout of 3 s and returns the
// result (transport errors fail the test).
func sendSync(t testing.TB, pc *producer.ProducerServiceClient, m *producer.Message) *producer.Result_ {
	t.Helper()
	res, err := pc.SendSync(context.Background(), m, 3000)
	if err != nil {
		t.Fatalf("sendSync: %v", err)
	}
	return res
}

// expectCode fails the test unless res is (code, msg).
func expectCode(t testing.TB, what string, res *producer.Result_, code int32, msg string) {
	t.Helper()
	if res == nil || res.Code != code || res.Msg != msg {
		t.Errorf("%s: got %+v, want %d %q", what, res, code, msg)
	}
}

// sendBatch sends msgs with sendBatchSync and requires OK.
func sendBatch(t testing.TB, pc *producer.ProducerServiceClient, msgs []*producer.Message) {
	t.Helper()
	res, err := pc.SendBatchSync(context.Background(), msgs)
	if err != nil {
		t.Fatalf("sendBatchSync: %v", err)
	}
	if res.Code != 0 || res.Msg != msgOK {
		t.Fatalf("sendBatchSync of %d: %d %q", len(msgs), res.Code, res.Msg)
	}
}

// pull is one pull call; ack (may be nil) is piggy-backed.
func pull(t testing.TB, cc *consumer.ConsumerServiceClient, group string, maxBatch, lingerMs int32, ack *consumer.ConsumeResult_) *consumer.PullResponse {
	t.Helper()
	resp, err := cc.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &maxBatch,
		MaxLingerTime: &lingerMs, Result_: ack})
	if err != nil {
		t.Fatalf("pull %s: %v", group, err)
	}
	if len(resp.Messages) > int(maxBatch) {
		t.Fatalf("pull %s: %d messages > maxBatchSize %d", group, len(resp.Messages), maxBatch)
	}
	if len(resp.Messages) == 0 && resp.Context != nil && (resp.Context.GroupId != "" || resp.Context.Topic != "" || resp.Context.Qid != "") {
		t.Fatalf("pull %s: empty response with context %+v, want an empty context", group, resp.Context)
	}
	return resp
}

// submit sends one ConsumeResult and requires true.
func submit(t testing.TB, cc *consumer.ConsumerServiceClient, r *consumer.ConsumeResult_) {
	t.Helper()
	ok, err := cc.Submit(context.Background(), r)
	if err != nil || !ok {
		t.Fatalf("submit: %v %v", ok, err)
	}
}

// stats calls getConsumeStats (topic "" = all topics of the group).
func stats(t testing.TB, cc *consumer.ConsumerServiceClient, group, topic string) []*consumer.ConsumeStats {
	t.Helper()
	req := &consumer.ConsumeStatsRequest{Group: group}
	if topic != "" {
		req.Topic = &topic
	}
	st, err := cc.GetConsumeStats(context.Background(), req)
	if err != nil {
		t.Fatalf("getConsumeStats %s/%s: %v", group, topic, err)
	}
	return st
}

// startGroup starts a lazy pull group (its first pull) and waits until its
// start positions are committed on every qid of topic, so everything sent
// afterwards is consumed. Nothing may be delivered meanwhile.
func startGroup(t testing.TB, cc *consumer.ConsumerServiceClient, group, topic string) {
	t.Helper()
	var st []*consumer.ConsumeStats
	testenv.Eventually(t, 30*time.Second, "start offsets of "+group, func() bool {
		if resp := pull(t, cc, group, 1, 20, nil); len(resp.Messages) != 0 {
			t.Fatalf("%s delivered %q before anything was sent", group, resp.Messages[0].Value)
		}
		st = stats(t, cc, group, topic)
		return len(st) == 1 && len(st[0].ConsumeOffsets) == nq
	}, func() string { return fmt.Sprintf("stats %+v", st) })
}

// delivery is one message as a pull client received it.
type delivery struct {
	ctx *consumer.Context
	msg *consumer.Message
	at  time.Time
}

// drain pulls and acknowledges (piggy-backed, then a final submit) until n
// messages were received; a message received twice fails the test.
func drain(t testing.TB, cc *consumer.ConsumerServiceClient, group string, n int) []delivery {
	t.Helper()
	var out []delivery
	seen := map[string]bool{}
	var ack *consumer.ConsumeResult_
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: received %d of %d", group, len(out), n)
		}
		resp := pull(t, cc, group, 8, 100, ack)
		ack = nil
		if len(resp.Messages) == 0 {
			continue
		}
		ack = &consumer.ConsumeResult_{Context: resp.Context}
		for _, m := range resp.Messages {
			id := fmt.Sprintf("%s@%d", resp.Context.Qid, m.Offset)
			if seen[id] {
				t.Fatalf("%s: %s (%q) delivered twice", group, id, m.Value)
			}
			seen[id] = true
			out = append(out, delivery{ctx: resp.Context, msg: m, at: time.Now()})
			ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
		}
	}
	if ack != nil {
		submit(t, cc, ack)
	}
	return out
}

// allQIDs are the QIDs of a topic of the suite on the stack's broker, by
// partition index.
func (s *stack) allQIDs() []string {
	out := make([]string, nq)
	for p := range nq {
		out[p] = s.b.qid(p, nq)
	}
	return out
}

// checkQIDs fails the test unless m's keys are exactly the topic's QIDs
// (each matching the backend's pattern).
func (s *stack) checkQIDs(t testing.TB, what string, m map[string]int64) {
	t.Helper()
	keys := slices.Sorted(maps.Keys(m))
	want := s.allQIDs()
	sort.Strings(want)
	if !slices.Equal(keys, want) {
		t.Fatalf("%s: qids %v, want %v", what, keys, want)
	}
	for _, q := range keys {
		if !s.b.qidPattern.MatchString(q) {
			t.Fatalf("%s: qid %q does not match %v", what, q, s.b.qidPattern)
		}
	}
}

// awaitCaughtUp waits until the group's committed offset equals the log
// end on every qid of topic.
func (s *stack) awaitCaughtUp(t testing.TB, cc *consumer.ConsumerServiceClient, group, topic string) *consumer.ConsumeStats {
	t.Helper()
	var st []*consumer.ConsumeStats
	testenv.Eventually(t, 15*time.Second, group+" caught up", func() bool {
		st = stats(t, cc, group, topic)
		if len(st) != 1 || len(st[0].ProduceOffsets) != nq || !maps.Equal(st[0].ConsumeOffsets, st[0].ProduceOffsets) {
			return false
		}
		return true
	}, func() string { return fmt.Sprintf("stats %+v", st) })
	s.checkQIDs(t, "produceOffsets", st[0].ProduceOffsets)
	return st[0]
}
