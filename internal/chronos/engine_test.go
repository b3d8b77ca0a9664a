package chronos

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/chronos/bodyext"
	"github.com/ddmq-go/carrera/internal/chronos/delayid"
	"github.com/ddmq-go/carrera/internal/chronos/store"
)

const T = 1_700_000_000 // test epoch second

// fakeClock is a manual clock: After channels fire when Advance passes
// their deadline.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, fakeWaiter{at: c.now.Add(d), ch: ch})
	return ch
}

// Advance moves the clock and fires the due waiters.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

// Waiters is the number of pending After channels.
func (c *fakeClock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// sent is a delivery the fake submitter saw, with the clock's time.
type sent struct {
	d  *Delivery
	at time.Time
}

// fakeSubmitter answers every delivery with outcome (Delivered unless
// changed) at once, recording it.
type fakeSubmitter struct {
	clock   Clock
	mu      sync.Mutex
	sent    []sent
	outcome Outcome
}

func (f *fakeSubmitter) Submit(_ context.Context, d *Delivery, done func(Outcome)) bool {
	f.mu.Lock()
	f.sent = append(f.sent, sent{d: d, at: f.clock.Now()})
	o := f.outcome
	f.mu.Unlock()
	done(o)
	return true
}

func (f *fakeSubmitter) take() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.sent
	f.sent = nil
	return out
}

type rig struct {
	t     *testing.T
	dir   string
	st    *store.Store
	clock *fakeClock
	sub   *fakeSubmitter
	role  *role
	m     *metrics
	e     *Engine
}

func newRig(t *testing.T, standAlone bool) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), clock: newFakeClock(time.Unix(T, 0))}
	r.sub = &fakeSubmitter{clock: r.clock}
	r.role = newRole(standAlone, nil)
	r.open()
	return r
}

func (r *rig) open() {
	r.t.Helper()
	st, err := store.Open(store.Options{Dir: r.dir})
	if err != nil {
		r.t.Fatal(err)
	}
	r.st = st
	r.m = newMetrics(prometheus.NewRegistry())
	e, err := newEngine(context.Background(), st, r.sub, r.role, r.clock, r.m, zaptest.NewLogger(r.t),
		engineConfig{deliver: true, maxCatchUp: 5})
	if err != nil {
		r.t.Fatal(err)
	}
	r.e = e
	r.t.Cleanup(func() { _ = st.Close() })
}

func (r *rig) reopen() {
	r.t.Helper()
	if err := r.st.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.open()
}

var uuidN = 0

func newUUID() string {
	uuidN++
	return fmt.Sprintf("%08x-b709-11e8-a709-aafb4bfc0bc5", uuidN)
}

func delayID(ts int64) delayid.ID {
	return delayid.ID{Timestamp: ts, Type: delayid.Delay, Expire: ts + 172800, UUID: newUUID()}
}

func loopID(ts int64, typ delayid.Type, interval, times, expire int64) delayid.ID {
	return delayid.ID{Timestamp: ts, Type: typ, Expire: expire, Times: times, Interval: interval, UUID: newUUID()}
}

func add(id delayid.ID, body []byte) []byte {
	return bodyext.Encode("user_topic", id.String(), bodyext.ActionAdd, body, "tg", map[string]string{"p": "v"})
}

func cancelOf(id string) []byte {
	return bodyext.Encode("user_topic", id, bodyext.ActionCancel, []byte("c"), "", nil)
}

// ingest feeds values as one batch at offsets 0.. and checks every offset
// is acknowledged.
func (r *rig) ingest(values ...[]byte) {
	r.t.Helper()
	msgs := make([]InnerMessage, len(values))
	for i, v := range values {
		msgs[i] = InnerMessage{Offset: int64(i), Value: v}
	}
	acks, err := r.e.Ingest(msgs)
	if err != nil {
		r.t.Fatal(err)
	}
	if len(acks) != len(values) {
		r.t.Fatalf("acked %v of %d", acks, len(values))
	}
}

// runTo processes every second up to and including last (as the seek loop
// would, without waiting for the clock).
func (r *rig) runTo(last int64, deliver bool) {
	r.t.Helper()
	for s := r.e.Seek(); s <= last; s++ {
		if err := r.e.step(s, deliver); err != nil {
			r.t.Fatal(err)
		}
	}
}

// fired runs to last and returns the fire second of every delivery, by key.
func (r *rig) fired(last int64) map[string][]int64 {
	r.t.Helper()
	r.runTo(last, true)
	out := map[string][]int64{}
	for _, s := range r.sub.take() {
		out[s.d.ID] = append(out[s.d.ID], s.d.Fire)
	}
	return out
}

