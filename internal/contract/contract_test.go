package contract_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// TestContract runs the same cases against every backend: one ZooKeeper
// for the run, one broker + pproxy + cproxy per backend.
func TestContract(t *testing.T) {
	zk := testenv.StartZooKeeper(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { runSuite(t, zk, b) })
	}
}

func runSuite(t *testing.T, zk *testenv.ZooKeeper, b backend) {
	start := time.Now()
	s := startStack(t, zk, b)
	t.Logf("stack up in %v", time.Since(start))
	cases := []struct {
		name string
		run  func(t *testing.T, s *stack)
	}{
		{"SendSyncReadBack", caseSendSyncReadBack},
		{"SendBatchOrder", caseSendBatchOrder},
		{"SendAsync", caseSendAsync},
		{"ResultCodes", caseResultCodes},
		{"PullSubmitRedelivery", casePullSubmitRedelivery},
		{"AckChain", caseAckChain},
		{"OrderKey", caseOrderKey},
		{"OrderQID", caseOrderQID},
		{"FetchAck", caseFetchAck},
		{"ConsumeStats", caseConsumeStats},
		{"PressureTraffic", casePressureTraffic},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			c.run(t, s)
			t.Logf("%s took %v", c.name, time.Since(start))
		})
	}
}

// 1. sendSync answers OK and cproxy delivers each message byte-exact:
// binary (and compressed-size) body, key, tags, user properties, in the
// qid pproxy's placement rules name (behaviour.md §1.5).
func caseSendSyncReadBack(t *testing.T, s *stack) {
	const topic, group = "ct_send", "cg_send"
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	startGroup(t, cc, group, topic)

	allBytes := make([]byte, 512)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	big := make([]byte, 10<<10) // above compressMsgBodyOverHowmuch
	_, _ = rand.Read(big)
	props := map[string]string{"traceId": "t-1", "CamelCase.key": "v", "ключ": "значение", "sp ace": "a b"}
	sent := []*producer.Message{
		{Topic: topic, Key: "k€y 1", Tags: "tag-ü", Body: allBytes, PartitionId: -1, HashId: 7, Properties: props},
		{Topic: topic, Key: "k2", Tags: "T2", Body: big, PartitionId: -1, HashId: -6, Properties: map[string]string{"only": "one"}},
		{Topic: topic, Body: []byte{0}, PartitionId: 2}, // no key, tags or properties
		{Topic: topic, Key: "legacy", Value: "text body ✓", PartitionId: 1},
	}
	wantBody := func(m *producer.Message) []byte {
		if m.Body != nil {
			return m.Body
		}
		return []byte(m.Value)
	}
	wantPart := func(m *producer.Message) int {
		if m.PartitionId >= 0 {
			return int(m.PartitionId)
		}
		return mq.NonNegMod(m.HashId, nq)
	}
	for i, m := range sent {
		expectCode(t, fmt.Sprintf("send %d", i), sendSync(t, pc, m), 0, msgOK)
	}
	got := drain(t, cc, group, len(sent))
	for i, m := range sent {
		var d *delivery
		for j := range got {
			if bytes.Equal(got[j].msg.Value, wantBody(m)) {
				d = &got[j]
			}
		}
		if d == nil {
			t.Errorf("message %d: body not received byte-exact", i)
			continue
		}
		if d.ctx.GroupId != group || d.ctx.Topic != topic {
			t.Errorf("message %d: context %+v", i, d.ctx)
		}
		if want := s.b.qid(wantPart(m), nq); d.ctx.Qid != want {
			t.Errorf("message %d: qid %s, want %s", i, d.ctx.Qid, want)
		}
		if d.msg.Key != m.Key || d.msg.Tag != m.Tags {
			t.Errorf("message %d: key %q tag %q, want %q %q", i, d.msg.Key, d.msg.Tag, m.Key, m.Tags)
		}
		if !maps.Equal(d.msg.Properties, m.Properties) {
			t.Errorf("message %d: properties %v, want %v", i, d.msg.Properties, m.Properties)
		}
	}
}

