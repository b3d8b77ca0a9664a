package protocoltest

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

type route = rm.TopicRouteData

func getRoute(t *testing.T, c *client, topic string) (int16, route) {
	t.Helper()
	resp := c.invoke(rm.GetRouteInfoByTopic, map[string]string{"topic": topic}, nil)
	var r route
	if resp.Code == rm.Success {
		if err := json.Unmarshal(resp.Body, &r); err != nil {
			t.Fatalf("route body %q: %v", resp.Body, err)
		}
	}
	return resp.Code, r
}

func routeBrokers(r route) []string {
	var out []string
	for _, q := range r.QueueDatas {
		out = append(out, q.BrokerName+":"+strconv.Itoa(q.WriteQueueNums)+":"+strconv.Itoa(q.Perm))
	}
	return out
}

func TestRouteAndTopicAdmin(t *testing.T) {
	b := startBroker(t, testenv.RocketMQBrokers("broker-a", "broker-b"))
	ns := dial(t, b.NameServer)
	b.CreateTopic("both", 4)

	code, r := getRoute(t, ns, "both")
	if code != rm.Success || !slices.Equal(routeBrokers(r), []string{"broker-a:4:6", "broker-b:4:6"}) {
		t.Fatalf("route of both: %d %v", code, routeBrokers(r))
	}
	for _, bd := range r.BrokerDatas {
		if bd.Cluster != "DefaultCluster" || bd.BrokerAddrs["0"] != b.BrokerAddr(bd.BrokerName) {
			t.Fatalf("broker data %+v", bd)
		}
	}
	if code, _ := getRoute(t, ns, "nope"); code != rm.TopicNotExist {
		t.Fatalf("unknown topic: code %d", code)
	}
	if code, r := getRoute(t, ns, "TBW102"); code != rm.Success || !slices.Equal(routeBrokers(r), []string{"broker-a:4:7", "broker-b:4:7"}) {
		t.Fatalf("template route: %d %v", code, routeBrokers(r))
	}

	// CREATE_TOPIC on broker-b only, then update its queue count.
	bb := dial(t, b.BrokerAddr("broker-b"))
	create := map[string]string{"topic": "onlyb", "readQueueNums": "2", "writeQueueNums": "2", "perm": "6"}
	bb.mustOK(rm.CreateTopic, create, nil)
	if _, r := getRoute(t, ns, "onlyb"); !slices.Equal(routeBrokers(r), []string{"broker-b:2:6"}) {
		t.Fatalf("route of onlyb: %v", routeBrokers(r))
	}
	create["writeQueueNums"], create["readQueueNums"] = "8", "8"
	bb.mustOK(rm.CreateTopic, create, nil)
	if _, r := getRoute(t, ns, "onlyb"); !slices.Equal(routeBrokers(r), []string{"broker-b:8:6"}) {
		t.Fatalf("route after update: %v", routeBrokers(r))
	}
	for _, bad := range []map[string]string{
		{"topic": "bad/name", "readQueueNums": "1", "writeQueueNums": "1"},
		{"topic": "ok", "readQueueNums": "0", "writeQueueNums": "1"},
		{"topic": "ok", "readQueueNums": "x", "writeQueueNums": "1"},
	} {
		if resp := bb.invoke(rm.CreateTopic, bad, nil); resp.Code != rm.SystemError {
			t.Fatalf("create %v: code %d", bad, resp.Code)
		}
	}

	// topic list from the NameServer
	resp := ns.mustOK(rm.GetAllTopicListFromNameServer, nil, nil)
	var list struct{ TopicList []string }
	if err := json.Unmarshal(resp.Body, &list); err != nil || !slices.Contains(list.TopicList, "both") || !slices.Contains(list.TopicList, "onlyb") {
		t.Fatalf("topic list %s: %v", resp.Body, err)
	}

	// 215 deletes on one broker, 216 everywhere
	bb.mustOK(rm.DeleteTopicInBroker, map[string]string{"topic": "both"}, nil)
	if _, r := getRoute(t, ns, "both"); !slices.Equal(routeBrokers(r), []string{"broker-a:4:6"}) {
		t.Fatalf("route after 215: %v", routeBrokers(r))
	}
	ns.mustOK(rm.DeleteTopicInNameSrv, map[string]string{"topic": "both"}, nil)
	if code, _ := getRoute(t, ns, "both"); code != rm.TopicNotExist {
		t.Fatalf("route after 216: code %d", code)
	}

	// cluster info
	resp = ns.mustOK(rm.GetBrokerClusterInfo, nil, nil)
	var ci struct {
		ClusterAddrTable map[string][]string `json:"clusterAddrTable"`
	}
	if err := json.Unmarshal(resp.Body, &ci); err != nil || !slices.Equal(ci.ClusterAddrTable["DefaultCluster"], []string{"broker-a", "broker-b"}) {
		t.Fatalf("cluster info %s: %v", resp.Body, err)
	}
	// broker requests on the NameServer-only listener are not supported
	if resp := ns.invoke(rm.PullMessage, pullReq{group: "g", topic: "onlyb"}.ext(), nil); resp.Code != rm.RequestCodeNotSupported {
		t.Fatalf("pull on nameserver: code %d", resp.Code)
	}
}

