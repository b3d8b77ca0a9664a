package memory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/ddmq-go/carrera/internal/mq"
)

var _ mq.GroupConsumer = (*Consumer)(nil)

// ErrRunning is returned by Consumer.Run when another Run is in progress.
var ErrRunning = errors.New("memory: consumer is already running")

// ConsumerOptions configures a Consumer. The zero value is usable.
type ConsumerOptions struct {
	// Topics maps topic names to partition counts (> 0).
	Topics map[string]int
	// Buffer is the capacity of each claim's Messages channel (default 0:
	// unbuffered, so a handler that stops reading stops the partition at
	// once).
	Buffer int
}

// Consumer is an in-memory mq.GroupConsumer for unit tests of cproxy: the
// only member of its group, so every partition of its topics is claimed
// (unless Rebalance restricts the assignment or Revoke ends one claim). Messages are appended with
// Append; commits are recorded per partition and visible through Committed,
// Commits and WaitCommitted. Rebalance ends the current generation (every
// claim's context is cancelled and the handler's Claim calls are awaited,
// their final commits kept) and starts a new one from the committed state,
// like a real group after a rebalance or a restart. Run may be called again
// after it returned (a restarted member): the committed state survives.
//
// A claim delivers its partition from the committed offset, or from the
// oldest retained offset (0) when nothing is committed — Initial().Offset is
// then -1, as with a real broker. A committed offset beyond the partition's
// end is out of range and, like Kafka with auto.offset.reset=earliest,
// delivery starts at 0 (Initial() still reports the committed state). Commits are accepted until the handler's
// Claim call for that claim has returned, and ignored afterwards.
//
// Goroutines: Run starts, per generation, one goroutine per claim calling
// the handler's Claim and one pump goroutine per claim feeding its Messages
// channel; Run waits for all of them before it starts the next generation
// and before it returns.
//
// Lock order: Consumer.mu is the only lock; it is never held while calling
// the handler or sending to a Messages channel.
type Consumer struct {
	buffer int

	mu      sync.Mutex
	topics  map[string][]*partLog
	assign  map[string][]int32 // nil = everything
	running bool
	gen     int
	cur     *generation       // the running generation; nil when not running
	reqs    chan rebalanceReq // to the running Run; nil when not running
	stopped chan struct{}     // closed when the running Run returns
	commitN chan struct{}     // closed and replaced on every accepted commit
}

type partLog struct {
	msgs      []mq.Delivery // ascending offsets (gaps allowed)
	next      int64         // offset of the next appended message
	committed mq.CommittedOffset
	commits   []mq.CommittedOffset
	appended  chan struct{} // closed and replaced on every append
}

type rebalanceReq struct {
	assign map[string][]int32
	done   chan struct{}
}

// NewConsumer returns a Consumer with the topics of opts. It starts no
// goroutine.
func NewConsumer(opts ConsumerOptions) *Consumer {
	c := &Consumer{
		buffer:  max(opts.Buffer, 0),
		topics:  map[string][]*partLog{},
		commitN: make(chan struct{}),
	}
	for t, n := range opts.Topics {
		c.CreateTopic(t, n)
	}
	return c
}

// CreateTopic adds topic with n partitions, or grows it to n partitions. The
// new partitions are claimed from the next generation on. It panics if
// n <= 0.
func (c *Consumer) CreateTopic(topic string, n int) {
	if n <= 0 {
		panic(fmt.Sprintf("memory: topic %q: partitions must be > 0, got %d", topic, n))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	logs := c.topics[topic]
	for len(logs) < n {
		logs = append(logs, &partLog{
			committed: mq.CommittedOffset{Offset: -1},
			appended:  make(chan struct{}),
		})
	}
	c.topics[topic] = logs
}

// Partitions returns the partition count of topic (0 if unknown).
func (c *Consumer) Partitions(topic string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.topics[topic])
}

func (c *Consumer) logLocked(topic string, partition int32) *partLog {
	logs := c.topics[topic]
	if partition < 0 || int(partition) >= len(logs) {
		panic(fmt.Sprintf("memory: unknown partition %s/%d", topic, partition))
	}
	return logs[partition]
}

// Append stores a message in (topic, partition) and returns its offset. It
// panics for an unknown partition.
func (c *Consumer) Append(topic string, partition int32, key string, body []byte) int64 {
	return c.AppendDelivery(mq.Delivery{Topic: topic, Partition: partition, Key: key, Body: body})
}

// AppendDelivery stores a copy of d in (d.Topic, d.Partition), ignoring
// d.Offset, and returns the offset it got. A zero Timestamp is left zero.
func (c *Consumer) AppendDelivery(d mq.Delivery) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.logLocked(d.Topic, d.Partition)
	d.Offset = l.next
	d.Body = slices.Clone(d.Body)
	d.Properties = maps.Clone(d.Properties)
	l.msgs = append(l.msgs, d)
	l.next++
	close(l.appended)
	l.appended = make(chan struct{})
	return d.Offset
}