// 2. sendBatchSync of mixed keys: OK, each partitionId's messages stored
// and delivered in request order; failed batches store nothing.
func caseSendBatchOrder(t *testing.T, s *stack) {
	const topic, group, n = "ct_batch", "cg_batch", 40
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	startGroup(t, cc, group, topic)

	ctx := context.Background()
	res, err := pc.SendBatchSync(ctx, []*producer.Message{})
	if err != nil {
		t.Fatal(err)
	}
	expectCode(t, "empty batch", res, 0, msgOK)
	// Validation and resolution run before anything is sent.
	res, err = pc.SendBatchSync(ctx, []*producer.Message{{Topic: topic, Body: []byte("x"), PartitionId: 0},
		{Topic: "ct_unknown", Body: []byte("y"), PartitionId: 0}})
	if err != nil {
		t.Fatal(err)
	}
	expectCode(t, "batch with an unserved topic", res, 13, msgNotAllowed)
	res, err = pc.SendBatchSync(ctx, []*producer.Message{{Topic: topic, Body: []byte("x"), PartitionId: 0},
		{Topic: topic, PartitionId: 0}})
	if err != nil {
		t.Fatal(err)
	}
	expectCode(t, "batch with an empty body", res, 11, msgIllegal)

	var msgs []*producer.Message
	for i := range n {
		msgs = append(msgs, &producer.Message{Topic: topic, Key: "key-" + strconv.Itoa(i%3), Tags: "bt",
			Body: fmt.Appendf(nil, "b-%02d", i), PartitionId: int32(i % nq), Properties: map[string]string{"i": strconv.Itoa(i)}})
	}
	sendBatch(t, pc, msgs)
	byQID := map[string][]delivery{}
	for _, d := range drain(t, cc, group, n) {
		byQID[d.ctx.Qid] = append(byQID[d.ctx.Qid], d)
	}
	for q, ds := range byQID {
		sort.Slice(ds, func(i, j int) bool { return ds[i].msg.Offset < ds[j].msg.Offset })
		last := -1
		for _, d := range ds {
			var i int
			if _, err := fmt.Sscanf(string(d.msg.Value), "b-%d", &i); err != nil {
				t.Fatalf("body %q", d.msg.Value)
			}
			if want := s.b.qid(i%nq, nq); q != want {
				t.Errorf("b-%02d in %s, want %s", i, q, want)
			}
			if i <= last {
				t.Errorf("%s: b-%02d stored after b-%02d", q, i, last)
			}
			last = i
			if d.msg.Key != "key-"+strconv.Itoa(i%3) || d.msg.Tag != "bt" || !maps.Equal(d.msg.Properties, map[string]string{"i": strconv.Itoa(i)}) {
				t.Errorf("b-%02d: key %q tag %q properties %v", i, d.msg.Key, d.msg.Tag, d.msg.Properties)
			}
		}
	}
	// Exactly the good batch was stored: n/nq messages in every qid.
	st := stats(t, cc, group, topic)
	if len(st) != 1 {
		t.Fatalf("stats %+v", st)
	}
	s.checkQIDs(t, "produceOffsets", st[0].ProduceOffsets)
	for q, off := range st[0].ProduceOffsets {
		if off != n/nq {
			t.Errorf("%s holds %d messages, want %d", q, off, n/nq)
		}
	}
	// Random partition ids of one topic share one queue per request
	// (behaviour.md §1.10).
	msgs = msgs[:0]
	for i := range 6 {
		msgs = append(msgs, &producer.Message{Topic: topic, Body: fmt.Appendf(nil, "r-%d", i), PartitionId: -2})
	}
	sendBatch(t, pc, msgs)
	qids := map[string]int{}
	for _, d := range drain(t, cc, group, len(msgs)) {
		if !strings.HasPrefix(string(d.msg.Value), "r-") {
			t.Fatalf("unexpected delivery %q", d.msg.Value)
		}
		qids[d.ctx.Qid]++
	}
	if len(qids) != 1 {
		t.Errorf("random-partition batch spread over %v, want one qid", qids)
	}
}

// 3. sendAsync answers after the broker stored the message.
func caseSendAsync(t *testing.T, s *stack) {
	const topic, group = "ct_async", "cg_async"
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	startGroup(t, cc, group, topic)
	want := map[string]bool{}
	for i := range 3 {
		body := "async-" + strconv.Itoa(i)
		res, err := pc.SendAsync(context.Background(), &producer.Message{Topic: topic, Key: "a", Body: []byte(body), PartitionId: -2})
		if err != nil {
			t.Fatal(err)
		}
		expectCode(t, body, res, 0, msgOK)
		want[body] = true
	}
	for _, d := range drain(t, cc, group, len(want)) {
		if !want[string(d.msg.Value)] || d.msg.Key != "a" {
			t.Errorf("unexpected delivery %+v", d.msg)
		}
		delete(want, string(d.msg.Value))
	}
	if len(want) != 0 {
		t.Errorf("not delivered: %v", want)
	}
	res, err := pc.SendAsync(context.Background(), &producer.Message{Topic: "ct_unknown", Body: []byte("x"), PartitionId: -2})
	if err != nil {
		t.Fatal(err)
	}
	expectCode(t, "sendAsync to an unserved topic", res, 13, msgNotAllowed)
	res, err = pc.SendAsync(context.Background(), &producer.Message{Topic: "ct_ghost", Body: []byte("x"), PartitionId: -2})
	if err != nil {
		t.Fatal(err)
	}
	expectCode(t, "sendAsync to a topic the broker does not know", res, 14, msgNotExist)
}