func TestDelayFiresAtItsSecondWithExactMessage(t *testing.T) {
	r := newRig(t, true)
	bin := []byte{0, 0xff, 0xfe, 'x', 0x80}
	id := delayID(T + 5)
	r.ingest(add(id, bin))
	if p := r.e.Pending(); p != 1 {
		t.Fatalf("pending %d", p)
	}
	r.runTo(T+4, true)
	if s := r.sub.take(); len(s) != 0 {
		t.Fatalf("fired early: %+v", s)
	}
	r.runTo(T+5, true)
	s := r.sub.take()
	if len(s) != 1 {
		t.Fatalf("deliveries %d", len(s))
	}
	d := s[0].d
	msg := d.message()
	if d.ID != id.String() || d.Fire != T+5 || !bytes.Equal(msg.Body, bin) || msg.Key != id.String() || msg.Topic != "user_topic" ||
		msg.Tags != "tg" || msg.Properties["p"] != "v" || msg.Properties["from_chronos"] != "from_chronos" || msg.PartitionId != -2 {
		t.Fatalf("delivery %+v / %+v", d, msg)
	}
	if p := r.e.Pending(); p != 0 {
		t.Fatalf("pending after fire %d", p)
	}
	if got := value(r.m.delivered.WithLabelValues("seek")); got != 1 {
		t.Fatalf("delivered metric %v", got)
	}
}

func TestDueAtIngestIsSentByMasterOnly(t *testing.T) {
	r := newRig(t, true)
	r.runTo(T+3, true)
	past := delayID(T + 2)
	r.ingest(add(past, []byte("late")))
	s := r.sub.take()
	if len(s) != 1 || s[0].d.ID != past.String() || s[0].d.Fire != 0 {
		t.Fatalf("master: %+v", s)
	}
	// The second in progress counts as due: its scan may already be over.
	onHorizon := delayID(T + 3)
	r.ingest(add(onHorizon, []byte("x")))
	if s := r.sub.take(); len(s) != 1 {
		t.Fatalf("occurrence on the horizon not sent now: %+v", s)
	}
	if p := r.e.Pending(); p != 0 {
		t.Fatalf("due messages stored: pending %d", p)
	}

	b := newRig(t, false) // backup: treated as sent by the master, still acked
	b.runTo(T+3, false)
	b.ingest(add(delayID(T+1), []byte("late")))
	if s := b.sub.take(); len(s) != 0 {
		t.Fatalf("backup sent %+v", s)
	}
}

func TestLoopFiresAtEachOccurrence(t *testing.T) {
	r := newRig(t, true)
	loop := loopID(T+2, delayid.Loop, 3, 3, T+1000)
	exp := loopID(T+1, delayid.LoopExponent, 2, 4, T+1000)
	cut := loopID(T+1, delayid.Loop, 4, 100, T+9) // expire cuts it: T+1, T+5, T+9
	r.ingest(add(loop, []byte("l")), add(exp, []byte("e")), add(cut, []byte("c")))
	got := r.fired(T + 40)
	check := func(id delayid.ID, want ...int64) {
		t.Helper()
		var all []int64
		occ, ok := id, true
		for i := 0; ok; i++ {
			fires := got[occ.String()]
			if len(fires) > 1 {
				t.Fatalf("occurrence %s fired %d times", occ, len(fires))
			}
			all = append(all, fires...)
			occ, ok = occ.Next()
		}
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		if fmt.Sprint(all) != fmt.Sprint(want) {
			t.Fatalf("%s fired at %v, want %v", id, all, want)
		}
	}
	check(loop, T+2, T+5, T+8)
	check(exp, T+1, T+3, T+7, T+15)
	check(cut, T+1, T+5, T+9)
	if len(got) != 10 {
		t.Fatalf("%d distinct occurrences fired", len(got))
	}
	if p := r.e.Pending(); p != 0 {
		t.Fatalf("pending %d", p)
	}
}

