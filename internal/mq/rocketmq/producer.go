package rocketmq

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	rmq "github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
)

var _ mq.Producer = (*Producer)(nil)

// producerSeq numbers the Producers of this process, so that every client
// instance name is unique (rocketmq-client-go shares one client per
// instance name and refuses a second producer of the same group on it).
var producerSeq atomic.Int64

// Producer produces records to one RocketMQ cluster through
// rocketmq-client-go producers. Create it with NewProducer; it is safe for
// concurrent use. See doc.go for the design.
type Producer struct {
	opts   Options
	log    *zap.Logger
	libLog *zap.Logger // registered for the library's output while open
	m      *producerMetrics
	insts  []*clientInstance
	rr     atomic.Uint32

	routes   *routeTable
	ns       *nameServers
	stopCtx  context.Context // cancelled when Close starts: route lookups, refresher
	stopRefs context.CancelFunc

	// base parents every library send; cancelled at the end of Close so
	// the library gives up its pending responses at once.
	base       context.Context
	cancelBase context.CancelFunc

	stickyMu sync.Mutex
	sticky   map[queueKey]*stick

	ab *autoBatcher // nil without Options.AutoBatch

	// sendMu is read-held while a request is handed to the library; Close
	// write-locks it to set closed before shutting the clients down (the
	// library's shutdown flag is not synchronised).
	sendMu    sync.RWMutex
	closed    bool
	closing   atomic.Bool
	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error

	bg       sync.WaitGroup // route lookups, refresher, rejection reporters, auto-batch workers
	bgMu     sync.Mutex     // orders goBG's Add before Close's Wait
	bgClosed bool           // Close waited for bg: later goroutines run untracked
}

// goBG runs fn on a goroutine counted in bg, so Close waits for it. Once
// Close is about to wait (bgClosed), fn runs untracked: a WaitGroup must
// not be incremented from zero while Wait runs, and what starts this late
// (the auto-batchers and route lookups are stopped by then) only reports a
// refusal to its caller.
func (p *Producer) goBG(fn func()) {
	p.bgMu.Lock()
	if p.bgClosed {
		p.bgMu.Unlock()
		go fn()
		return
	}
	p.bg.Add(1)
	p.bgMu.Unlock()
	go func() {
		defer p.bg.Done()
		fn()
	}()
}

// clientInstance is one rocketmq-client-go producer (one client instance with
// its own connections).
type clientInstance struct {
	id   int
	name string
	p    rmq.Producer

	mu      sync.Mutex
	pending map[*sendOp]struct{}
}

// queueKey identifies one queue of one topic.
type queueKey struct {
	topic string
	q     Queue
}

// stick pins a queue to an instance while requests to it are in flight.
type stick struct {
	inst *clientInstance
	n    int
}

// sendOp is one request in flight: a single record, a ProduceBatch (possibly
// several requests one after another) or an auto-batch. Its done is called
// exactly once, by finish.
type sendOp struct {
	done  func(error)
	n     int // records
	key   queueKey
	inst  *clientInstance
	start time.Time
	fin   atomic.Bool
}

// NewProducer validates opts and starts opts.Instances rocketmq-client-go
// producers. Like the library it does not contact the cluster yet: the
// first Resolve (the pproxy's warm-up) does. log may be nil.
func NewProducer(opts Options, log *zap.Logger) (*Producer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts.applyDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log = log.With(zap.String("cluster", opts.Cluster))
	p := &Producer{
		opts:      opts,
		log:       log,
		m:         newProducerMetrics(opts.Registerer, opts.Cluster, log),
		sticky:    map[queueKey]*stick{},
		closeDone: make(chan struct{}),
	}
	p.stopCtx, p.stopRefs = context.WithCancel(context.Background())
	p.base, p.cancelBase = context.WithCancel(context.Background())
	p.ns = newNameServers(opts.NameServers, log.Named("namesrv"))
	p.routes = &routeTable{
		ns: p.ns, timeout: opts.RouteTimeout, log: log, stop: p.stopCtx, goBG: p.goBG,
		calls: map[string]*routeCall{}, onFetch: p.m.routeLookup, onNew: p.warmLibrary,
	}
	seq := producerSeq.Add(1)
	for i := range opts.Instances {
		name := fmt.Sprintf("%s-%s-%d-%d", opts.InstanceName, opts.Cluster, seq, i)
		rp, err := rmq.NewProducer(
			producer.WithNsResolver(primitive.NewPassthroughResolver(opts.NameServers)),
			producer.WithGroupName(opts.Group),
			producer.WithInstanceName(name),
			producer.WithRetry(0),
			producer.WithQueueSelector(producer.NewManualQueueSelector()),
			producer.WithSendMsgTimeout(opts.SendTimeout),
			producer.WithCompressMsgBodyOverHowmuch(opts.CompressOver),
		)
		if err == nil {
			err = rp.Start()
		}
		if err != nil {
			for _, in := range p.insts {
				_ = in.p.Shutdown()
			}
			p.stopRefs()
			p.cancelBase()
			p.ns.close()
			return nil, fmt.Errorf("rocketmq: cluster %q: starting producer %s: %w", opts.Cluster, name, err)
		}
		p.insts = append(p.insts, &clientInstance{id: i, name: name, p: rp, pending: map[*sendOp]struct{}{}})
	}
	if opts.AutoBatch != nil {
		p.ab = newAutoBatcher(p, *opts.AutoBatch)
	}
	p.libLog = addLibLogger(log)
	p.goBG(p.refresher)
	p.log.Info("rocketmq producer started",
		zap.Strings("nameServers", opts.NameServers), zap.Int("instances", opts.Instances),
		zap.String("group", opts.Group), zap.Bool("autoBatch", opts.AutoBatch != nil))
	return p, nil
}