func TestSendPullByteExact(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("t", 2)
	c := dial(t, b.BrokerAddr("broker-a"))
	body := []byte{0, 1, 2, 0xff, 0xfe, '\n', 0x80}
	props := map[string]string{"TAGS": "tagA", "KEYS": "k1 k2", "UNIQ_KEY": "ID1", "user key": "välue=1;2", "empty": ""}
	ext := c.send("t", 1, body, props)
	if ext["queueId"] != "1" || ext["queueOffset"] != "0" {
		t.Fatalf("send answer %v", ext)
	}
	ext2 := c.send("t", 1, []byte("second"), nil)
	if ext2["queueOffset"] != "1" {
		t.Fatalf("second offset %v", ext2)
	}

	resp, msgs := c.pull(pullReq{group: "g", topic: "t", queueID: 1})
	if resp.Code != rm.Success || len(msgs) != 2 {
		t.Fatalf("pull: code %d, %d messages", resp.Code, len(msgs))
	}
	if extInt(t, resp, "nextBeginOffset") != 2 || extInt(t, resp, "maxOffset") != 2 || extInt(t, resp, "minOffset") != 0 {
		t.Fatalf("pull ext %v", resp.ExtFields)
	}
	m := msgs[0]
	local, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	if !bytes.Equal(m.Body, body) || m.Properties != rm.EncodeProperties(props) || m.Topic != "t" ||
		m.QueueID != 1 || m.QueueOffset != 0 || m.StoreHost != local || m.BodyCRC != rm.BodyCRC(body) ||
		!m.BornHost.Addr().IsLoopback() || m.StoreTimestamp == 0 {
		t.Fatalf("stored message %+v", m)
	}
	if ext["msgId"] != rm.OffsetMsgID(m.StoreHost, m.CommitLogOffset) {
		t.Fatalf("msgId %s, want %s", ext["msgId"], rm.OffsetMsgID(m.StoreHost, m.CommitLogOffset))
	}
	if msgs[1].CommitLogOffset <= m.CommitLogOffset {
		t.Fatalf("commit-log offsets not increasing: %d then %d", m.CommitLogOffset, msgs[1].CommitLogOffset)
	}
}

