package protocoltest

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// sent is what a test sent to one queue, in order.
type sent struct {
	body  []byte
	props map[string]string
}

// pullAll pulls (topic, queue) from offset to the end with PULLs of max
// messages and filter sub, and returns what they carried.
func pullAll(t *testing.T, c *client, topic string, queue int, offset int64, max int, sub string) []rm.StoredMessage {
	t.Helper()
	var out []rm.StoredMessage
	for {
		resp, msgs := c.pull(pullReq{group: "g", topic: topic, queueID: queue, offset: offset, max: max, sub: sub})
		switch resp.Code {
		case rm.Success, rm.PullRetryImmediately:
			out = append(out, msgs...)
			offset = extInt(t, resp, "nextBeginOffset")
		case rm.PullNotFound:
			return out
		default:
			t.Fatalf("pull %s/%d at %d: code %d %s", topic, queue, offset, resp.Code, resp.Remark)
		}
	}
}

// TestStorageSegmentsByteExact stores messages of very different sizes in
// one queue — small ones, 1 KiB ones and one larger than a storage
// segment — so that they spread over many segments, and checks that
// PULLs of every batch size and with tag filters return them byte-exact,
// and that timestamp search and send-back still find them.
func TestStorageSegmentsByteExact(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("seg", 2)
	c := dial(t, b.BrokerAddr("broker-a"))
	var want []sent
	add := func(body []byte, tag string) {
		props := map[string]string{"i": strconv.Itoa(len(want))}
		if tag != "" {
			props["TAGS"] = tag
		}
		c.send("seg", 1, body, props)
		want = append(want, sent{body, props})
	}
	tags := []string{"a", "b", "", "c"}
	for i := range 600 {
		size := 1 + i%7
		if i%3 == 0 {
			size = 1024 + i
		}
		body := bytes.Repeat([]byte{byte(i)}, size)
		add(body, tags[i%len(tags)])
		if i == 300 {
			big := make([]byte, 3<<20)
			for j := range big {
				big[j] = byte(j * 7)
			}
			add(big, "big")
		}
	}
	check := func(name string, got []rm.StoredMessage, keep func(sent) bool) {
		t.Helper()
		var exp []int
		for i, s := range want {
			if keep(s) {
				exp = append(exp, i)
			}
		}
		if len(got) != len(exp) {
			t.Fatalf("%s: %d messages, want %d", name, len(got), len(exp))
		}
		for k, i := range exp {
			m := got[k]
			if m.QueueOffset != int64(i) || !bytes.Equal(m.Body, want[i].body) ||
				m.Properties != rm.EncodeProperties(want[i].props) || m.BodyCRC != rm.BodyCRC(want[i].body) || m.Topic != "seg" {
				t.Fatalf("%s: message %d: offset %d, %d body bytes, props %q", name, k, m.QueueOffset, len(m.Body), m.Properties)
			}
		}
	}
	all := func(sent) bool { return true }
	for _, max := range []int{1, 5, 32} {
		check("max "+strconv.Itoa(max), pullAll(t, c, "seg", 1, 0, max, "*"), all)
	}
	check("tag a", pullAll(t, c, "seg", 1, 0, 32, "a"), func(s sent) bool { return s.props["TAGS"] == "a" })
	check("tags b||big", pullAll(t, c, "seg", 1, 0, 32, "b||big"),
		func(s sent) bool { return s.props["TAGS"] == "b" || s.props["TAGS"] == "big" })
	// A PULL answer stays within 256 KiB unless one message alone is larger.
	resp, msgs := c.pull(pullReq{group: "g", topic: "seg", queueID: 1, offset: 300})
	if resp.Code != rm.Success || len(msgs) != 1 || len(msgs[0].Body) != 1024+300 {
		t.Fatalf("pull before the big message: code %d, %d messages", resp.Code, len(msgs))
	}
	resp, msgs = c.pull(pullReq{group: "g", topic: "seg", queueID: 1, offset: 301})
	if resp.Code != rm.Success || len(msgs) != 1 || len(msgs[0].Body) != 3<<20 {
		t.Fatalf("pull of the big message: code %d, %d messages", resp.Code, len(msgs))
	}

	// Timestamp search over the stored messages.
	_, first := c.pull(pullReq{group: "g", topic: "seg", queueID: 1, offset: 0, max: 1})
	_, last := c.pull(pullReq{group: "g", topic: "seg", queueID: 1, offset: int64(len(want) - 1), max: 1})
	search := func(ts int64) int64 {
		return extInt(t, c.mustOK(rm.SearchOffsetByTimestamp, map[string]string{
			"topic": "seg", "queueId": "1", "timestamp": strconv.FormatInt(ts, 10)}, nil), "offset")
	}
	if got := search(first[0].StoreTimestamp - 1); got != 0 {
		t.Fatalf("search before the first message: %d", got)
	}
	if got := search(last[0].StoreTimestamp + 1); got != int64(len(want)) {
		t.Fatalf("search after the last message: %d, want %d", got, len(want))
	}
	if got := search(last[0].StoreTimestamp); got > int64(len(want)-1) {
		t.Fatalf("search at the last message's time: %d", got)
	}

	// Send-back finds a message in the middle by its commit-log offset.
	_, mid := c.pull(pullReq{group: "g", topic: "seg", queueID: 1, offset: 301, max: 1})
	c.mustOK(rm.ConsumerSendMsgBack, map[string]string{"group": "g", "offset": strconv.FormatInt(mid[0].CommitLogOffset, 10),
		"delayLevel": "-1", "maxReconsumeTimes": "16"}, nil)
	_, dlq := c.pull(pullReq{group: "g", topic: "%DLQ%g"})
	if len(dlq) != 1 || !bytes.Equal(dlq[0].Body, want[301].body) {
		t.Fatalf("send-back of the big message: %d messages in the DLQ", len(dlq))
	}
}