// refresher refreshes the routes of every topic in use each RouteRefresh.
func (p *Producer) refresher() {
	t := time.NewTicker(p.opts.RouteRefresh)
	defer t.Stop()
	for {
		select {
		case <-p.stopCtx.Done():
			return
		case <-t.C:
			p.routes.refreshAll()
		}
	}
}

// warmBroker is a broker name no broker can have (NUL is not allowed).
const warmBroker = "\x00carrera-warm-up"

// warmLibrary makes every library instance look topic's route up now.
// The library does so only inside a send (for a topic it has no publish
// information of) and publishes the queues before the broker addresses,
// so concurrent first sends of a topic can fail with "route info not
// found". A send to a queue of a broker that cannot exist makes it look
// the route up and then fail before sending anything.
func (p *Producer) warmLibrary(topic string) {
	p.sendMu.RLock()
	defer p.sendMu.RUnlock()
	if p.closed {
		return
	}
	for _, in := range p.insts {
		m := primitive.NewMessage(topic, []byte{0})
		m.Queue = &primitive.MessageQueue{Topic: topic, BrokerName: warmBroker}
		ctx, cancel := context.WithTimeout(p.base, p.opts.RouteTimeout)
		err := in.p.SendAsync(ctx, func(context.Context, *primitive.SendResult, error) {}, m)
		cancel()
		if err == nil {
			p.log.Warn("library warm-up send was accepted", zap.String("topic", topic))
		}
	}
}

// Resolve implements mq.Producer (behaviour.md §1.5): Target.Partition is
// the index of the chosen queue in the topic's writable queues sorted by
// (broker name, queue id) and Target.Broker its broker name. A cached route
// answers without blocking; an unknown topic is looked up at the NameServer
// (bounded by ctx and RouteTimeout): mq.ErrTopicNotExist when it has no
// route or no writable queue.
func (p *Producer) Resolve(ctx context.Context, topic string, sel mq.Selector) (mq.Target, error) {
	if p.closing.Load() {
		return mq.Target{}, mq.ErrClosed
	}
	r, err := p.routes.get(ctx, topic)
	if err != nil {
		return mq.Target{}, err
	}
	idx, wrapped, err := pickQueue(r, sel)
	if err != nil {
		return mq.Target{}, fmt.Errorf("topic %q: %w", topic, err)
	}
	if wrapped {
		p.log.Warn("partitionId beyond the queue count; using it modulo the count",
			zap.String("topic", topic), zap.Int32("partitionId", sel.PartitionID), zap.Int("queues", len(r.Queues)))
	}
	return mq.Target{Partition: int32(idx), Broker: r.Queues[idx].Broker}, nil
}

// Queues returns the sorted writable queues of topic (looking the route
// up if needed): index i is Target.Partition i.
func (p *Producer) Queues(ctx context.Context, topic string) ([]Queue, error) {
	if p.closing.Load() {
		return nil, mq.ErrClosed
	}
	r, err := p.routes.get(ctx, topic)
	if err != nil {
		return nil, err
	}
	return append([]Queue(nil), r.Queues...), nil
}