func TestCancelDelay(t *testing.T) {
	r := newRig(t, true)
	a, b, c := delayID(T+3), delayID(T+3), delayID(T+4)
	r.ingest(add(a, []byte("a")), add(b, []byte("b")), cancelOf(a.String())) // same batch
	r.ingest(add(c, []byte("c")))
	r.ingest(cancelOf(c.String())) // later batch
	got := r.fired(T + 10)
	if len(got) != 1 || got[b.String()] == nil {
		t.Fatalf("fired %v, want only %s", got, b)
	}
	if v := value(r.m.cancels.WithLabelValues("matched")); v != 2 {
		t.Fatalf("matched cancels %v", v)
	}
	// A CANCEL after the occurrence fired has no effect (and is counted late).
	r.ingest(cancelOf(b.String()))
	if v := value(r.m.cancels.WithLabelValues("late")); v != 1 {
		t.Fatalf("late cancels %v", v)
	}
	// CANCEL of an unknown id is harmless.
	r.ingest(cancelOf(delayID(T + 20).String()))
	if got := r.fired(T + 25); len(got) != 0 {
		t.Fatalf("unexpected fire %v", got)
	}
}

func TestCancelLoopAfterItsFirstOccurrence(t *testing.T) {
	r := newRig(t, true)
	loop := loopID(T+2, delayid.Loop, 3, 10, T+1000)
	r.ingest(add(loop, []byte("l")))
	got := r.fired(T + 3)
	if len(got) != 1 || got[loop.String()] == nil {
		t.Fatalf("first occurrence: %v", got)
	}
	// The client cancels with the key it received (the first occurrence's id).
	r.ingest(cancelOf(loop.String()))
	if got := r.fired(T + 100); len(got) != 0 {
		t.Fatalf("cancelled loop fired again: %v", got)
	}
	if v := value(r.m.cancels.WithLabelValues("matched")); v != 1 {
		t.Fatalf("matched %v", v)
	}

	// Cancelling with a later occurrence's id (not yet pending) also stops
	// the loop: the tombstone waits at that occurrence.
	exp := loopID(T+101, delayid.LoopExponent, 2, 10, T+100000)
	r.ingest(add(exp, []byte("e")))
	second, _ := exp.Next()
	third, _ := second.Next()
	r.ingest(cancelOf(third.String()))
	got = r.fired(T + 200)
	if len(got) != 2 || got[exp.String()] == nil || got[second.String()] == nil {
		t.Fatalf("exponent loop cancelled at its third occurrence fired %v", got)
	}
}

func TestUnmatchedLoopTombstoneMovesToNextOccurrence(t *testing.T) {
	r := newRig(t, true)
	ghost := loopID(T+2, delayid.Loop, 3, 3, T+1000)
	r.ingest(cancelOf(ghost.String())) // no data: tombstone at T+2
	r.runTo(T+20, true)
	if v := value(r.m.cancels.WithLabelValues("moved")); v != 2 {
		t.Fatalf("tombstone moved %v times, want 2 (T+5, T+8; T+11 is beyond times)", v)
	}
}

func TestLoopCatchUpIsBounded(t *testing.T) {
	r := newRig(t, true)
	r.runTo(T+100, true)
	old := loopID(T-1000, delayid.Loop, 3, 1_000_000, T+100000)
	r.ingest(add(old, []byte("old")))
	if s := r.sub.take(); len(s) != 5 {
		t.Fatalf("sent %d past occurrences, want maxCatchUp 5", len(s))
	}
	if v := value(r.m.catchUp); v < 300 {
		t.Fatalf("skipped %v", v)
	}
	// The first future occurrence is stored: T+101 (T-1000 + 367×3).
	got := r.fired(T + 101)
	var fires []int64
	for _, f := range got {
		fires = append(fires, f...)
	}
	if fmt.Sprint(fires) != fmt.Sprint([]int64{T + 101}) {
		t.Fatalf("next occurrence fired at %v", fires)
	}
}

func TestInvalidInnerMessagesAreAckedAndSkipped(t *testing.T) {
	r := newRig(t, true)
	tomb := delayID(T + 5)
	tomb.Type = delayid.Tombstone
	r.ingest([]byte("not json"), bodyext.Encode("t", "bad-id", 1, []byte("x"), "", nil),
		bodyext.Encode("t", delayID(T+5).String(), 7, []byte("x"), "", nil),
		bodyext.Encode("t", tomb.String(), 1, []byte("x"), "", nil))
	if v := value(r.m.ingested.WithLabelValues("invalid")); v != 4 {
		t.Fatalf("invalid %v", v)
	}
	if p := r.e.Pending(); p != 0 {
		t.Fatalf("pending %d", p)
	}
}

func TestDuplicateIngestCountsOnce(t *testing.T) {
	r := newRig(t, true)
	id := delayID(T + 5)
	r.ingest(add(id, []byte("x")), add(id, []byte("x")))
	r.ingest(add(id, []byte("x"))) // redelivered by cproxy
	if p := r.e.Pending(); p != 1 {
		t.Fatalf("pending %d", p)
	}
	if got := r.fired(T + 5); len(got[id.String()]) != 1 {
		t.Fatalf("fired %v", got)
	}
}