func TestBatchSend(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("bt", 4)
	c := dial(t, b.BrokerAddr("broker-a"))
	batch := []rm.BatchMessage{
		{Body: []byte("one"), Properties: "TAGS\x01x\x02"},
		{Flag: 3, Body: []byte{0, 0}, Properties: ""},
		{Body: bytes.Repeat([]byte("z"), 1000), Properties: "k\x01v\x02"},
	}
	body, _ := rm.EncodeBatch(batch)
	resp := c.mustOK(rm.SendBatchMessage, map[string]string{
		"a": "pg", "b": "bt", "c": "TBW102", "d": "4", "e": "2", "f": "0", "g": "1", "h": "0", "i": "",
		"j": "0", "k": "false", "l": "0", "m": "true",
	}, body)
	ids := strings.Split(resp.Ext("msgId"), ",")
	if len(ids) != 3 || resp.Ext("queueId") != "2" || resp.Ext("queueOffset") != "0" {
		t.Fatalf("batch answer %v", resp.ExtFields)
	}
	_, msgs := c.pull(pullReq{group: "g", topic: "bt", queueID: 2})
	if len(msgs) != 3 {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, m := range msgs {
		if !bytes.Equal(m.Body, batch[i].Body) || m.Properties != batch[i].Properties || m.Flag != batch[i].Flag ||
			m.QueueOffset != int64(i) || ids[i] != rm.OffsetMsgID(m.StoreHost, m.CommitLogOffset) {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	// a broken batch body is refused as illegal
	if resp := c.invoke(rm.SendBatchMessage, map[string]string{"b": "bt", "e": "0"}, body[:len(body)-1]); resp.Code != rm.MessageIllegal {
		t.Fatalf("broken batch: code %d", resp.Code)
	}
}

func TestSendErrors(t *testing.T) {
	b := startBroker(t, testenv.RocketMQNoAutoCreate(), func(o *rmqtb.Options) { o.MaxMessageSize = 1000 })
	b.CreateTopic("t", 2)
	c := dial(t, b.BrokerAddr("broker-a"))
	ext := func(topic, queue string) map[string]string {
		return map[string]string{"topic": topic, "queueId": queue, "properties": ""}
	}
	cases := []struct {
		name string
		ext  map[string]string
		body []byte
		want int16
	}{
		{"unknown topic without auto-create", ext("nope", "0"), []byte("x"), rm.TopicNotExist},
		{"queue beyond write queues", ext("t", "2"), []byte("x"), rm.SystemError},
		{"too large", ext("t", "0"), make([]byte, 1001), rm.MessageIllegal},
		{"empty body", ext("t", "0"), nil, rm.MessageIllegal},
		{"invalid topic", ext("a b", "0"), []byte("x"), rm.SystemError},
		{"system topic", ext("TBW102", "0"), []byte("x"), rm.NoPermission},
		{"bad queue id", ext("t", "x"), []byte("x"), rm.SystemError},
	}
	for _, tc := range cases {
		if resp := c.invoke(rm.SendMessage, tc.ext, tc.body); resp.Code != tc.want {
			t.Errorf("%s: code %d (%s), want %d", tc.name, resp.Code, resp.Remark, tc.want)
		}
	}
	// a read-only topic refuses sends with 16
	c.mustOK(rm.CreateTopic, map[string]string{"topic": "ro", "readQueueNums": "1", "writeQueueNums": "1", "perm": "4"}, nil)
	if resp := c.invoke(rm.SendMessage, ext("ro", "0"), []byte("x")); resp.Code != rm.NoPermission {
		t.Errorf("read-only topic: code %d", resp.Code)
	}
	// negative queue id picks a queue
	if resp := c.invoke(rm.SendMessage, ext("t", "-1"), []byte("x")); resp.Code != rm.Success {
		t.Errorf("queue -1: code %d", resp.Code)
	}
}

func TestAutoCreateOnSend(t *testing.T) {
	b := startBroker(t, testenv.RocketMQBrokers("broker-a", "broker-b"))
	ca := dial(t, b.BrokerAddr("broker-a"))
	ca.mustOK(rm.SendMessage, map[string]string{"topic": "auto", "queueId": "3", "defaultTopicQueueNums": "8"}, []byte("x"))
	ns := dial(t, b.NameServer)
	if _, r := getRoute(t, ns, "auto"); !slices.Equal(routeBrokers(r), []string{"broker-a:4:6"}) {
		t.Fatalf("auto-created route: %v", routeBrokers(r)) // min(8, DefaultQueues=4), only on the receiving broker
	}
}

func TestPullStatuses(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("t", 2)
	c := dial(t, b.BrokerAddr("broker-a"))
	for _, tag := range []string{"a", "b", "a", "c"} {
		c.send("t", 0, []byte("m-"+tag), map[string]string{"TAGS": tag})
	}
	cases := []struct {
		name     string
		req      pullReq
		code     int16
		next     int64
		bodies   []string
		topicErr bool
	}{
		{"empty queue at 0", pullReq{queueID: 1, offset: 0}, rm.PullNotFound, 0, nil, false},
		{"empty queue at 5", pullReq{queueID: 1, offset: 5}, rm.PullOffsetMoved, 0, nil, false},
		{"all", pullReq{offset: 0}, rm.Success, 4, []string{"m-a", "m-b", "m-a", "m-c"}, false},
		{"max 2", pullReq{offset: 1, max: 2}, rm.Success, 3, []string{"m-b", "m-a"}, false},
		{"at end", pullReq{offset: 4}, rm.PullNotFound, 4, nil, false},
		{"beyond end", pullReq{offset: 9}, rm.PullOffsetMoved, 0, nil, false},
		{"negative", pullReq{offset: -1}, rm.PullOffsetMoved, 0, nil, false},
		{"tag a", pullReq{sub: "a"}, rm.Success, 4, []string{"m-a", "m-a"}, false},
		{"tags b||c", pullReq{sub: "b || c", offset: 2}, rm.Success, 4, []string{"m-c"}, false},
		{"no match", pullReq{sub: "zz"}, rm.PullRetryImmediately, 4, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.group, tc.req.topic = "g", "t"
			resp, msgs := c.pull(tc.req)
			var bodies []string
			for _, m := range msgs {
				bodies = append(bodies, string(m.Body))
			}
			if resp.Code != tc.code || extInt(t, resp, "nextBeginOffset") != tc.next || !slices.Equal(bodies, tc.bodies) {
				t.Fatalf("code %d next %s bodies %v; want %d %d %v", resp.Code, resp.Ext("nextBeginOffset"), bodies, tc.code, tc.next, tc.bodies)
			}
		})
	}
	if resp, _ := c.pull(pullReq{group: "g", topic: "nope"}); resp.Code != rm.TopicNotExist {
		t.Fatalf("unknown topic: %d", resp.Code)
	}
	if resp, _ := c.pull(pullReq{group: "g", topic: "t", queueID: 7}); resp.Code != rm.SystemError {
		t.Fatalf("bad queue: %d", resp.Code)
	}
}

// awaitHeld waits until a pull on topic is parked at broker-a.
func awaitHeld(t *testing.T, b *testenv.RocketMQ, topic string) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, "a parked pull on "+topic, func() bool { return len(b.Server.HeldPulls("broker-a", topic)) > 0 })
}