// Produce implements mq.Producer. rec.Target.Partition indexes the topic's
// sorted writable queues (as Resolve returns it); the message goes to
// exactly that queue. done is never called from Produce itself. Refusals
// without a request: mq.ErrClosed; mq.ErrMessageTooLarge (body above
// MaxMessageSize); mq.ErrMessageIllegal (texts that cannot travel
// byte-exactly, see checkRecord); mq.ErrTopicNotExist (no route, or a
// queue index beyond the queues). ctx bounds only a route lookup for a
// topic not cached yet.
func (p *Producer) Produce(ctx context.Context, rec *mq.Record, done func(error)) {
	p.produce(ctx, []*mq.Record{rec}, done, p.opts.SendTimeout, kindSingle)
}

// ProduceBatch sends recs, which must share one topic and one Target, to
// that queue in order, as SEND_BATCH_MESSAGE requests (behaviour.md §1.10):
// as few as MaxMessageSize and MaxBatchMessages allow, each sent only after
// the previous one succeeded. done is called once: nil when every request
// succeeded, else the first failure (later requests are not sent; earlier
// ones are stored). A single record is sent as a plain SEND_MESSAGE.
func (p *Producer) ProduceBatch(ctx context.Context, recs []*mq.Record, done func(error)) {
	if len(recs) == 0 {
		p.reject(&sendOp{done: done}, nil)
		return
	}
	for _, r := range recs[1:] {
		if r.Topic != recs[0].Topic || r.Target.Partition != recs[0].Target.Partition {
			p.reject(&sendOp{done: done}, fmt.Errorf("%w: a batch must have one topic and one queue", mq.ErrMessageIllegal))
			return
		}
	}
	p.produce(ctx, recs, done, p.opts.BatchTimeout, kindBatch)
}

type sendKind int

const (
	kindSingle sendKind = iota
	kindBatch
	kindAuto
)

func (k sendKind) String() string {
	switch k {
	case kindBatch:
		return "batch"
	case kindAuto:
		return "auto"
	default:
		return "single"
	}
}

// produce validates recs (one topic, one target), converts them and sends
// them as a chain of requests.
func (p *Producer) produce(ctx context.Context, recs []*mq.Record, done func(error), timeout time.Duration, kind sendKind) {
	o := &sendOp{done: done, n: len(recs), start: time.Now()}
	if p.closing.Load() {
		p.reject(o, mq.ErrClosed)
		return
	}
	msgs := make([]*primitive.Message, len(recs))
	for i, rec := range recs {
		if err := p.checkRecord(rec); err != nil {
			p.reject(o, err)
			return
		}
		msgs[i] = toMessage(rec)
	}
	r, err := p.routes.get(ctx, recs[0].Topic)
	if err != nil {
		p.reject(o, err)
		return
	}
	q, err := queueAt(r, recs[0].Topic, recs[0].Target.Partition)
	if err != nil {
		p.reject(o, err)
		return
	}
	p.start(o, queueKey{topic: recs[0].Topic, q: q}, p.chunks(msgs), timeout, kind)
}

// queueAt returns the queue at index idx of r.
func queueAt(r *Route, topic string, idx int32) (Queue, error) {
	if idx < 0 || int(idx) >= len(r.Queues) {
		return Queue{}, fmt.Errorf("%w: topic %q has %d writable queues, no index %d",
			mq.ErrTopicNotExist, topic, len(r.Queues), idx)
	}
	return r.Queues[idx], nil
}

// checkRecord refuses what the broker would refuse or what could not be
// stored byte-exactly: a body above MaxMessageSize (mq.ErrMessageTooLarge);
// a key, tags or property that is not valid UTF-8 (the library sends
// properties in its JSON header, where invalid bytes become U+FFFD) or
// contains the property separators \x01 or \x02; properties longer than a
// broker stores (32767 bytes encoded) (mq.ErrMessageIllegal).
func (p *Producer) checkRecord(rec *mq.Record) error {
	if len(rec.Body) > p.opts.MaxMessageSize {
		return fmt.Errorf("%w: body of %d bytes > maxMessageSize %d", mq.ErrMessageTooLarge, len(rec.Body), p.opts.MaxMessageSize)
	}
	if rec.Topic == "" {
		return fmt.Errorf("%w: empty topic", mq.ErrMessageIllegal)
	}
	size := 0
	check := func(what, s string) error {
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\x01\x02") {
			return fmt.Errorf("%w: %s %q is not valid UTF-8 or contains \\x01/\\x02", mq.ErrMessageIllegal, what, s)
		}
		return nil
	}
	if err := check("key", rec.Key); err != nil {
		return err
	}
	if err := check("tags", rec.Tags); err != nil {
		return err
	}
	size += len(rec.Key) + len(rec.Tags) + 2*len("KEYS\x01\x02") + len("UNIQ_KEY\x01\x02") + 32
	for k, v := range rec.Properties {
		if err := check("property name", k); err != nil {
			return err
		}
		if err := check("property value", v); err != nil {
			return err
		}
		size += len(k) + len(v) + 2
	}
	if size > maxPropertiesLen {
		return fmt.Errorf("%w: properties of about %d bytes > %d", mq.ErrMessageIllegal, size, maxPropertiesLen)
	}
	return nil
}