// 4. Result codes over the wire (wire-contract.md §4), exact strings.
func caseResultCodes(t *testing.T, s *stack) {
	pc := producerClient(t, s.pproxy)
	long := strings.Repeat("k", 256)
	cases := []struct {
		name string
		m    *producer.Message
		code int32
		msg  string
	}{
		{"OK", &producer.Message{Topic: "ct_codes", Body: []byte("x"), PartitionId: -1}, 0, msgOK},
		{"heartbeat", &producer.Message{Topic: "carrera_heartbeat"}, 0, msgOK},
		{"topic not white-listed", &producer.Message{Topic: "ct_unknown", Body: []byte("x"), PartitionId: -1}, 13, msgNotAllowed},
		{"topic unknown to the broker", &producer.Message{Topic: "ct_ghost", Body: []byte("x"), PartitionId: -1}, 14, msgNotExist},
		{"body over the 2 MiB limit", &producer.Message{Topic: "ct_codes", Body: make([]byte, 2<<20+1), PartitionId: -1}, 11, msgIllegal},
		{"empty topic", &producer.Message{Topic: "", Body: []byte("x"), PartitionId: -1}, 11, msgIllegal},
		{"empty body", &producer.Message{Topic: "ct_codes", PartitionId: -1}, 11, msgIllegal},
		{"key of 256 characters", &producer.Message{Topic: "ct_codes", Key: long, Body: []byte("x"), PartitionId: -1}, 11, msgIllegal},
		{"tags of 256 characters", &producer.Message{Topic: "ct_codes", Tags: long, Body: []byte("x"), PartitionId: -1}, 11, msgIllegal},
		{"reserved property", &producer.Message{Topic: "ct_codes", Body: []byte("x"), PartitionId: -1,
			Properties: map[string]string{"UNIQ_KEY": "u"}}, 11, msgIllegal},
		{"blank property value", &producer.Message{Topic: "ct_codes", Body: []byte("x"), PartitionId: -1,
			Properties: map[string]string{"p": " "}}, 11, msgIllegal},
		{"inner delay topic", &producer.Message{Topic: "ct_inner_0", Body: []byte("x"), PartitionId: -1}, 11, msgIllegal},
		{"delay topic", &producer.Message{Topic: "ct_delayed", Body: []byte("x"), PartitionId: -1}, 19, msgIsDelay},
	}
	for _, c := range cases {
		expectCode(t, c.name, sendSync(t, pc, c.m), c.code, c.msg)
	}
	res, err := pc.SendBatchSync(context.Background(), []*producer.Message{{Topic: "ct_ghost", Body: []byte("x"), PartitionId: 0}})
	if err != nil {
		t.Fatal(err)
	}
	expectCode(t, "batch to a topic the broker does not know", res, 14, msgNotExist)

	// Rate limiter: ct_limited allows 1 message/s (0.9 normal + 0.1
	// warning, each bursting one token); no limiter retry.
	codes := map[int32]int{}
	for i := range 6 {
		res := sendSync(t, pc, &producer.Message{Topic: "ct_limited", Body: []byte("x"), PartitionId: -1})
		codes[res.Code]++
		if res.Code == 15 {
			expectCode(t, "limited send", res, 15, msgLimited)
		}
		if i == 0 {
			expectCode(t, "first limited send", res, 0, msgOK)
		}
	}
	if codes[15] == 0 || codes[0]+codes[15] != 6 {
		t.Errorf("codes of 6 fast sends at 1 msg/s: %v, want OK then 15", codes)
	}
}

// 5. pull/submit: a success is final; a nack redelivers after the
// retryIntervals delay, then (intervals exhausted) drops; no ack within
// the timeout redelivers up to maxRetry times, then drops. Dropped
// messages finish their offsets.
func casePullSubmitRedelivery(t *testing.T, s *stack) {
	const topic, group = "ct_retry", "cg_retry"
	const timeout, interval = 500 * time.Millisecond, 150 * time.Millisecond // cg_retry: maxRetry 1, retryIntervals [150]
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	startGroup(t, cc, group, topic)
	for p, body := range []string{"ack", "nack", "silent"} {
		expectCode(t, body, sendSync(t, pc, &producer.Message{Topic: topic, Body: []byte(body), PartitionId: int32(p)}), 0, msgOK)
	}
	got := map[string][]delivery{}
	nackedAt := map[string][]time.Time{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got["ack"]) < 1 || len(got["nack"]) < 2 || len(got["silent"]) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("deliveries: ack %d, nack %d, silent %d", len(got["ack"]), len(got["nack"]), len(got["silent"]))
		}
		resp := pull(t, cc, group, 8, 100, nil)
		for _, m := range resp.Messages {
			body := string(m.Value)
			got[body] = append(got[body], delivery{ctx: resp.Context, msg: m, at: time.Now()})
			switch body {
			case "ack":
				submit(t, cc, &consumer.ConsumeResult_{Context: resp.Context, SuccessOffsets: []int64{m.Offset}})
			case "nack":
				nackedAt[body] = append(nackedAt[body], time.Now())
				submit(t, cc, &consumer.ConsumeResult_{Context: resp.Context, FailOffsets: []int64{m.Offset}})
			}
		}
	}
	// Both exhausted messages are dropped: their offsets finish.
	s.awaitCaughtUp(t, cc, group, topic)
	if resp := pull(t, cc, group, 8, 300, nil); len(resp.Messages) != 0 {
		t.Errorf("delivered after the drops: %q", resp.Messages[0].Value)
	}
	if n := len(got["ack"]); n != 1 {
		t.Errorf("acknowledged message delivered %d times", n)
	}
	for _, body := range []string{"nack", "silent"} {
		ds := got[body]
		if len(ds) != 2 {
			t.Errorf("%s delivered %d times, want 2", body, len(ds))
			continue
		}
		if ds[1].ctx.Qid != ds[0].ctx.Qid || ds[1].msg.Offset != ds[0].msg.Offset {
			t.Errorf("%s redelivered as %s@%d, first %s@%d", body, ds[1].ctx.Qid, ds[1].msg.Offset, ds[0].ctx.Qid, ds[0].msg.Offset)
		}
	}
	if ds := got["nack"]; len(ds) == 2 {
		gap := ds[1].at.Sub(nackedAt["nack"][0])
		if gap < interval || gap > interval+2*time.Second {
			t.Errorf("nacked message redelivered %v after the nack, want about %v", gap, interval)
		}
		t.Logf("nack → redelivery: %v", gap)
	}
	if ds := got["silent"]; len(ds) == 2 {
		gap := ds[1].at.Sub(ds[0].at)
		if gap < timeout-100*time.Millisecond || gap > timeout+2*time.Second {
			t.Errorf("unacknowledged message redelivered after %v, want about %v", gap, timeout)
		}
		t.Logf("timeout → redelivery: %v", gap)
	}
}