func TestLongPoll(t *testing.T) {
	const hold = 400 * time.Millisecond
	b := startBroker(t, func(o *rmqtb.Options) { o.MaxPullHold = hold })
	b.CreateTopic("lp", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	producer := dial(t, b.BrokerAddr("broker-a"))
	longPoll := pullReq{group: "g", topic: "lp", sysFlag: rm.PullFlagSuspend, suspend: 20 * time.Second}

	// Nothing arrives: answered with 19 after the hold.
	start := time.Now()
	resp, _ := c.pull(longPoll)
	if d := time.Since(start); resp.Code != rm.PullNotFound || d < hold-50*time.Millisecond || d > hold+time.Second {
		t.Fatalf("idle hold: code %d after %v", resp.Code, d)
	}
	// The request's own suspend time applies when shorter.
	short := longPoll
	short.suspend = 100 * time.Millisecond
	start = time.Now()
	if resp, _ := c.pull(short); resp.Code != rm.PullNotFound || time.Since(start) > hold {
		t.Fatalf("short suspend: code %d after %v", resp.Code, time.Since(start))
	}

	// A message arrives during the hold: answered promptly.
	type result struct {
		resp *rm.Command
		at   time.Time
	}
	done := make(chan result, 1)
	go func() {
		r, err := c.Invoke(context.Background(), rm.NewRequest(rm.PullMessage, longPoll.ext(), nil))
		if err != nil {
			t.Error(err)
		}
		done <- result{r, time.Now()}
	}()
	awaitHeld(t, b, "lp")
	sent := time.Now()
	producer.send("lp", 0, []byte("wake"), nil)
	r := <-done
	lat := r.at.Sub(sent)
	msgs, _ := rm.DecodeStoredMessages(r.resp.Body)
	if r.resp.Code != rm.Success || len(msgs) != 1 || string(msgs[0].Body) != "wake" || lat > 200*time.Millisecond {
		t.Fatalf("woken pull: code %d, %d messages, %v after the send", r.resp.Code, len(msgs), lat)
	}
	t.Logf("long-poll answered %v after the send", lat)

	// A held pull whose tag does not match keeps waiting.
	filtered := longPoll
	filtered.offset, filtered.sub = 1, "x"
	start = time.Now()
	go func() {
		time.Sleep(50 * time.Millisecond)
		producer.send("lp", 0, []byte("untagged"), nil)
	}()
	if resp, _ := c.pull(filtered); time.Since(start) < hold-50*time.Millisecond || resp.Code == rm.Success {
		t.Fatalf("filtered pull answered early: code %d after %v", resp.Code, time.Since(start))
	}
}

func TestCloseAnswersHeldPulls(t *testing.T) {
	b := startBroker(t, func(o *rmqtb.Options) { o.MaxPullHold = time.Minute })
	b.CreateTopic("lp", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	done := make(chan *rm.Command, 1)
	go func() {
		r, _ := c.Invoke(context.Background(), rm.NewRequest(rm.PullMessage,
			pullReq{group: "g", topic: "lp", sysFlag: rm.PullFlagSuspend, suspend: time.Minute}.ext(), nil))
		done <- r
	}()
	awaitHeld(t, b, "lp")
	start := time.Now()
	b.Stop()
	select {
	case r := <-done:
		if r == nil || r.Code != rm.PullNotFound {
			t.Fatalf("held pull answered with %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("held pull not answered on Close")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestConsumerOffsets(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("t", 2)
	c := dial(t, b.BrokerAddr("broker-a"))
	q := map[string]string{"consumerGroup": "g", "topic": "t", "queueId": "1"}
	if resp := c.invoke(rm.QueryConsumerOffset, q, nil); resp.Code != rm.QueryNotFound {
		t.Fatalf("no offset: code %d", resp.Code)
	}
	u := map[string]string{"consumerGroup": "g", "topic": "t", "queueId": "1", "commitOffset": "7"}
	c.mustOK(rm.UpdateConsumerOffset, u, nil)
	if resp := c.mustOK(rm.QueryConsumerOffset, q, nil); resp.Ext("offset") != "7" {
		t.Fatalf("offset %v", resp.ExtFields)
	}
	// PULL with the commit flag stores commitOffset
	c.pull(pullReq{group: "g", topic: "t", queueID: 1, sysFlag: rm.PullFlagCommitOffset, commit: 9})
	if resp := c.mustOK(rm.QueryConsumerOffset, q, nil); resp.Ext("offset") != "9" {
		t.Fatalf("offset after pull commit %v", resp.ExtFields)
	}
	if resp := c.invoke(rm.UpdateConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "t", "queueId": "1"}, nil); resp.Code != rm.SystemError {
		t.Fatalf("update without commitOffset: code %d", resp.Code)
	}

	before := time.Now().UnixMilli()
	for i := range 3 {
		c.send("t", 0, []byte{byte(i)}, nil)
		if i == 0 {
			time.Sleep(20 * time.Millisecond) // distinct store timestamps for the search below
		}
	}
	mid := time.Now().UnixMilli() - 5
	qo := func(code int16, ext map[string]string) string { return c.mustOK(code, ext, nil).Ext("offset") }
	if got := qo(rm.GetMaxOffset, map[string]string{"topic": "t", "queueId": "0"}); got != "3" {
		t.Fatalf("max offset %s", got)
	}
	if got := qo(rm.GetMinOffset, map[string]string{"topic": "t", "queueId": "0"}); got != "0" {
		t.Fatalf("min offset %s", got)
	}
	if got := qo(rm.GetMaxOffset, map[string]string{"topic": "nope", "queueId": "0"}); got != "0" {
		t.Fatalf("max offset of unknown topic %s", got)
	}
	search := func(ts int64) string {
		return qo(rm.SearchOffsetByTimestamp, map[string]string{"topic": "t", "queueId": "0", "timestamp": strconv.FormatInt(ts, 10)})
	}
	if got := search(before - 1000); got != "0" {
		t.Fatalf("search before all: %s", got)
	}
	if got := search(mid); got != "1" && got != "2" {
		t.Fatalf("search mid: %s", got)
	}
	if got := search(time.Now().UnixMilli() + 1000); got != "3" {
		t.Fatalf("search after all: %s", got)
	}
}

func TestMembershipNotifications(t *testing.T) {
	b := startBroker(t, testenv.RocketMQClientExpiry(400*time.Millisecond))
	b.CreateTopic("t", 4)
	addr := b.BrokerAddr("broker-a")
	a, bm := dial(t, addr), dial(t, addr)
	list := func() []string {
		resp := a.invoke(rm.GetConsumerListByGroup, map[string]string{"consumerGroup": "g"}, nil)
		if resp.Code != rm.Success {
			return nil
		}
		var l struct{ ConsumerIDList []string }
		if err := json.Unmarshal(resp.Body, &l); err != nil {
			t.Fatal(err)
		}
		return l.ConsumerIDList
	}
	if resp := a.invoke(rm.GetConsumerListByGroup, map[string]string{"consumerGroup": "g"}, nil); resp.Code != rm.SystemError {
		t.Fatalf("empty group: code %d", resp.Code)
	}
	a.heartbeat("A", "g", "t")
	a.waitNotify("g", 2*time.Second) // the first member is told too
	bm.heartbeat("B", "g", "t")
	a.waitNotify("g", 2*time.Second) // A learns about B
	if got := list(); !slices.Equal(got, []string{"A", "B"}) {
		t.Fatalf("list %v", got)
	}
	// a repeated heartbeat with the same subscriptions changes nothing
	a.drainNotify()
	a.heartbeat("A", "g", "t")
	select {
	case r := <-a.notify:
		t.Fatalf("unexpected notification %v", r)
	case <-time.After(100 * time.Millisecond):
	}
	// the retry topic exists after the heartbeat
	if code, _ := getRoute(t, a, "%RETRY%g"); code != rm.Success {
		t.Fatalf("retry topic route: %d", code)
	}

	// B unregisters (35) → A is told
	bm.mustOK(rm.UnregisterClient, map[string]string{"clientID": "B", "consumerGroup": "g"}, nil)
	a.waitNotify("g", 2*time.Second)
	if got := list(); !slices.Equal(got, []string{"A"}) {
		t.Fatalf("list after unregister %v", got)
	}
	// B joins again and its connection closes → A is told
	bm.heartbeat("B", "g", "t")
	a.waitNotify("g", 2*time.Second)
	bm.Close()
	a.waitNotify("g", 2*time.Second)
	if got := list(); !slices.Equal(got, []string{"A"}) {
		t.Fatalf("list after close %v", got)
	}

	// C goes silent → expires; A (heartbeating) stays and is told
	cm := dial(t, addr)
	cm.heartbeat("C", "g", "t")
	a.waitNotify("g", 2*time.Second)
	stop := make(chan struct{})
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				a.heartbeat("A", "g", "t")
			}
		}
	}()
	start := time.Now()
	a.drainNotify()
	a.waitNotify("g", 3*time.Second)
	close(stop)
	<-beats
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("C expired after only %v", d)
	}
	if got := list(); !slices.Equal(got, []string{"A"}) {
		t.Fatalf("list after expiry %v", got)
	}
}