// maxPropertiesLen is the longest properties string a broker stores (an
// int16 length).
const maxPropertiesLen = 0x7fff

// toMessage converts rec (behaviour.md §1.12): tags → TAGS, key → KEYS
// (as is, not split), every property with a non-empty name as a user
// property, body as is, and a UNIQ_KEY message id (the library sets one
// only for single sends).
func toMessage(rec *mq.Record) *primitive.Message {
	m := primitive.NewMessage(rec.Topic, rec.Body)
	for k, v := range rec.Properties {
		if k != "" {
			m.WithProperty(k, v)
		}
	}
	m.WithProperty(primitive.PropertyTags, rec.Tags)
	m.WithProperty(primitive.PropertyKeys, rec.Key)
	m.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, primitive.CreateUniqID())
	return m
}

// batchOverhead is the per-message framing of a SEND_BATCH_MESSAGE body
// (totalSize, magic, bodyCRC, flag, bodyLen, propLen).
const batchOverhead = 4 + 4 + 4 + 4 + 4 + 2

// chunks splits msgs into requests of at most MaxBatchMessages messages
// whose batch encoding stays within MaxMessageSize (a message too big to
// share a request goes alone).
func (p *Producer) chunks(msgs []*primitive.Message) [][]*primitive.Message {
	if len(msgs) == 1 {
		return [][]*primitive.Message{msgs}
	}
	var out [][]*primitive.Message
	var cur []*primitive.Message
	size := 0
	for _, m := range msgs {
		n := batchOverhead + len(m.Body) + len(m.MarshallProperties())
		if len(cur) > 0 && (len(cur) >= p.opts.MaxBatchMessages || size+n > p.opts.MaxMessageSize) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, m)
		size += n
	}
	return append(out, cur)
}

// start registers o and sends its requests one after another.
func (p *Producer) start(o *sendOp, key queueKey, reqs [][]*primitive.Message, timeout time.Duration, kind sendKind) {
	o.key = key
	in := p.acquire(key)
	o.inst = in
	in.mu.Lock()
	in.pending[o] = struct{}{}
	in.mu.Unlock()
	p.m.inflight.Add(float64(o.n))
	if err := p.send(o, reqs, 0, timeout, kind); err != nil {
		// Report from a goroutine of ours: done is never called from
		// Produce itself.
		p.goBG(func() { p.finish(o, err) })
	}
}

// send hands request i of reqs to o's instance; its completion sends the
// next one or finishes o. It returns the error of a request the library
// refused at once (nothing was sent).
func (p *Producer) send(o *sendOp, reqs [][]*primitive.Message, i int, timeout time.Duration, kind sendKind) error {
	if o.fin.Load() {
		return nil // failed by Close meanwhile
	}
	msgs := reqs[i]
	q := &primitive.MessageQueue{Topic: o.key.topic, BrokerName: o.key.q.Broker, QueueId: o.key.q.ID}
	for _, m := range msgs {
		m.Queue = q
	}
	p.sendMu.RLock()
	defer p.sendMu.RUnlock()
	if p.closed {
		return mq.ErrClosed
	}
	ctx, cancel := context.WithTimeout(p.base, min(timeout, libraryTimeoutCap))
	sent := time.Now()
	err := o.inst.p.SendAsync(ctx, func(_ context.Context, res *primitive.SendResult, err error) {
		cancel()
		p.m.request(kind, len(msgs), time.Since(sent), err)
		if err != nil {
			err = translate(err)
			if isRouteError(err) {
				p.routes.refresh(o.key.topic)
			}
			p.finish(o, err)
			return
		}
		if res != nil && res.Status != primitive.SendOK {
			p.log.Info("stored with a non-OK status", zap.String("topic", o.key.topic),
				zap.Stringer("queue", o.key.q), zap.Int("status", int(res.Status)))
		}
		if i+1 < len(reqs) {
			if err := p.send(o, reqs, i+1, timeout, kind); err != nil {
				p.finish(o, err)
			}
			return
		}
		p.finish(o, nil)
	}, msgs...)
	if err != nil {
		cancel()
		p.m.request(kind, len(msgs), 0, err)
		err = translate(err)
		if isRouteError(err) {
			p.routes.refresh(o.key.topic)
		}
		return err
	}
	return nil
}