// Skip leaves a gap of n offsets in (topic, partition), as compaction or
// transaction markers do in Kafka: the next message gets an offset n
// higher.
func (c *Consumer) Skip(topic string, partition int32, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logLocked(topic, partition).next += n
}

// HighWatermark returns the offset the next appended message will get.
func (c *Consumer) HighWatermark(topic string, partition int32) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logLocked(topic, partition).next
}

// Committed returns the group's committed state of (topic, partition);
// Offset is -1 when nothing was committed.
func (c *Consumer) Committed(topic string, partition int32) mq.CommittedOffset {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.logLocked(topic, partition).committed
}

// Commits returns every accepted commit of (topic, partition), oldest
// first.
func (c *Consumer) Commits(topic string, partition int32) []mq.CommittedOffset {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.logLocked(topic, partition).commits)
}

// SetCommitted overwrites the committed state of (topic, partition), as an
// operator's offset reset or a previous member's commit would. It takes
// effect for claims of later generations.
func (c *Consumer) SetCommitted(topic string, partition int32, co mq.CommittedOffset) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.logLocked(topic, partition).committed = co
}

// WaitCommitted blocks until the committed state of (topic, partition)
// satisfies ok (checked at once and after every accepted commit) or ctx is
// done, and returns the last state seen.
func (c *Consumer) WaitCommitted(ctx context.Context, topic string, partition int32, ok func(mq.CommittedOffset) bool) (mq.CommittedOffset, error) {
	for {
		c.mu.Lock()
		co := c.logLocked(topic, partition).committed
		ch := c.commitN
		c.mu.Unlock()
		if ok(co) {
			return co, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return co, fmt.Errorf("memory: wait for commit of %s/%d (last %+v): %w", topic, partition, co, ctx.Err())
		}
	}
}

// Generation returns the number of generations started so far.
func (c *Consumer) Generation() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// Rebalance ends the current generation and starts a new one in which this
// member owns the partitions of assigned (nil: every partition of every
// topic; unknown partitions are ignored). It returns once the old claims'
// Claim calls have returned and the new generation's Setup has been called
// and its Claim calls started. When Run is not running, the assignment is
// kept for the next Run.
func (c *Consumer) Rebalance(assigned map[string][]int32) {
	req := rebalanceReq{assign: cloneAssign(assigned), done: make(chan struct{})}
	c.mu.Lock()
	if !c.running {
		c.assign = req.assign
		c.mu.Unlock()
		return
	}
	reqs, stopped := c.reqs, c.stopped
	c.mu.Unlock()
	select {
	case reqs <- req:
		select {
		case <-req.done:
		case <-stopped:
		}
	case <-stopped:
		c.mu.Lock()
		c.assign = req.assign
		c.mu.Unlock()
	}
}

func cloneAssign(a map[string][]int32) map[string][]int32 {
	if a == nil {
		return nil
	}
	out := make(map[string][]int32, len(a))
	for t, ps := range a {
		out[t] = slices.Clone(ps)
	}
	return out
}

// Revoke ends the current claim of (topic, partition) alone, as a
// cooperative rebalance that moves one partition to another member would:
// its context is cancelled and Revoke returns once the handler's Claim call
// returned (its final commit kept). The partition is not claimed again until
// the next generation (Rebalance or Run). It reports whether such a claim
// was running.
func (c *Consumer) Revoke(topic string, partition int32) bool {
	c.mu.Lock()
	var cl *claim
	if c.cur != nil {
		for _, x := range c.cur.claims {
			if x.topic == topic && x.partition == partition && !x.revoked {
				cl = x
				cl.revoked = true
			}
		}
	}
	c.mu.Unlock()
	if cl == nil {
		return false
	}
	cl.cancel()
	<-cl.handled
	return true
}

// Run implements mq.GroupConsumer: it serves generations of claims to h
// until ctx is done, then ends the last generation (awaiting h's Claim
// calls) and returns nil. A second concurrent Run fails with ErrRunning.
func (c *Consumer) Run(ctx context.Context, h mq.ClaimHandler) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return ErrRunning
	}
	c.running = true
	reqs, stopped := make(chan rebalanceReq), make(chan struct{})
	c.reqs, c.stopped = reqs, stopped
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.reqs, c.stopped = nil, nil
		c.mu.Unlock()
		close(stopped)
	}()

	var done chan struct{} // a pending Rebalance caller
	for {
		g := c.startGeneration(h)
		if done != nil {
			close(done)
			done = nil
		}
		select {
		case <-ctx.Done():
			c.stopGeneration(g, h)
			return nil
		case req := <-reqs:
			c.stopGeneration(g, h)
			c.mu.Lock()
			c.assign = req.assign
			c.mu.Unlock()
			done = req.done
		}
	}
}

