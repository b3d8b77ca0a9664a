package chronos_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/chronos/delayid"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// occurrences lists the ids of every valid occurrence of a loop id.
func occurrences(t *testing.T, first string) []string {
	t.Helper()
	id, err := delayid.Parse(first)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for ok := id.Valid(); ok; id, ok = id.Next() {
		out = append(out, id.String())
	}
	return out
}

// TestE2EDelayLoopCancel drives sendDelaySync through a real pproxy, the
// inner topic on kfake, cproxy pulls, the delay service and pproxy again
// to the user topic, and checks every message fires at its second (never
// early, late by at most 1.5 s), loops at each of their times, cancelled
// ones never, with bodies, tags, key and properties intact.
func TestE2EDelayLoopCancel(t *testing.T) {
	const group = "cg_inner_a"
	s := startStack(t, group)
	admin, _ := s.runChronos(s.chronosConfig(group, true))
	s.awaitGroupReady(group)
	p := s.producer()

	now := time.Now().Unix()
	base := now + 3
	bin := []byte{0, 0xff, 0xfe, 0x80, 'a', 0xc3} // not UTF-8
	d1 := addDelay(t, p, base, bin, "tagA", map[string]string{"k": "v", "traceId": "t-1"})
	d2 := addDelay(t, p, base+1, []byte("cancel me"), "", nil)
	cancelDelay(t, p, d2)
	l1 := addLoop(t, p, 3, base, 3, 3, base+100, "loop")                 // base, +3, +6
	l2 := addLoop(t, p, 3, base, 3, 10, base+100, "loop-cancelled")      // base only
	e1 := addLoop(t, p, 4, base+1, 2, 3, base+1000, "exponent")          // +1, +3, +7
	late := addDelay(t, p, now-30, []byte("already due"), "", nil)       // sent at once
	cut := addLoop(t, p, 3, base+2, 3, 100, base+6, "expire-cut")        // +2, +5 (expire +6)
	utf := addDelay(t, p, base+2, []byte("日本語 <&>"), "tg", nil)          // UTF-8 travels as body
	pastLoop := addLoop(t, p, 3, now-4, 3, 4, now+100, "loop-from-past") // now-4, now-1 at once; now+2, now+5 fire

	// Cancel l2 as a client would: with the key of the delivery it got.
	testenv.Eventually(t, 10*time.Second, "l2's first occurrence", func() bool { return len(byKey(s.readUser())[l2]) > 0 })
	cancelDelay(t, p, l2)

	lastFire := time.Unix(base+7, 0)
	time.Sleep(time.Until(lastFire.Add(2 * time.Second)))
	got := byKey(s.readUser())

	want := map[string]bool{}
	var maxLate time.Duration
	expect := func(id string, body []byte, tags string, props map[string]string, lateLimit time.Duration) {
		t.Helper()
		want[id] = true
		ds := got[id]
		if len(ds) != 1 {
			t.Fatalf("%s delivered %d times, want once", id, len(ds))
		}
		d := ds[0]
		if !bytes.Equal(d.body, body) || d.tags != tags || d.props["from_chronos"] != "from_chronos" || len(d.props) != len(props)+1 {
			t.Fatalf("%s delivered as body %x tags %q props %v", id, d.body, d.tags, d.props)
		}
		for k, v := range props {
			if d.props[k] != v {
				t.Fatalf("%s property %s = %q", id, k, d.props[k])
			}
		}
		if lateLimit > 0 {
			maxLate = max(maxLate, checkLateness(t, d, lateLimit))
		}
	}
	const limit = 1500 * time.Millisecond
	expect(d1, bin, "tagA", map[string]string{"k": "v", "traceId": "t-1"}, limit)
	expect(utf, []byte("日本語 <&>"), "tg", nil, limit)
	for _, id := range occurrences(t, l1) {
		expect(id, []byte("loop"), "", nil, limit)
	}
	expect(l2, []byte("loop-cancelled"), "", nil, limit)
	for _, id := range occurrences(t, e1) {
		expect(id, []byte("exponent"), "", nil, limit)
	}
	for _, id := range occurrences(t, cut) {
		expect(id, []byte("expire-cut"), "", nil, limit)
	}
	if n := len(occurrences(t, cut)); n != 2 {
		t.Fatalf("expire should cut the loop to 2 occurrences, got %d", n)
	}
	expect(late, []byte("already due"), "", nil, 0)
	for i, id := range occurrences(t, pastLoop) {
		if i < 2 {
			expect(id, []byte("loop-from-past"), "", nil, 0) // due at ingestion: sent at once
		} else {
			expect(id, []byte("loop-from-past"), "", nil, limit)
		}
	}
	for key := range got {
		if !want[key] {
			t.Fatalf("unexpected delivery %s (cancelled d2 = %s, l2 = %s)", key, d2, l2)
		}
	}
	if len(occurrences(t, l1)) != 3 || len(occurrences(t, e1)) != 3 {
		t.Fatal("loop arithmetic changed")
	}
	t.Logf("%d deliveries checked; max lateness %v", len(got), maxLate)
	testenv.Eventually(t, 5*time.Second, "pending back to 0", func() bool {
		v, ok := metric(admin, "chronos_pending_messages")
		return ok && v == 0
	})
}

