package rocketmq

import (
	"bytes"
	"compress/zlib"
	"net/netip"
	"testing"

	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

func TestTagFilter(t *testing.T) {
	for _, c := range []struct {
		expr    string
		wantStr string
		match   map[string]bool
	}{
		{"", "*", map[string]bool{"": true, "a": true}},
		{"*", "*", map[string]bool{"": true, "x": true}},
		{" a || b ", "a || b", map[string]bool{"a": true, "b": true, "c": false, "": false}},
		{"||", "*", map[string]bool{"z": true}},
	} {
		f := newTagFilter(c.expr)
		if f.expr != c.wantStr {
			t.Fatalf("%q: expr %q, want %q", c.expr, f.expr, c.wantStr)
		}
		for tag, want := range c.match {
			if f.match(tag) != want {
				t.Fatalf("%q: match(%q) = %v", c.expr, tag, !want)
			}
		}
	}
}

func TestToDelivery(t *testing.T) {
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	body := bytes.Repeat([]byte("payload-"), 1000)
	_, _ = zw.Write(body)
	_ = zw.Close()
	props := map[string]string{
		"KEYS": "k1", "TAGS": "tagA", "UNIQ_KEY": "ABC", "WAIT": "true", "traceId": "t1", "RETRY_TOPIC": "orders",
	}
	sm := &remoting.StoredMessage{
		QueueID: 3, QueueOffset: 42, CommitLogOffset: 9000, SysFlag: remoting.FlagCompressed,
		BornTimestamp: 1700000000123, StoreHost: netip.MustParseAddrPort("127.0.0.1:10911"),
		ReconsumeTimes: 2, Body: z.Bytes(), Topic: "%RETRY%g",
		Properties: remoting.EncodeProperties(props),
	}
	q := mqueue{Topic: "%RETRY%g", Broker: "broker-a", QueueID: 3}
	p, _ := QueuePartition(q.Broker, q.QueueID)
	d, err := toDelivery(q, p, sm, storedProps(sm))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(d.Body, body) || d.Key != "k1" || d.Tags != "tagA" || d.Offset != 42 || d.Partition != p ||
		d.Topic != "%RETRY%g" || d.Timestamp.UnixMilli() != 1700000000123 {
		t.Fatalf("delivery %+v", d)
	}
	if len(d.Properties) != 1 || d.Properties["traceId"] != "t1" {
		t.Fatalf("properties %v: reserved names must be removed", d.Properties)
	}
	h := d.Handle.(*sendBackHandle)
	if h.broker != "broker-a" || h.commitLogOffset != 9000 || h.msgID != "ABC" || h.originTopic != "orders" || h.reconsumeTimes != 2 {
		t.Fatalf("handle %+v", h)
	}

	sm.Body = []byte("not zlib")
	if _, err := toDelivery(q, p, sm, storedProps(sm)); err == nil {
		t.Fatal("a corrupt compressed body must be an error")
	}
}

func TestParseRoute(t *testing.T) {
	// Java NameServers write integer map keys without quotes.
	body := []byte(`{"queueDatas":[{"brokerName":"broker-b","readQueueNums":2,"writeQueueNums":2,"perm":6,"topicSynFlag":0},` +
		`{"brokerName":"broker-a","readQueueNums":3,"writeQueueNums":3,"perm":6,"topicSynFlag":0},` +
		`{"brokerName":"broker-c","readQueueNums":3,"writeQueueNums":3,"perm":2,"topicSynFlag":0}],` +
		`"brokerDatas":[{"cluster":"c","brokerName":"broker-a","brokerAddrs":{0:"127.0.0.1:1",1:"127.0.0.1:9"}},` +
		`{"cluster":"c","brokerName":"broker-b","brokerAddrs":{"0":"127.0.0.1:2"}},` +
		`{"cluster":"c","brokerName":"broker-c","brokerAddrs":{"0":"127.0.0.1:3"}}]}`)
	rt, err := parseRoute("t", body)
	if err != nil {
		t.Fatal(err)
	}
	want := []mqueue{{"t", "broker-a", 0}, {"t", "broker-a", 1}, {"t", "broker-a", 2}, {"t", "broker-b", 0}, {"t", "broker-b", 1}}
	if len(rt.queues) != len(want) {
		t.Fatalf("queues %v (broker-c is not readable)", rt.queues)
	}
	for i := range want {
		if rt.queues[i] != want[i] {
			t.Fatalf("queues %v, want %v", rt.queues, want)
		}
	}
	if rt.addrs["broker-a"] != "127.0.0.1:1" || rt.addrs["broker-b"] != "127.0.0.1:2" {
		t.Fatalf("addrs %v", rt.addrs)
	}
	if _, err := parseRoute("t", []byte("{")); err == nil {
		t.Fatal("bad JSON accepted")
	}
}