func TestAbortedSecondIsProcessedAgain(t *testing.T) {
	r := newRig(t, true)
	id := delayID(T + 1)
	r.ingest(add(id, []byte("x")))
	r.runTo(T, true)
	r.sub.outcome = Aborted
	if err := r.e.step(T+1, true); err == nil {
		t.Fatal("aborted second reported success")
	}
	if r.e.Seek() != T+1 {
		t.Fatalf("seek advanced to %d", r.e.Seek())
	}
	r.sub.take()
	r.sub.outcome = Delivered
	if got := r.fired(T + 1); len(got[id.String()]) != 1 {
		t.Fatalf("not redelivered: %v", got)
	}
	// Discarded counts as done.
	r.sub.outcome = Discarded
	r.ingest(add(delayID(T+3), []byte("y")))
	r.runTo(T+3, true)
	if r.e.Seek() != T+4 {
		t.Fatalf("seek %d", r.e.Seek())
	}
}

func TestRestartKeepsSeekAndPending(t *testing.T) {
	r := newRig(t, true)
	a, b := delayID(T+10), delayID(T+20)
	r.ingest(add(a, []byte("a")), add(b, []byte("b")))
	r.runTo(T+12, true)
	r.sub.take()
	r.clock.Advance(time.Hour) // restarted much later
	r.reopen()
	if r.e.Seek() != T+13 || r.e.Pending() != 1 {
		t.Fatalf("after reopen seek %d pending %d", r.e.Seek(), r.e.Pending())
	}
	// Nothing is lost: b fires when the loop catches up.
	if got := r.fired(T + 30); len(got) != 1 || got[b.String()] == nil {
		t.Fatalf("after restart fired %v", got)
	}
}

func TestFirstStartSeeksToNow(t *testing.T) {
	r := newRig(t, true)
	if r.e.Seek() != T {
		t.Fatalf("seek %d", r.e.Seek())
	}
}

func TestRunSeekNeverEarly(t *testing.T) {
	r := newRig(t, true)
	ids := []delayid.ID{delayID(T + 1), delayID(T + 2), delayID(T + 2), delayID(T + 4)}
	for _, id := range ids {
		r.ingest(add(id, []byte("x")))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunSeek(ctx) }()
	defer func() { cancel(); <-done }()
	for step := 0; step < 60; step++ { // 6 s in 100 ms steps
		waitFor(t, func() bool { return r.clock.Waiters() > 0 })
		r.clock.Advance(100 * time.Millisecond)
	}
	waitFor(t, func() bool { return r.e.Seek() >= T+5 })
	got := r.sub.take()
	if len(got) != len(ids) {
		t.Fatalf("%d deliveries", len(got))
	}
	for _, s := range got {
		fire := time.Unix(s.d.Fire, 0)
		if s.at.Before(fire) || s.at.Sub(fire) > 200*time.Millisecond {
			t.Fatalf("%s due %v delivered at %v", s.d.ID, fire, s.at)
		}
	}
	var h dto.Metric
	if err := r.m.lateness.Write(&h); err != nil || h.GetHistogram().GetSampleCount() != uint64(len(ids)) {
		t.Fatalf("lateness histogram: %v %v", h.GetHistogram(), err)
	}
}