// TestE2EBadDelayMessagesGetTheirCodes checks the delay result codes
// through a real pproxy over the wire (framed compact Thrift).
func TestE2EBadDelayMessagesGetTheirCodes(t *testing.T) {
	s := startStack(t)
	p := s.producer()
	now := time.Now().Unix()
	uuid := "3f0c1a2e-5b7d-4c1e-9a2b-7d1e0f9c8b6a"
	add := func(mod func(*producer.DelayMessage)) *producer.DelayMessage {
		d := &producer.DelayMessage{Topic: userTopic, Body: []byte("x"), Action: 1, Timestamp: i64(now + 60),
			Dmsgtype: i32(2), UUID: str(uuid)}
		mod(d)
		return d
	}
	loop := func(typ int32, interval, times, expire int64) func(*producer.DelayMessage) {
		return func(d *producer.DelayMessage) {
			d.Dmsgtype, d.Interval, d.Times, d.Expire = i32(typ), i64(interval), i64(times), i64(expire)
		}
	}
	cancel := func(id string) *producer.DelayMessage {
		return &producer.DelayMessage{Topic: userTopic, Body: []byte("c"), Action: 2, UniqDelayMsgId: str(id)}
	}
	cases := []struct {
		name string
		dm   *producer.DelayMessage
		code int32
		msg  string
	}{
		{"not a delay topic", add(func(d *producer.DelayMessage) { d.Topic = plainName }), 18, "FAILED: Topic is not delay"},
		{"malformed uuid", add(func(d *producer.DelayMessage) { d.UUID = str("NOT-A-UUID") }), 30, "FAILED: Illegal uniqDelayMsgId."},
		{"cancel blank id", cancel(" "), 30, "FAILED: Illegal uniqDelayMsgId."},
		{"cancel malformed id", cancel("1700000000-2-1700172800-0-0-0-0-XYZ"), 30, "FAILED: Illegal uniqDelayMsgId."},
		{"type 1", add(func(d *producer.DelayMessage) { d.Dmsgtype = i32(1) }), 31, "FAILED: Illegal dMsgType."},
		{"cancel type 0", cancel("1700000000-0-1700172800-0-0-0-0-" + uuid), 31, "FAILED: Illegal dMsgType."},
		{"action 0", add(func(d *producer.DelayMessage) { d.Action = 0 }), 32, "FAILED: Illegal delay action."},
		{"action 3", add(func(d *producer.DelayMessage) { d.Action = 3 }), 32, "FAILED: Illegal delay action."},
		{"timestamp too small", add(func(d *producer.DelayMessage) { d.Timestamp = i64(999_999_999) }), 33, "FAILED: Illegal delay timestamp."},
		{"timestamp beyond 62 days", add(func(d *producer.DelayMessage) { d.Timestamp = i64(now + 63*86400) }), 33, "FAILED: Illegal delay timestamp."},
		{"cancel seq beyond innerTopicNum", cancel("1700000000-2-1700172800-0-0-0-1-" + uuid), 34, "FAILED: Illegal delay innerTopicSeq."},
		{"delay with times", add(loop(2, 0, 1, 0)), 35, "FAILED: Illegal delay loopTimes."},
		{"loop without times", add(loop(3, 5, 0, now+1000)), 35, "FAILED: Illegal delay loopTimes."},
		{"loop expire before timestamp", add(loop(3, 5, 2, now+60)), 36, "FAILED: Illegal delay expire, expire must be greater than timestamp."},
		{"loop expire of 11 digits", add(loop(3, 5, 2, 10_000_000_000)), 36, "FAILED: Illegal delay expire, expire must be greater than timestamp."},
		{"loop interval 2", add(loop(3, 2, 2, now+1000)), 37, "FAILED: Illegal delay interval, interval can not be less than 3."},
		{"exponent base 1", add(loop(4, 1, 2, now+1000)), 38, "FAILED: Illegal delay exponent base, base can not be less than 2."},
		{"empty body", add(func(d *producer.DelayMessage) { d.Body = nil }), 11, "FAILED: Message is too large or illegal or the length is 0"},
		{"inner topic", add(func(d *producer.DelayMessage) { d.Topic = innerName }), 11, "FAILED: Message is too large or illegal or the length is 0"},
		{"unknown topic", add(func(d *producer.DelayMessage) { d.Topic = "nope" }), 13, "FAILED: Topic is not in the proxy white list"},
	}
	for _, c := range cases {
		r, err := p.SendDelaySync(context.Background(), c.dm, 1000)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Code != c.code || r.Msg != c.msg {
			t.Errorf("%s: got %d %q, want %d %q", c.name, r.Code, r.Msg, c.code, c.msg)
		}
	}
	// 19: a plain send to a delay topic is refused unless it comes from the
	// delay service.
	r, err := p.SendSync(context.Background(), &producer.Message{Topic: userTopic, Body: []byte("x"), PartitionId: -2}, 1000)
	if err != nil || r.Code != 19 || r.Msg != "FAILED: Topic is delay" {
		t.Fatalf("plain send to a delay topic: %v %v", r, err)
	}
	r, err = p.SendSync(context.Background(), &producer.Message{Topic: userTopic, Body: []byte("x"), PartitionId: -2,
		Properties: map[string]string{"from_chronos": "from_chronos"}}, 1000)
	if err != nil || r.Code != 0 {
		t.Fatalf("from_chronos send: %v %v", r, err)
	}
	// A valid ADD answers OK with the generated id.
	id := sendDelay(t, p, add(func(*producer.DelayMessage) {}))
	if _, err := delayid.Parse(id); err != nil || id[len(id)-36:] != uuid {
		t.Fatalf("generated id %q: %v", id, err)
	}
}