type generation struct {
	claims []*claim
	wg     sync.WaitGroup
}

// startGeneration computes the assignment, calls Setup and starts the
// claims.
func (c *Consumer) startGeneration(h mq.ClaimHandler) *generation {
	c.mu.Lock()
	c.gen++
	assigned := map[string][]int32{}
	for topic, logs := range c.topics {
		for p := range logs {
			if c.assign == nil || slices.Contains(c.assign[topic], int32(p)) {
				assigned[topic] = append(assigned[topic], int32(p))
			}
		}
	}
	g := &generation{}
	c.cur = g
	topics := slices.Sorted(maps.Keys(assigned))
	for _, topic := range topics {
		sort.Slice(assigned[topic], func(i, j int) bool { return assigned[topic][i] < assigned[topic][j] })
		for _, p := range assigned[topic] {
			ctx, cancel := context.WithCancel(context.Background())
			g.claims = append(g.claims, &claim{
				c: c, topic: topic, partition: p, ctx: ctx, cancel: cancel,
				initial: c.topics[topic][p].committed,
				msgs:    make(chan *mq.Delivery, c.buffer),
				handled: make(chan struct{}),
			})
		}
	}
	c.mu.Unlock()

	h.Setup(cloneAssign(assigned))
	for _, cl := range g.claims {
		g.wg.Add(2)
		go func() {
			defer g.wg.Done()
			cl.pump()
		}()
		go func() {
			defer g.wg.Done()
			h.Claim(cl)
			c.mu.Lock()
			cl.ended = true
			c.mu.Unlock()
			close(cl.handled)
		}()
	}
	return g
}

// stopGeneration ends g and calls Cleanup.
func (c *Consumer) stopGeneration(g *generation, h mq.ClaimHandler) {
	g.stop()
	c.mu.Lock()
	c.cur = nil
	c.mu.Unlock()
	h.Cleanup()
}

// stop cancels every claim and waits for the handler and the pumps.
func (g *generation) stop() {
	for _, cl := range g.claims {
		cl.cancel()
	}
	g.wg.Wait()
}

// claim is one partition's mq.Claim within a generation.
type claim struct {
	c         *Consumer
	topic     string
	partition int32
	ctx       context.Context
	cancel    context.CancelFunc
	initial   mq.CommittedOffset
	msgs      chan *mq.Delivery
	ended     bool          // guarded by c.mu: the handler's Claim returned
	revoked   bool          // guarded by c.mu: ended by Revoke
	handled   chan struct{} // closed when the handler's Claim returned
}

func (cl *claim) Topic() string                 { return cl.topic }
func (cl *claim) Partition() int32              { return cl.partition }
func (cl *claim) Context() context.Context      { return cl.ctx }
func (cl *claim) Initial() mq.CommittedOffset   { return cl.initial }
func (cl *claim) Messages() <-chan *mq.Delivery { return cl.msgs }

// Commit implements mq.Claim: recorded unless the handler's Claim call for
// this claim has returned.
func (cl *claim) Commit(co mq.CommittedOffset) {
	c := cl.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl.ended {
		return
	}
	l := c.topics[cl.topic][cl.partition]
	l.committed = co
	l.commits = append(l.commits, co)
	close(c.commitN)
	c.commitN = make(chan struct{})
}

// HighWatermark implements mq.Claim.
func (cl *claim) HighWatermark() int64 {
	return cl.c.HighWatermark(cl.topic, cl.partition)
}

// pump sends the partition's messages from the initial position until the
// claim's context is done, then closes the Messages channel.
func (cl *claim) pump() {
	defer close(cl.msgs)
	pos := max(cl.initial.Offset, 0)
	if pos > cl.c.HighWatermark(cl.topic, cl.partition) {
		pos = 0 // out of range: reset to the earliest offset
	}
	for {
		c := cl.c
		c.mu.Lock()
		l := c.topics[cl.topic][cl.partition]
		i := sort.Search(len(l.msgs), func(i int) bool { return l.msgs[i].Offset >= pos })
		batch := l.msgs[i:len(l.msgs):len(l.msgs)] // appends never modify stored entries
		wait := l.appended
		c.mu.Unlock()
		for k := range batch {
			d := batch[k] // a copy per delivery: receivers may keep it
			select {
			case cl.msgs <- &d:
				pos = d.Offset + 1
			case <-cl.ctx.Done():
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-wait:
		case <-cl.ctx.Done():
			return
		}
	}
}