// acquire picks the instance for a request to key: round-robin, except
// that a queue with requests in flight stays on their instance, so
// requests to one queue leave on one connection in call order.
func (p *Producer) acquire(key queueKey) *clientInstance {
	if len(p.insts) == 1 {
		return p.insts[0]
	}
	p.stickyMu.Lock()
	defer p.stickyMu.Unlock()
	s := p.sticky[key]
	if s == nil {
		s = &stick{inst: p.insts[int(p.rr.Add(1)-1)%len(p.insts)]}
		p.sticky[key] = s
	}
	s.n++
	return s.inst
}

func (p *Producer) release(key queueKey) {
	if len(p.insts) == 1 {
		return
	}
	p.stickyMu.Lock()
	defer p.stickyMu.Unlock()
	if s := p.sticky[key]; s != nil {
		if s.n--; s.n <= 0 {
			delete(p.sticky, key)
		}
	}
}

// finish completes o once: it leaves the pending set and its done runs.
func (p *Producer) finish(o *sendOp, err error) {
	if !o.fin.CompareAndSwap(false, true) {
		return
	}
	if o.inst != nil {
		o.inst.mu.Lock()
		delete(o.inst.pending, o)
		o.inst.mu.Unlock()
		p.release(o.key)
		p.m.inflight.Sub(float64(o.n))
	}
	p.m.records(o.n, err)
	o.done(err)
}

// reject completes o (never registered) from a goroutine of ours.
func (p *Producer) reject(o *sendOp, err error) {
	p.goBG(func() { p.finish(o, err) })
}

// pendingCount is the number of ops in flight.
func (p *Producer) pendingCount() int {
	n := 0
	for _, in := range p.insts {
		in.mu.Lock()
		n += len(in.pending)
		in.mu.Unlock()
	}
	return n
}

// Close implements mq.Producer: it refuses new records, flushes the
// auto-batchers, waits (bounded by ctx) until every request in flight
// completed, fails what remains with mq.ErrClosed (such records may still
// be stored), then shuts the clients down. It returns an error wrapping
// ctx's if it gave up waiting. Idempotent: later calls wait for the first
// and return nil.
func (p *Producer) Close(ctx context.Context) error {
	first := false
	p.closeOnce.Do(func() {
		first = true
		defer close(p.closeDone)
		p.closing.Store(true)
		p.stopRefs()
		if p.ab != nil {
			p.ab.close(ctx)
		}
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
	wait:
		for p.pendingCount() > 0 {
			select {
			case <-ctx.Done():
				p.closeErr = fmt.Errorf("rocketmq: close gave up waiting for %d requests: %w", p.pendingCount(), ctx.Err())
				break wait
			case <-tick.C:
			}
		}
		for _, in := range p.insts {
			in.mu.Lock()
			ops := make([]*sendOp, 0, len(in.pending))
			for o := range in.pending {
				ops = append(ops, o)
			}
			in.mu.Unlock()
			for _, o := range ops {
				p.finish(o, fmt.Errorf("%w: producer closed before the broker answered", mq.ErrClosed))
			}
		}
		p.sendMu.Lock()
		p.closed = true
		p.sendMu.Unlock()
		p.cancelBase()
		for _, in := range p.insts {
			_ = in.p.Shutdown()
		}
		p.ns.close()
		p.bgMu.Lock()
		p.bgClosed = true
		p.bgMu.Unlock()
		p.bg.Wait()
		removeLibLogger(p.libLog)
		p.m.unregister()
		if p.closeErr != nil {
			p.log.Warn("rocketmq producer closed", zap.Error(p.closeErr))
		} else {
			p.log.Info("rocketmq producer closed")
		}
	})
	<-p.closeDone
	if !first {
		return nil
	}
	return p.closeErr
}