func TestSendBackRetryAndDLQ(t *testing.T) {
	b := startBroker(t)
	b.CreateTopic("t", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	c.send("t", 0, []byte("payload"), map[string]string{"TAGS": "x", "UNIQ_KEY": "U1", "p": "v"})
	_, msgs := c.pull(pullReq{group: "g", topic: "t"})
	orig := msgs[0]

	sendBack := func(m rm.StoredMessage, maxTimes string) {
		t.Helper()
		c.mustOK(rm.ConsumerSendMsgBack, map[string]string{
			"group": "g", "offset": strconv.FormatInt(m.CommitLogOffset, 10), "delayLevel": "0",
			"originMsgId": "U1", "originTopic": "t", "unitMode": "false", "maxReconsumeTimes": maxTimes,
		}, nil)
	}
	waitRetry := func(topic string, offset int64) rm.StoredMessage {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			resp, msgs := c.pull(pullReq{group: "g", topic: topic, offset: offset})
			if resp.Code == rm.Success {
				return msgs[0]
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("nothing in %s at %d", topic, offset)
		return rm.StoredMessage{}
	}
	start := time.Now()
	sendBack(orig, "2")
	r1 := waitRetry("%RETRY%g", 0)
	if d := time.Since(start); d < 90*time.Millisecond { // level 3 = 10 s / 100
		t.Fatalf("redelivered after %v, before the level-3 delay", d)
	}
	p1 := rm.DecodeProperties(r1.Properties)
	if string(r1.Body) != "payload" || r1.ReconsumeTimes != 1 || p1["RETRY_TOPIC"] != "t" || p1["ORIGIN_MESSAGE_ID"] != "U1" ||
		p1["TAGS"] != "x" || p1["p"] != "v" || p1["UNIQ_KEY"] != "U1" || r1.Topic != "%RETRY%g" || p1["DELAY"] != "" {
		t.Fatalf("retry message %+v props %v", r1, p1)
	}
	sendBack(r1, "2")
	r2 := waitRetry("%RETRY%g", 1)
	if r2.ReconsumeTimes != 2 || rm.DecodeProperties(r2.Properties)["RETRY_TOPIC"] != "t" {
		t.Fatalf("second retry %+v", r2)
	}
	sendBack(r2, "2") // reconsumeTimes 2 ≥ max 2 → DLQ at once
	d := waitRetry("%DLQ%g", 0)
	if string(d.Body) != "payload" || d.ReconsumeTimes != 3 {
		t.Fatalf("DLQ message %+v", d)
	}
	if resp := c.invoke(rm.ConsumerSendMsgBack, map[string]string{"group": "g", "offset": "123456789"}, nil); resp.Code != rm.SystemError {
		t.Fatalf("send back of unknown offset: code %d", resp.Code)
	}
}

func TestDelayedProducerMessage(t *testing.T) {
	levels := []time.Duration{300 * time.Millisecond, time.Hour}
	b := startBroker(t, func(o *rmqtb.Options) { o.DelayLevels = levels })
	b.CreateTopic("t", 1)
	c := dial(t, b.BrokerAddr("broker-a"))
	start := time.Now()
	c.send("t", 0, []byte("later"), map[string]string{"DELAY": "1"})
	if resp, _ := c.pull(pullReq{group: "g", topic: "t"}); resp.Code != rm.PullNotFound && time.Since(start) < levels[0] {
		t.Fatalf("delayed message visible at once: code %d", resp.Code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if resp, msgs := c.pull(pullReq{group: "g", topic: "t"}); resp.Code == rm.Success {
			if d := time.Since(start); d < levels[0]-20*time.Millisecond {
				t.Fatalf("delivered after %v", d)
			}
			p := rm.DecodeProperties(msgs[0].Properties)
			if string(msgs[0].Body) != "later" || p["REAL_TOPIC"] != "t" || p["DELAY"] != "" {
				t.Fatalf("delivered %+v %v", msgs[0], p)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("delayed message never delivered")
}

func TestUnknownCodeAndMalformedFrames(t *testing.T) {
	b := startBroker(t)
	addr := b.BrokerAddr("broker-a")
	good := dial(t, addr)
	if resp := good.invoke(999, nil, nil); resp.Code != rm.RequestCodeNotSupported {
		t.Fatalf("unknown code: %d", resp.Code)
	}
	bad := [][]byte{
		{0, 0, 0, 8, 1, 0, 0, 2, '{', '}', 0, 0},                          // codec 1
		{0, 0, 0, 6, 0, 0, 0, 2, 'x', 'y'},                                // not JSON
		{0x7f, 0xff, 0xff, 0xff},                                          // oversize length
		{0, 0, 0, 4, 0, 0, 0xff, 0xff},                                    // header beyond frame
		{0, 0, 0, 1, 0},                                                   // too short
		{0, 0, 0, 12, 0, 0, 0, 8, '{', '"', 'c', 'o', 'd', 'e', '"', ':'}, // truncated JSON object
	}
	for i, frame := range bad {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write(frame)
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var buf [1]byte
		if _, err := nc.Read(buf[:]); err == nil {
			t.Fatalf("frame %d: connection still open", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("frame %d: connection not closed", i)
		}
		nc.Close()
	}
	// the well-behaved client is unaffected
	if resp := good.invoke(rm.GetMaxOffset, map[string]string{"topic": "x", "queueId": "0"}, nil); resp.Code != rm.Success {
		t.Fatalf("good client after bad ones: %d", resp.Code)
	}
	// a bad heartbeat body is an error answer, not a disconnect
	if resp := good.invoke(rm.HeartBeat, nil, []byte("{not json")); resp.Code != rm.SystemError {
		t.Fatalf("bad heartbeat: %d", resp.Code)
	}
}

func TestLockUnlock(t *testing.T) {
	b := startBroker(t)
	c := dial(t, b.BrokerAddr("broker-a"))
	body := func(client string, queues ...int) []byte {
		var mqs []map[string]any
		for _, q := range queues {
			mqs = append(mqs, map[string]any{"topic": "t", "brokerName": "broker-a", "queueId": q})
		}
		out, _ := json.Marshal(map[string]any{"consumerGroup": "g", "clientId": client, "mqSet": mqs})
		return out
	}
	locked := func(resp *rm.Command) []int {
		var r struct {
			LockOKMQSet []struct{ QueueID int } `json:"lockOKMQSet"`
		}
		if err := json.Unmarshal(resp.Body, &r); err != nil {
			t.Fatal(err)
		}
		var out []int
		for _, mq := range r.LockOKMQSet {
			out = append(out, mq.QueueID)
		}
		return out
	}
	if got := locked(c.mustOK(rm.LockBatchMQ, nil, body("A", 0, 1))); !slices.Equal(got, []int{0, 1}) {
		t.Fatalf("A locked %v", got)
	}
	if got := locked(c.mustOK(rm.LockBatchMQ, nil, body("B", 1, 2))); !slices.Equal(got, []int{2}) {
		t.Fatalf("B locked %v", got)
	}
	c.mustOK(rm.UnlockBatchMQ, nil, body("A", 1))
	if got := locked(c.mustOK(rm.LockBatchMQ, nil, body("B", 1))); !slices.Equal(got, []int{1}) {
		t.Fatalf("B after unlock %v", got)
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, testenv.RocketMQDataDir(dir), testenv.RocketMQBrokers("broker-a", "broker-b"))
	b.CreateTopic("t", 2)
	c := dial(t, b.BrokerAddr("broker-b"))
	var want [][]byte
	for i := range 5 {
		body := append([]byte("msg-"), byte(i), 0xff)
		want = append(want, body)
		c.send("t", 1, body, map[string]string{"TAGS": "x", "k": strconv.Itoa(i)})
	}
	c.mustOK(rm.UpdateConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "t", "queueId": "1", "commitOffset": "3"}, nil)
	_, before := c.pull(pullReq{group: "g", topic: "t", queueID: 1})

	b.Stop()
	// simulate a crash in the middle of an append: a torn record at the end
	qf := filepath.Join(dir, "broker-b", "store", "t", "1.log")
	f, err := os.OpenFile(qf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 0xda, 0xa3})
	f.Close()
	b.Restart()

	c = dial(t, b.BrokerAddr("broker-b"))
	resp, after := c.pull(pullReq{group: "g", topic: "t", queueID: 1})
	if resp.Code != rm.Success || len(after) != 5 {
		t.Fatalf("after restart: code %d, %d messages", resp.Code, len(after))
	}
	for i := range after {
		if !bytes.Equal(after[i].Body, want[i]) || after[i].Properties != before[i].Properties ||
			after[i].CommitLogOffset != before[i].CommitLogOffset || after[i].StoreTimestamp != before[i].StoreTimestamp {
			t.Fatalf("message %d changed: %+v vs %+v", i, after[i], before[i])
		}
	}
	if got := c.mustOK(rm.QueryConsumerOffset, map[string]string{"consumerGroup": "g", "topic": "t", "queueId": "1"}, nil).Ext("offset"); got != "3" {
		t.Fatalf("offset after restart %s", got)
	}
	// new messages continue the queue and the commit log
	ext := c.send("t", 1, []byte("new"), nil)
	if ext["queueOffset"] != "5" {
		t.Fatalf("offset of the first new message %v", ext)
	}
	_, all := c.pull(pullReq{group: "g", topic: "t", queueID: 1, offset: 5})
	if len(all) != 1 || all[0].CommitLogOffset <= before[4].CommitLogOffset {
		t.Fatalf("new message %+v", all)
	}
	// the retained topic is routed again
	if code, r := getRoute(t, dial(t, b.NameServer), "t"); code != rm.Success || len(r.QueueDatas) != 2 {
		t.Fatalf("route after restart: %d %v", code, routeBrokers(r))
	}
}