// TestConcurrentPullsOneConnection has many PULLs in flight on one
// connection at once (their answers are written together) and checks
// every answer.
func TestConcurrentPullsOneConnection(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("cc", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	const n = 200
	for i := range n {
		c.send("cc", 0, []byte(strconv.Itoa(i)+"-"+string(bytes.Repeat([]byte("x"), i*10))), nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := c.Invoke(ctx, rm.NewRequest(rm.PullMessage, pullReq{group: "g", topic: "cc", offset: int64(i), max: 3}.ext(), nil))
			if err != nil {
				errs <- err.Error()
				return
			}
			msgs, err := rm.DecodeStoredMessages(resp.Body)
			if err != nil || len(msgs) != min(3, n-i) || msgs[0].QueueOffset != int64(i) ||
				!bytes.HasPrefix(msgs[0].Body, []byte(strconv.Itoa(i)+"-")) || len(msgs[0].Body) != len(strconv.Itoa(i))+1+i*10 {
				errs <- "pull at " + strconv.Itoa(i) + ": bad answer"
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestFramesOfChangingSize sends frames of very different sizes on one
// connection (the broker reuses its read buffer for frames up to 1 MiB).
func TestFramesOfChangingSize(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("fs", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	sizes := []int{10, 100000, 5, 2 << 20, 7, 900000, 3}
	for i, size := range sizes {
		c.send("fs", 0, bytes.Repeat([]byte{byte('a' + i)}, size), map[string]string{"n": strconv.Itoa(i)})
	}
	got := pullAll(t, c, "fs", 0, 0, 32, "*")
	if len(got) != len(sizes) {
		t.Fatalf("%d messages", len(got))
	}
	for i, m := range got {
		if !bytes.Equal(m.Body, bytes.Repeat([]byte{byte('a' + i)}, sizes[i])) || rm.DecodeProperties(m.Properties)["n"] != strconv.Itoa(i) {
			t.Fatalf("message %d: %d body bytes, props %q", i, len(m.Body), m.Properties)
		}
	}
}

// TestHeldPullGetsWholeBatch: a held PULL is answered once a batch is
// stored, with all of it.
func TestHeldPullGetsWholeBatch(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("hb", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	producer := dial(t, b.BrokerAddr("broker-a"))
	type answer struct {
		resp *rm.Command
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := c.Invoke(ctx, rm.NewRequest(rm.PullMessage,
			pullReq{group: "g", topic: "hb", sysFlag: rm.PullFlagSuspend, suspend: 5 * time.Second}.ext(), nil))
		done <- answer{resp, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(b.Server.HeldPulls("broker-a", "hb")[0]) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the PULL was not held")
		}
		time.Sleep(5 * time.Millisecond)
	}
	batch := make([]rm.BatchMessage, 10)
	for i := range batch {
		batch[i] = rm.BatchMessage{Body: []byte("b" + strconv.Itoa(i))}
	}
	body, _ := rm.EncodeBatch(batch)
	producer.mustOK(rm.SendBatchMessage, map[string]string{"b": "hb", "e": "0"}, body)
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	msgs, err := rm.DecodeStoredMessages(a.resp.Body)
	if a.resp.Code != rm.Success || err != nil || len(msgs) != len(batch) {
		t.Fatalf("held pull answered with code %d, %d messages (%v), want the batch of %d", a.resp.Code, len(msgs), err, len(batch))
	}
}

// TestRetention bounds the broker's stored bytes: the oldest messages go,
// min offsets advance (GET_MIN_OFFSET, PULL statuses, timestamp search,
// send-back), the newest stay, and delayed messages waiting for their time
// are kept.
func TestRetention(t *testing.T) {
	const limit = 256 << 10
	levels := []time.Duration{1500 * time.Millisecond}
	b := startBroker(t, testenv.RocketMQRetentionBytes(limit), func(o *rmqtb.Options) { o.DelayLevels = levels })
	b.CreateTopic("rt", 2)
	b.CreateTopic("rtd", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	start := time.Now()
	c.send("rtd", 0, []byte("delayed"), map[string]string{"DELAY": "1"}) // waits in the schedule topic
	// 40 batches of 50 messages of 1 KiB, alternating between the queues;
	// each body starts with its queue offset.
	const perQueue = 1000
	var firstCLO int64
	var next [2]int
	for j := range 40 {
		q := j % 2
		batch := make([]rm.BatchMessage, 50)
		for i := range batch {
			batch[i] = rm.BatchMessage{Body: append([]byte(strconv.Itoa(next[q])+":"), bytes.Repeat([]byte("r"), 1024)...)}
			next[q]++
		}
		body, _ := rm.EncodeBatch(batch)
		resp := c.mustOK(rm.SendBatchMessage, map[string]string{"b": "rt", "e": strconv.Itoa(q)}, body)
		if j == 0 {
			_, clo, err := rm.ParseOffsetMsgID(strings.Split(resp.Ext("msgId"), ",")[0])
			if err != nil {
				t.Fatal(err)
			}
			firstCLO = clo
		}
	}
	// Each queue keeps its newest segment (up to 1 MiB) whatever the limit.
	if got := b.Server.StoredBytes("broker-a"); got > limit+2<<20 {
		t.Fatalf("broker holds %d bytes with a limit of %d", got, limit)
	}
	for q := range 2 {
		qs := strconv.Itoa(q)
		minOff := extInt(t, c.mustOK(rm.GetMinOffset, map[string]string{"topic": "rt", "queueId": qs}, nil), "offset")
		maxOff := extInt(t, c.mustOK(rm.GetMaxOffset, map[string]string{"topic": "rt", "queueId": qs}, nil), "offset")
		if minOff <= 0 || maxOff != perQueue || minOff >= maxOff || minOff != b.Server.MinOffset("broker-a", "rt", q) {
			t.Fatalf("queue %d: min %d max %d", q, minOff, maxOff)
		}
		resp, _ := c.pull(pullReq{group: "g", topic: "rt", queueID: q, offset: 0})
		if resp.Code != rm.PullOffsetMoved || extInt(t, resp, "nextBeginOffset") != minOff || extInt(t, resp, "minOffset") != minOff {
			t.Fatalf("queue %d: pull below min: code %d ext %v", q, resp.Code, resp.ExtFields)
		}
		resp, _ = c.pull(pullReq{group: "g", topic: "rt", queueID: q, offset: maxOff + 5})
		if resp.Code != rm.PullOffsetMoved || extInt(t, resp, "nextBeginOffset") != maxOff {
			t.Fatalf("queue %d: pull beyond max: code %d ext %v", q, resp.Code, resp.ExtFields)
		}
		got := pullAll(t, c, "rt", q, minOff, 32, "*")
		if int64(len(got)) != maxOff-minOff {
			t.Fatalf("queue %d: %d messages kept, want %d", q, len(got), maxOff-minOff)
		}
		for k, m := range got {
			off := minOff + int64(k)
			if m.QueueOffset != off || !bytes.HasPrefix(m.Body, []byte(strconv.FormatInt(off, 10)+":")) {
				t.Fatalf("queue %d: message %d at offset %d: %q...", q, k, m.QueueOffset, m.Body[:8])
			}
		}
		ts := extInt(t, c.mustOK(rm.SearchOffsetByTimestamp, map[string]string{"topic": "rt", "queueId": qs, "timestamp": "0"}, nil), "offset")
		if ts != minOff {
			t.Fatalf("queue %d: search from time 0: %d, want min %d", q, ts, minOff)
		}
	}
	// The dropped first message cannot be sent back.
	if resp := c.invoke(rm.ConsumerSendMsgBack, map[string]string{"group": "g", "offset": strconv.FormatInt(firstCLO, 10)}, nil); resp.Code != rm.SystemError {
		t.Fatalf("send back of a dropped message: code %d", resp.Code)
	}
	// The delayed message survived in the schedule topic and is delivered.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, msgs := c.pull(pullReq{group: "g", topic: "rtd"})
		if len(msgs) == 1 && string(msgs[0].Body) == "delayed" {
			if d := time.Since(start); d < levels[0]-20*time.Millisecond {
				t.Fatalf("delivered after %v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the delayed message was not delivered")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRetentionAfterRestart: the files keep every message; a restart
// reloads them and trims to the bound again.
func TestRetentionAfterRestart(t *testing.T) {
	b := startBroker(t, testenv.RocketMQDataDir(t.TempDir()), testenv.RocketMQRetentionBytes(64<<10))
	b.CreateTopic("rr", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	const n = 300
	for i := range n {
		c.send("rr", 0, append([]byte(strconv.Itoa(i)+":"), bytes.Repeat([]byte("x"), 1024)...), nil)
	}
	if b.Server.MinOffset("broker-a", "rr", 0) == 0 {
		t.Fatal("nothing dropped before the restart")
	}
	b.Restart()
	c = dial(t, b.BrokerAddr("broker-a"))
	minOff := b.Server.MinOffset("broker-a", "rr", 0)
	if minOff == 0 || b.Server.MaxOffset("broker-a", "rr", 0) != n {
		t.Fatalf("after the restart: min %d max %d", minOff, b.Server.MaxOffset("broker-a", "rr", 0))
	}
	got := pullAll(t, c, "rr", 0, minOff, 32, "*")
	if int64(len(got)) != n-minOff {
		t.Fatalf("%d messages kept, want %d", len(got), n-minOff)
	}
	for k, m := range got {
		off := minOff + int64(k)
		if m.QueueOffset != off || !bytes.HasPrefix(m.Body, []byte(strconv.FormatInt(off, 10)+":")) || len(m.Body) != len(strconv.FormatInt(off, 10))+1+1024 {
			t.Fatalf("message at %d: offset %d, %d bytes", off, m.QueueOffset, len(m.Body))
		}
	}
}