// 5b. A ConsumeResult chain (nextResult) acknowledges each element on its
// own context (DDMQ defect #11 not reproduced).
func caseAckChain(t *testing.T, s *stack) {
	const topic, group = "ct_chain", "cg_chain"
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	startGroup(t, cc, group, topic)
	for p := range int32(2) {
		expectCode(t, "send", sendSync(t, pc, &producer.Message{Topic: topic, Body: fmt.Appendf(nil, "c-%d", p), PartitionId: p}), 0, msgOK)
	}
	var chain *consumer.ConsumeResult_
	got := 0
	deadline := time.Now().Add(10 * time.Second)
	for got < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of 2", got)
		}
		resp := pull(t, cc, group, 8, 100, nil)
		if len(resp.Messages) == 0 {
			continue
		}
		r := &consumer.ConsumeResult_{Context: resp.Context, NextResult_: chain}
		for _, m := range resp.Messages {
			r.SuccessOffsets = append(r.SuccessOffsets, m.Offset)
			got++
		}
		chain = r
	}
	if chain.NextResult_ == nil {
		t.Fatal("both messages came in one response; the chain has one element")
	}
	submit(t, cc, chain)
	s.awaitCaughtUp(t, cc, group, topic)
}

// 6a. orderKey KEY: one message per key in flight, each key's messages
// acknowledged in order, across nacks and several pulling clients.
func caseOrderKey(t *testing.T, s *stack) {
	const topic, group, keys, n = "ct_okey", "cg_okey", 6, 60
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	startGroup(t, cc, group, topic)
	var msgs []*producer.Message
	for i := range n {
		k := i % keys // hashId k: keys 0 and 4, 1 and 5 share a qid
		msgs = append(msgs, &producer.Message{Topic: topic, Key: "key" + strconv.Itoa(k), Body: fmt.Appendf(nil, "o-%02d", i),
			PartitionId: -1, HashId: int64(k)})
	}
	sendBatch(t, pc, msgs)

	var (
		mu       sync.Mutex
		inFlight = map[string]string{} // key → body handed out, not yet answered
		ackSeq   = map[string][]int{}  // key → body numbers in ack order
		acked    = map[string]bool{}
		nacked   = map[string]bool{}
		failures []string
		done     = make(chan struct{})
		wg       sync.WaitGroup
	)
	fail := func(f string, a ...any) { failures = append(failures, fmt.Sprintf(f, a...)) }
	for w := range 3 {
		c := consumerClient(t, s.cproxy)
		wg.Go(func() {
			var ack *consumer.ConsumeResult_
			var answered []string
			bs, ml := int32(8), int32(50)
			for i := 0; ; i++ {
				// The previous batch is in flight until its answer leaves
				// with this pull.
				mu.Lock()
				for _, k := range answered {
					delete(inFlight, k)
				}
				mu.Unlock()
				answered = answered[:0]
				select {
				case <-done:
					if ack != nil {
						_, _ = c.Submit(context.Background(), ack)
					}
					return
				default:
				}
				resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
				mu.Lock()
				if err != nil {
					fail("worker %d: pull: %v", w, err)
					mu.Unlock()
					return
				}
				ack = nil
				if len(resp.Messages) > 0 {
					ack = &consumer.ConsumeResult_{Context: resp.Context}
				}
				for j, m := range resp.Messages {
					body := string(m.Value)
					if other, busy := inFlight[m.Key]; busy {
						fail("%s handed out while %s of %s is in flight", body, other, m.Key)
					}
					inFlight[m.Key] = body
					answered = append(answered, m.Key)
					if (i+j+w)%3 == 0 && !nacked[body] {
						nacked[body] = true
						ack.FailOffsets = append(ack.FailOffsets, m.Offset)
						continue
					}
					if acked[body] {
						fail("%s delivered again after its ack", body)
					}
					acked[body] = true
					num, _ := strconv.Atoi(strings.TrimPrefix(body, "o-"))
					ackSeq[m.Key] = append(ackSeq[m.Key], num)
					ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
				}
				mu.Unlock()
			}
		})
	}
	testenv.Eventually(t, 30*time.Second, "every ordered message acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == n || len(failures) > 0
	}, func() string { mu.Lock(); defer mu.Unlock(); return fmt.Sprintf("acked %d of %d", len(acked), n) })
	close(done)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d violations, first: %v", len(failures), failures[:min(3, len(failures))])
	}
	if len(nacked) == 0 {
		t.Fatal("no message was nacked")
	}
	for k := range keys {
		key := "key" + strconv.Itoa(k)
		seq := ackSeq[key]
		if len(seq) != n/keys || !slices.IsSorted(seq) {
			t.Errorf("%s acknowledged in order %v", key, seq)
		}
	}
	t.Logf("%d messages, %d nacked once", n, len(nacked))
}