func TestBackupFollowsPublishedSeekAndTakesOver(t *testing.T) {
	r := newRig(t, false)
	a, b := delayID(T+2), delayID(T+6)
	r.ingest(add(a, []byte("a")), add(b, []byte("b")))
	r.clock.Advance(10 * time.Second)
	r.role.SetPublished(T+4, true, map[string]int64{"q": 10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.e.RunSeek(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, func() bool { return r.e.Seek() == T+4 })
	waitFor(t, func() bool { return r.clock.Waiters() > 0 }) // parked at the published seek
	if r.e.Seek() != T+4 || len(r.sub.take()) != 0 {
		t.Fatal("backup passed the published seek or delivered")
	}
	if !r.role.Allowed("q", 9) || r.role.Allowed("q", 10) || r.role.Allowed("other", 0) {
		t.Fatal("backup offset gate")
	}
	// Elected: master once seek >= published; b (T+6) is delivered, a (T+2,
	// processed as backup) is not.
	r.role.SetElected(true)
	waitFor(t, func() bool { return r.e.Seek() > T+6 })
	got := r.sub.take()
	if len(got) != 1 || got[0].d.ID != b.String() {
		t.Fatalf("after takeover delivered %+v", got)
	}
	if !r.role.Master() || !r.role.Allowed("other", 99) {
		t.Fatal("not master")
	}
	r.role.SetElected(false)
	if r.role.Master() {
		t.Fatal("still master after losing the election")
	}
}

func TestElectedNodeWaitsForThePublishedProgress(t *testing.T) {
	r := newRole(false, nil)
	r.SetElected(true)
	if r.Promote(T) {
		t.Fatal("promoted before the published progress was read")
	}
	r.SetPublished(0, false, nil) // read: nothing published yet (a fresh group)
	if !r.Promote(T) {
		t.Fatal("not promoted with nothing published")
	}
	b := newRole(false, nil)
	b.SetPublished(T+10, true, nil)
	b.SetElected(true)
	if b.Promote(T+9) || !b.Promote(T+10) {
		t.Fatal("promotion must wait for seek >= published seek")
	}
}

func TestRetentionDeletesOldKeys(t *testing.T) {
	r := newRig(t, true)
	a := delayID(T + 1)
	r.ingest(add(a, []byte("a")), add(delayID(T+5*3600), []byte("b")))
	r.runTo(T+2*3600+1, true)
	r.e.retain(1) // keep one hour before seek
	if ok, _ := r.st.Has(a.String()); ok {
		t.Fatal("old key kept")
	}
	if r.e.Pending() != 1 {
		t.Fatalf("pending %d", r.e.Pending())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// backupBatch is a pulled batch of five future ADDs at offsets 0..4 of qid q.
func backupBatch() *consumer.PullResponse {
	resp := &consumer.PullResponse{Context: &consumer.Context{GroupId: "g", Topic: "inner", Qid: "q"}}
	for i := range 5 {
		resp.Messages = append(resp.Messages, &consumer.Message{Offset: int64(i), Value: add(delayID(T+100), []byte("x"))})
	}
	return resp
}

func TestBackupPullerWaitsForTheMastersOffsets(t *testing.T) {
	r := newRig(t, false)
	r.role.SetPublished(T, true, map[string]int64{"q": 2}) // the master has read up to offset 1
	p := &puller{log: zaptest.NewLogger(t), m: r.m, engine: r.e, role: r.role, clock: r.clock, hold: time.Second}
	done := make(chan []int64, 1)
	go func() { done <- p.handle(context.Background(), backupBatch()) }()
	waitFor(t, func() bool { return r.clock.Waiters() > 0 }) // holding offsets 2..4
	r.role.SetPublished(T, true, map[string]int64{"q": 5})   // the master moves past them
	acks := <-done
	if fmt.Sprint(acks) != "[0 1 2 3 4]" || r.e.Pending() != 5 || value(r.m.backupHeld) != 0 {
		t.Fatalf("acks %v pending %d held %v", acks, r.e.Pending(), value(r.m.backupHeld))
	}
}

func TestBackupPullerLeavesMessagesBeyondTheMasterUnacked(t *testing.T) {
	r := newRig(t, false)
	r.role.SetPublished(T, true, map[string]int64{"q": 2})
	p := &puller{log: zaptest.NewLogger(t), m: r.m, engine: r.e, role: r.role, clock: r.clock, hold: time.Second}
	done := make(chan []int64, 1)
	go func() { done <- p.handle(context.Background(), backupBatch()) }()
	waitFor(t, func() bool { return r.clock.Waiters() > 0 })
	r.clock.Advance(time.Second) // the hold ends: 2..4 stay un-acknowledged (never nacked)
	acks := <-done
	if fmt.Sprint(acks) != "[0 1]" || r.e.Pending() != 2 || value(r.m.backupHeld) != 3 {
		t.Fatalf("acks %v pending %d held %v", acks, r.e.Pending(), value(r.m.backupHeld))
	}
	// An unknown qid (nothing published for it) is held entirely.
	r2 := newRig(t, false)
	r2.role.SetPublished(T, true, map[string]int64{"other": 100})
	p2 := &puller{log: zaptest.NewLogger(t), m: r2.m, engine: r2.e, role: r2.role, clock: r2.clock, hold: 0}
	if acks := p2.handle(context.Background(), backupBatch()); len(acks) != 0 {
		t.Fatalf("acked %v for a qid without a published offset", acks)
	}
	// A master ingests everything at once.
	m := newRig(t, true)
	pm := &puller{log: zaptest.NewLogger(t), m: m.m, engine: m.e, role: m.role, clock: m.clock}
	if acks := pm.handle(context.Background(), backupBatch()); len(acks) != 5 {
		t.Fatalf("master acked %v", acks)
	}
}