// 6b. orderKey QID: one outstanding batch per qid — the next fresh batch of
// a qid is handed out only after every message of the previous one was
// acknowledged (nacked ones come back alone first); fresh offsets of a qid
// in increasing order.
func caseOrderQID(t *testing.T, s *stack) {
	const topic, group, n, maxBatch = "ct_oqid", "cg_oqid", 40, 4 // cg_oqid: maxPullBatchSize 4
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	startGroup(t, cc, group, topic)
	var msgs []*producer.Message
	for i := range n {
		msgs = append(msgs, &producer.Message{Topic: topic, Key: "k" + strconv.Itoa(i), Body: fmt.Appendf(nil, "q-%02d", i),
			PartitionId: int32(i % nq)})
	}
	sendBatch(t, pc, msgs)

	var (
		mu         sync.Mutex
		unfinished = map[string]map[int64]bool{} // qid → offsets handed out and not acknowledged
		lastFresh  = map[string]int64{}
		handed     = map[string]bool{} // qid@offset ever handed out
		acked      = map[string]bool{} // qid@offset
		nacked     = map[string]bool{}
		batches    int
		failures   []string
		done       = make(chan struct{})
		wg         sync.WaitGroup
	)
	fail := func(f string, a ...any) { failures = append(failures, fmt.Sprintf(f, a...)) }
	for w := range 3 {
		c := consumerClient(t, s.cproxy)
		wg.Go(func() {
			var ack *consumer.ConsumeResult_
			var toFinish []int64
			bs, ml := int32(8), int32(50)
			for {
				// Acknowledged offsets stop being outstanding when the
				// acknowledgement leaves with this pull.
				mu.Lock()
				if ack != nil {
					for _, off := range toFinish {
						delete(unfinished[ack.Context.Qid], off)
					}
				}
				mu.Unlock()
				toFinish = toFinish[:0]
				select {
				case <-done:
					if ack != nil {
						_, _ = c.Submit(context.Background(), ack)
					}
					return
				default:
				}
				resp, err := c.Pull(context.Background(), &consumer.PullRequest{GroupId: group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
				mu.Lock()
				if err != nil {
					fail("worker %d: pull: %v", w, err)
					mu.Unlock()
					return
				}
				ack = nil
				q := resp.Context.GetQid()
				if len(resp.Messages) > 0 {
					ack = &consumer.ConsumeResult_{Context: resp.Context}
					batches++
					if len(resp.Messages) > maxBatch {
						fail("batch of %d > maxPullBatchSize %d", len(resp.Messages), maxBatch)
					}
					if unfinished[q] == nil {
						unfinished[q] = map[int64]bool{}
					}
				}
				for _, m := range resp.Messages {
					id := fmt.Sprintf("%s@%d", q, m.Offset)
					if !handed[id] {
						if len(unfinished[q]) > 0 {
							fail("%s (%s) handed out while %v of the previous batch are unacknowledged", id, m.Value, slices.Sorted(maps.Keys(unfinished[q])))
						}
						if last, ok := lastFresh[q]; ok && m.Offset <= last {
							fail("%s handed out after %s@%d", id, q, last)
						}
						lastFresh[q] = m.Offset
					} else if !unfinished[q][m.Offset] {
						fail("%s (%s) delivered again after its ack", id, m.Value)
					}
					handed[id] = true
				}
				for _, m := range resp.Messages {
					id := fmt.Sprintf("%s@%d", q, m.Offset)
					unfinished[q][m.Offset] = true
					var i int
					_, _ = fmt.Sscanf(string(m.Value), "q-%d", &i)
					if i%5 == 0 && !nacked[id] {
						nacked[id] = true
						ack.FailOffsets = append(ack.FailOffsets, m.Offset)
						continue
					}
					acked[id] = true
					toFinish = append(toFinish, m.Offset)
					ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
				}
				mu.Unlock()
			}
		})
	}
	testenv.Eventually(t, 30*time.Second, "every message acknowledged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) == n || len(failures) > 0
	}, func() string { mu.Lock(); defer mu.Unlock(); return fmt.Sprintf("acked %d of %d", len(acked), n) })
	close(done)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d violations, first: %v", len(failures), failures[:min(3, len(failures))])
	}
	if len(nacked) == 0 {
		t.Fatal("no message was nacked")
	}
	t.Logf("%d messages in %d batches, %d nacked once", n, batches, len(nacked))
}

// 7. Low-level fetch/ack: a new group starts at the latest offsets, the
// client's fetchOffset is honoured (also backwards), nextRequestOffset and
// ack values are "the next offset to read", and ack moves the committed
// offset getConsumeStats reports.
func caseFetchAck(t *testing.T, s *stack) {
	const topic, group, consumerID, batch = "ct_low", "cg_low", "1@host#0", 4 // cg_low: maxPullBatchSize 4
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	ctx := context.Background()
	body := func(p int, off int64) string { return fmt.Sprintf("m-%d-%d", p, off) }
	// Two messages per qid before the group ever fetched.
	var msgs []*producer.Message
	for p := range nq {
		for off := range int64(2) {
			msgs = append(msgs, &producer.Message{Topic: topic, Body: []byte(body(p, off)), PartitionId: int32(p)})
		}
	}
	sendBatch(t, pc, msgs)
	partOf := map[string]int{}
	for p, q := range s.allQIDs() {
		partOf[q] = p
	}
	fetch := func(offsets map[string]int64) map[string]*consumer.QidResponse {
		t.Helper()
		bs, ml := int32(100), int32(50)
		req := &consumer.FetchRequest{ConsumerId: consumerID, GroupId: group, Cluster: s.b.cluster,
			MaxBatchSize: &bs, MaxLingerTime: &ml}
		if offsets != nil {
			req.FetchOffset = map[string]map[string]int64{topic: offsets}
		}
		resp, err := cc.Fetch(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.IsSetCode() {
			t.Fatalf("fetch answered code %d", resp.GetCode())
		}
		out := map[string]*consumer.QidResponse{}
		for _, r := range resp.Results {
			if _, ok := partOf[r.Qid]; !ok || r.Topic != topic || !r.IsSetNextRequestOffset() {
				t.Fatalf("qid response %+v", r)
			}
			if len(r.Messages) > batch {
				t.Fatalf("%s: %d messages > maxPullBatchSize %d", r.Qid, len(r.Messages), batch)
			}
			for i, m := range r.Messages {
				start := r.GetNextRequestOffset() - int64(len(r.Messages))
				if m.Offset != start+int64(i) || string(m.Value) != body(partOf[r.Qid], m.Offset) {
					t.Fatalf("%s: message %d is %q at %d, next %d", r.Qid, i, m.Value, m.Offset, r.GetNextRequestOffset())
				}
			}
			out[r.Qid] = r
		}
		return out
	}
	var got map[string]*consumer.QidResponse
	testenv.Eventually(t, 20*time.Second, "every qid assigned to the fetcher", func() bool { got = fetch(nil); return len(got) == nq },
		func() string { return fmt.Sprintf("qids %v", slices.Collect(maps.Keys(got))) })
	for q, r := range got {
		if len(r.Messages) != 0 || r.GetNextRequestOffset() != 2 {
			t.Fatalf("%s: first fetch of a new group: %d messages, next %d; want none at the latest offset 2", q, len(r.Messages), r.GetNextRequestOffset())
		}
	}
	// Six more per qid, read from offset 2 at the client's offsets.
	msgs = msgs[:0]
	for p := range nq {
		for off := int64(2); off < 8; off++ {
			msgs = append(msgs, &producer.Message{Topic: topic, Body: []byte(body(p, off)), PartitionId: int32(p)})
		}
	}
	sendBatch(t, pc, msgs)
	next := map[string]int64{}
	for q := range partOf {
		next[q] = 2
	}
	read := map[string]int{}
	testenv.Eventually(t, 10*time.Second, "offsets 2..7 fetched on every qid", func() bool {
		for q, r := range fetch(next) {
			if r.GetNextRequestOffset() != next[q]+int64(len(r.Messages)) {
				t.Fatalf("%s: fetched %d at %d, next %d", q, len(r.Messages), next[q], r.GetNextRequestOffset())
			}
			read[q] += len(r.Messages)
			next[q] = r.GetNextRequestOffset()
		}
		for _, n := range next {
			if n != 8 {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("next %v", next) })
	for q, n := range read {
		if n != 6 {
			t.Errorf("%s: read %d messages, want 6", q, n)
		}
	}
	// Backwards: fetchOffset 3 reads 3..6 again.
	rewind := map[string]int64{}
	for q := range partOf {
		rewind[q] = 3
	}
	for q, r := range fetch(rewind) {
		if len(r.Messages) != batch || r.Messages[0].Offset != 3 || r.GetNextRequestOffset() != 3+batch {
			t.Errorf("%s: fetch at 3: %d messages from %v, next %d", q, len(r.Messages), r.Messages, r.GetNextRequestOffset())
		}
	}
	// ack = next offset to read; stored unchanged.
	ackAndAwait := func(v int64) {
		t.Helper()
		offs := map[string]int64{}
		for q := range partOf {
			offs[q] = v
		}
		if ok, err := cc.Ack(ctx, &consumer.AckResult_{ConsumerId: consumerID, GroupId: group, Cluster: s.b.cluster,
			Offsets: map[string]map[string]int64{topic: offs}}); !ok || err != nil {
			t.Fatalf("ack %d: %v %v", v, ok, err)
		}
		var st []*consumer.ConsumeStats
		testenv.Eventually(t, 10*time.Second, fmt.Sprintf("committed offsets at %d", v), func() bool {
			st = stats(t, cc, group, topic)
			if len(st) != 1 || len(st[0].ConsumeOffsets) != nq {
				return false
			}
			for q := range partOf {
				if st[0].ConsumeOffsets[q] != v || st[0].ProduceOffsets[q] != 8 {
					return false
				}
			}
			return true
		}, func() string { return fmt.Sprintf("stats %+v", st) })
		s.checkQIDs(t, "consumeOffsets", st[0].ConsumeOffsets)
	}
	ackAndAwait(5)
	ackAndAwait(8)
	if ok, err := cc.Ack(ctx, &consumer.AckResult_{ConsumerId: consumerID, GroupId: group, Cluster: s.b.cluster,
		Offsets: map[string]map[string]int64{}}); !ok || err != nil {
		t.Errorf("empty ack: %v %v", ok, err)
	}
	if ok, err := cc.Ack(ctx, &consumer.AckResult_{ConsumerId: "nobody", GroupId: group, Cluster: s.b.cluster,
		Offsets: map[string]map[string]int64{topic: {s.allQIDs()[0]: 1}}}); ok || err != nil {
		t.Errorf("ack of a consumer id without fetcher: %v %v, want false", ok, err)
	}
	// At the log end: nothing, next stays. Outside the log: nothing, next
	// is inside the log (the backend's correction: start or end).
	end, beyond := map[string]int64{}, map[string]int64{}
	for q := range partOf {
		end[q], beyond[q] = 8, 1<<40
	}
	for q, r := range fetch(end) {
		if len(r.Messages) != 0 || r.GetNextRequestOffset() != 8 {
			t.Errorf("%s: fetch at the end: %d messages, next %d", q, len(r.Messages), r.GetNextRequestOffset())
		}
	}
	corrected := map[string]int64{}
	for q, r := range fetch(beyond) {
		if n := r.GetNextRequestOffset(); len(r.Messages) != 0 || n < 0 || n > 8 {
			t.Errorf("%s: fetch beyond the end: %d messages, next %d", q, len(r.Messages), n)
		}
		corrected[q] = r.GetNextRequestOffset()
	}
	t.Logf("fetchOffset beyond the log end (8) corrected to %v", corrected)
	// A pull for a low-level group answers empty.
	if resp := pull(t, cc, group, 8, 20, nil); len(resp.Messages) != 0 {
		t.Errorf("pull of a low-level group delivered %q", resp.Messages[0].Value)
	}
}

// 8. getConsumeStats: the backend's qids, produce offsets = messages per
// qid, committed = start before anything was acknowledged and = produce
// offsets once everything was; unknown group or topic → empty.
func caseConsumeStats(t *testing.T, s *stack) {
	const topic, group = "ct_stats", "cg_stats"
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	for _, c := range []struct{ group, topic string }{{"cg_nope", ""}, {"cg_nope", topic}, {group, "ct_other"}} {
		if st := stats(t, cc, c.group, c.topic); len(st) != 0 {
			t.Errorf("stats of %s/%q: %+v, want empty", c.group, c.topic, st)
		}
	}
	startGroup(t, cc, group, topic)
	var msgs []*producer.Message
	total := 0
	for p := range nq {
		for i := range p + 1 {
			msgs = append(msgs, &producer.Message{Topic: topic, Body: fmt.Appendf(nil, "s-%d-%d", p, i), PartitionId: int32(p)})
			total++
		}
	}
	sendBatch(t, pc, msgs)
	st := stats(t, cc, group, topic)
	if len(st) != 1 || st[0].Group != group || st[0].Topic != topic {
		t.Fatalf("stats %+v", st)
	}
	s.checkQIDs(t, "produceOffsets", st[0].ProduceOffsets)
	s.checkQIDs(t, "consumeOffsets", st[0].ConsumeOffsets)
	for p, q := range s.allQIDs() {
		if st[0].ProduceOffsets[q] != int64(p+1) || st[0].ConsumeOffsets[q] != 0 {
			t.Errorf("%s before consuming: produce %d consume %d, want %d and 0", q, st[0].ProduceOffsets[q], st[0].ConsumeOffsets[q], p+1)
		}
	}
	drain(t, cc, group, total)
	final := s.awaitCaughtUp(t, cc, group, topic)
	// Without a topic: every topic of the group (here one).
	all := stats(t, cc, group, "")
	if len(all) != 1 || all[0].Topic != topic || !maps.Equal(all[0].ConsumeOffsets, final.ConsumeOffsets) ||
		!maps.Equal(all[0].ProduceOffsets, final.ProduceOffsets) {
		t.Errorf("stats without topic %+v, want %+v", all, final)
	}
}

// 9. Load-test traffic (property isPressureTraffic = "true", any case) is
// skipped for subscriptions without pressureTraffic (wire-contract.md
// §8.1, behaviour.md §2.4 and §2.11): pull never delivers it and its
// offset finishes; a low-level fetch leaves it out of the messages while
// nextRequestOffset moves past it. A subscription with pressureTraffic
// gets it.
func casePressureTraffic(t *testing.T, s *stack) {
	const topic, group, okGroup, lowTopic, lowGroup = "ct_press", "cg_press", "cg_pressok", "ct_lowpress", "cg_lowpress"
	pc, cc := producerClient(t, s.pproxy), consumerClient(t, s.cproxy)
	msgs := func(topic string) []*producer.Message {
		return []*producer.Message{
			{Topic: topic, Body: []byte("normal-0"), PartitionId: 0},
			{Topic: topic, Body: []byte("pressure-1"), PartitionId: 0, Properties: map[string]string{"isPressureTraffic": "true"}},
			{Topic: topic, Body: []byte("pressure-2"), PartitionId: 0, Properties: map[string]string{"isPressureTraffic": "TRUE"}},
			{Topic: topic, Body: []byte("normal-3"), PartitionId: 0, Properties: map[string]string{"isPressureTraffic": "false"}},
		}
	}
	t.Run("pull", func(t *testing.T) {
		startGroup(t, cc, group, topic)
		startGroup(t, cc, okGroup, topic)
		sendBatch(t, pc, msgs(topic))
		// A subscription with pressureTraffic gets everything.
		var all []string
		for _, d := range drain(t, cc, okGroup, 4) {
			all = append(all, string(d.msg.Value))
		}
		sort.Strings(all)
		if !slices.Equal(all, []string{"normal-0", "normal-3", "pressure-1", "pressure-2"}) {
			t.Errorf("pressureTraffic subscription got %q", all)
		}
		var bodies []string
		var ack *consumer.ConsumeResult_
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Contains(bodies, "normal-3") && time.Now().Before(deadline) {
			resp := pull(t, cc, group, 8, 100, ack)
			ack = nil
			if len(resp.Messages) > 0 {
				ack = &consumer.ConsumeResult_{Context: resp.Context}
			}
			for _, m := range resp.Messages {
				bodies = append(bodies, string(m.Value))
				ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
			}
		}
		if ack != nil {
			submit(t, cc, ack)
		}
		if !slices.Equal(bodies, []string{"normal-0", "normal-3"}) {
			t.Fatalf("delivered %q, want only the two messages without isPressureTraffic=true", bodies)
		}
		s.awaitCaughtUp(t, cc, group, topic)
	})
	t.Run("fetch", func(t *testing.T) {
		q0 := s.allQIDs()[0]
		fetch := func(offsets map[string]int64) *consumer.QidResponse {
			t.Helper()
			bs, ml := int32(100), int32(50)
			req := &consumer.FetchRequest{ConsumerId: "2@host#0", GroupId: lowGroup, Cluster: s.b.cluster,
				MaxBatchSize: &bs, MaxLingerTime: &ml}
			if offsets != nil {
				req.FetchOffset = map[string]map[string]int64{lowTopic: offsets}
			}
			resp, err := cc.Fetch(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resp.Results {
				if r.Qid == q0 {
					return r
				}
			}
			return nil
		}
		testenv.Eventually(t, 20*time.Second, q0+" assigned to the fetcher", func() bool { return fetch(nil) != nil })
		sendBatch(t, pc, msgs(lowTopic))
		var got []string
		next := int64(0)
		testenv.Eventually(t, 10*time.Second, "fetched up to offset 4", func() bool {
			r := fetch(map[string]int64{q0: next})
			for _, m := range r.Messages {
				got = append(got, fmt.Sprintf("%d:%s", m.Offset, m.Value))
			}
			next = r.GetNextRequestOffset()
			return next >= 4
		})
		if next != 4 || !slices.Equal(got, []string{"0:normal-0", "3:normal-3"}) {
			t.Fatalf("fetched %q up to %d, want [0:normal-0 3:normal-3] up to 4", got, next)
		}
	})
}
