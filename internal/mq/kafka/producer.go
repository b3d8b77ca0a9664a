package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
)

var _ mq.Producer = (*Producer)(nil)

// TagsHeader is the record header carrying mq.Record.Tags (behaviour.md
// §1.12); properties travel as headers under their own names.
const TagsHeader = "TAGS"

// Producer produces records to one Kafka cluster. Create it with
// NewProducer; it is safe for concurrent use.
type Producer struct {
	opts  Options
	log   *zap.Logger
	cfg   *sarama.Config
	insts []*instance
	meta  sarama.Client // insts[0].client; serves Resolve

	inflight  atomic.Int64 // bytes of records handed over, not completed
	bufFull   atomic.Int64 // records refused with ErrBufferFull
	bg        tracker      // fetchers and rejection reporters
	unmetrics func()       // unregisters from the metrics hub

	// sendMu is read-held while a record is handed to sarama; Close
	// write-locks it once after closing stopping, so no hand-over is in
	// progress or starts once AsyncClose runs (sarama panics on a send
	// after its input closes).
	sendMu    sync.RWMutex
	closed    bool
	stopping  chan struct{} // closed when Close starts
	closing   atomic.Bool
	closeDone chan struct{}

	known   sync.Map // topic → struct{}: in the metadata cache
	fetchMu sync.Mutex
	fetches map[string]*fetchCall
}

type instance struct {
	id      int
	client  sarama.Client
	ap      sarama.AsyncProducer
	drained chan struct{} // closed when the drainer returns

	mu      sync.Mutex
	pending map[*pending]struct{}
}

// pending is the per-record state carried in ProducerMessage.Metadata.
type pending struct {
	done func(error)
	size int64
	inst *instance // nil until handed to an instance
	fin  atomic.Bool
}

// NewProducer validates opts and starts opts.Instances sarama producers.
// Like Kafka's Java producer it does not contact the brokers yet: the first
// Resolve (the pproxy's warm-up) or Produce does, and reports an unreachable
// cluster then. log may be nil.
func NewProducer(opts Options, log *zap.Logger) (*Producer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts.Brokers = slices.Clone(opts.Brokers)
	opts.applyDefaults()
	cfg, err := opts.saramaConfig()
	if err != nil {
		return nil, err
	}
	p := &Producer{
		opts:      opts,
		log:       log.With(zap.String("cluster", opts.Cluster)),
		cfg:       cfg,
		stopping:  make(chan struct{}),
		closeDone: make(chan struct{}),
		fetches:   make(map[string]*fetchCall),
	}
	for i := range opts.Instances {
		client, err := sarama.NewClient(opts.Brokers, cfg)
		if err == nil {
			var ap sarama.AsyncProducer
			ap, err = sarama.NewAsyncProducerFromClient(client)
			if err == nil {
				p.insts = append(p.insts, &instance{
					id: i, client: client, ap: ap,
					drained: make(chan struct{}),
					pending: make(map[*pending]struct{}),
				})
				continue
			}
			_ = client.Close()
		}
		for _, in := range p.insts {
			in.ap.AsyncClose()
			<-in.ap.Errors() // closed once the idle producer has shut down
			_ = in.client.Close()
		}
		return nil, fmt.Errorf("kafka: cluster %q brokers %s: %w",
			opts.Cluster, strings.Join(opts.Brokers, ","), err)
	}
	p.meta = p.insts[0].client
	for _, in := range p.insts {
		go p.drain(in)
	}
	p.unmetrics = registerMetrics(opts.Registerer, p)
	p.log.Info("kafka producer started",
		zap.Strings("brokers", opts.Brokers), zap.Int("instances", opts.Instances),
		zap.String("acks", opts.Acks), zap.Int("retries", opts.Retries))
	return p, nil
}

// instanceFor picks the instance of (topic, partition): FNV-1a over both,
// so one partition always uses one instance.
func (p *Producer) instanceFor(topic string, partition int32) *instance {
	if len(p.insts) == 1 {
		return p.insts[0]
	}
	h := uint32(2166136261)
	for i := 0; i < len(topic); i++ {
		h ^= uint32(topic[i])
		h *= 16777619
	}
	for range 4 {
		h ^= uint32(partition) & 0xff
		h *= 16777619
		partition >>= 8
	}
	return p.insts[h%uint32(len(p.insts))]
}

// Produce implements mq.Producer. rec.Target.Partition is used as is
// (sarama's manual partitioner); a partition the topic does not have fails
// with mq.ErrTopicNotExist. done is never called from Produce itself.
// Refusals without waiting: mq.ErrClosed, mq.ErrMessageTooLarge (larger
// than MaxMessageBytes or than the whole buffer) and mq.ErrBufferFull. ctx
// bounds only the wait for room in sarama's input queue (→ mq.ErrTimeout).
func (p *Producer) Produce(ctx context.Context, rec *mq.Record, done func(error)) {
	msg := &sarama.ProducerMessage{
		Topic:     rec.Topic,
		Partition: rec.Target.Partition,
		Value:     sarama.ByteEncoder(rec.Body),
		Headers:   recordHeaders(rec),
	}
	if rec.Key != "" {
		msg.Key = sarama.StringEncoder(rec.Key)
	}
	pd := &pending{done: done, size: int64(msg.ByteSize(2))}
	msg.Metadata = pd

	switch {
	case p.closing.Load():
		p.reject(pd, mq.ErrClosed)
		return
	case pd.size > int64(p.opts.MaxMessageBytes):
		p.reject(pd, fmt.Errorf("%w: record of %d bytes > max %d", mq.ErrMessageTooLarge, pd.size, p.opts.MaxMessageBytes))
		return
	case pd.size > p.opts.BufferMemory:
		p.reject(pd, fmt.Errorf("%w: record of %d bytes > buffer memory %d", mq.ErrMessageTooLarge, pd.size, p.opts.BufferMemory))
		return
	}
	if !p.reserve(pd.size) {
		p.bufFull.Add(1)
		p.reject(pd, fmt.Errorf("%w: %d bytes in flight, limit %d", mq.ErrBufferFull, p.inflight.Load(), p.opts.BufferMemory))
		return
	}

	in := p.instanceFor(rec.Topic, rec.Target.Partition)
	pd.inst = in
	p.sendMu.RLock()
	if p.closed {
		p.sendMu.RUnlock()
		p.reject(pd, mq.ErrClosed)
		return
	}
	in.mu.Lock()
	in.pending[pd] = struct{}{}
	in.mu.Unlock()
	select {
	case in.ap.Input() <- msg:
		p.sendMu.RUnlock()
	case <-p.stopping:
		p.sendMu.RUnlock()
		p.reject(pd, mq.ErrClosed)
	case <-ctx.Done():
		p.sendMu.RUnlock()
		p.reject(pd, fmt.Errorf("%w: waiting for producer queue: %w", mq.ErrTimeout, ctx.Err()))
	}
}

// recordHeaders maps Tags to the TAGS header and each property to a header
// of the same name, sorted by name so the bytes are deterministic. (A
// property named TAGS cannot occur: it is a reserved RocketMQ name that the
// proxy's validation refuses.)
func recordHeaders(rec *mq.Record) []sarama.RecordHeader {
	if rec.Tags == "" && len(rec.Properties) == 0 {
		return nil
	}
	hs := make([]sarama.RecordHeader, 0, len(rec.Properties)+1)
	if rec.Tags != "" {
		hs = append(hs, sarama.RecordHeader{Key: []byte(TagsHeader), Value: []byte(rec.Tags)})
	}
	names := make([]string, 0, len(rec.Properties))
	for k := range rec.Properties {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		hs = append(hs, sarama.RecordHeader{Key: []byte(k), Value: []byte(rec.Properties[k])})
	}
	return hs
}

// headerFields is the inverse of recordHeaders, for consumed records: the
// TAGS header becomes the tags, every other header a property of the same
// name (of equal names the last wins). props is nil when there are none.
func headerFields(hs []*sarama.RecordHeader) (tags string, props map[string]string) {
	for _, h := range hs {
		if h == nil {
			continue
		}
		if string(h.Key) == TagsHeader {
			tags = string(h.Value)
			continue
		}
		if props == nil {
			props = make(map[string]string, len(hs))
		}
		props[string(h.Key)] = string(h.Value)
	}
	return tags, props
}

// reserve takes n bytes of the buffer budget if they fit.
func (p *Producer) reserve(n int64) bool {
	for {
		cur := p.inflight.Load()
		if cur+n > p.opts.BufferMemory {
			return false
		}
		if p.inflight.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// complete finishes pd with err unless it was finished before.
func (p *Producer) complete(pd *pending, err error) {
	if !pd.fin.CompareAndSwap(false, true) {
		return
	}
	if in := pd.inst; in != nil {
		in.mu.Lock()
		delete(in.pending, pd)
		in.mu.Unlock()
		p.inflight.Add(-pd.size)
	}
	pd.done(err)
}

// reject completes pd with err on a goroutine of its own, so done never runs
// on the caller's goroutine. Bytes are returned by complete if pd.inst is set.
func (p *Producer) reject(pd *pending, err error) {
	p.bg.add()
	go func() {
		defer p.bg.exit()
		p.complete(pd, err)
	}()
}

// drain completes the records sarama returns until both channels close.
func (p *Producer) drain(in *instance) {
	defer close(in.drained)
	succ, errs := in.ap.Successes(), in.ap.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			if pd, ok := m.Metadata.(*pending); ok {
				p.complete(pd, nil)
			}
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			if pe.Msg == nil {
				p.log.Warn("kafka producer error without a record", zap.Error(pe.Err))
				continue
			}
			if pd, ok := pe.Msg.Metadata.(*pending); ok {
				p.complete(pd, translate(pe.Err))
			}
		}
	}
}

// Close implements mq.Producer. It refuses new records, lets sarama flush
// what it holds, waits for every result (bounded by ctx), fails the rest
// with mq.ErrClosed and closes the clients. It returns an error wrapping
// ctx's if it gave up waiting. Further calls wait for the first to finish
// (bounded by their ctx) and return nil.
func (p *Producer) Close(ctx context.Context) error {
	if !p.closing.CompareAndSwap(false, true) {
		select {
		case <-p.closeDone:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("kafka: close %q: %w", p.opts.Cluster, ctx.Err())
		}
	}
	defer close(p.closeDone)
	close(p.stopping)
	p.sendMu.Lock()
	p.closed = true
	p.sendMu.Unlock()

	for _, in := range p.insts {
		in.ap.AsyncClose()
	}
	var gaveUp error
	for _, in := range p.insts {
		select {
		case <-in.drained:
		case <-ctx.Done():
			gaveUp = ctx.Err()
		}
		if gaveUp != nil {
			break
		}
	}
	failed := 0
	for _, in := range p.insts {
		in.mu.Lock()
		rest := make([]*pending, 0, len(in.pending))
		for pd := range in.pending {
			rest = append(rest, pd)
		}
		in.mu.Unlock()
		for _, pd := range rest {
			p.complete(pd, mq.ErrClosed)
		}
		failed += len(rest)
	}
	// After a full drain this is the normal order (producer, then client);
	// after giving up it also aborts sarama's in-flight requests so that
	// its goroutines and the drainers finish soon.
	var errs []error
	for _, in := range p.insts {
		if err := in.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
			errs = append(errs, err)
		}
	}
	p.unmetrics()
	if gaveUp == nil {
		if err := p.bg.wait(ctx); err != nil {
			gaveUp = err
		}
	}
	if gaveUp != nil {
		p.log.Warn("kafka producer close gave up waiting; failed the rest",
			zap.Int("failed", failed), zap.Error(gaveUp))
		errs = append(errs, gaveUp)
	} else {
		p.log.Info("kafka producer closed")
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka: close %q: %w", p.opts.Cluster, err)
	}
	return nil
}

// tracker counts goroutines and lets Close wait until there are none. Unlike
// sync.WaitGroup it allows add at any time, also while someone waits.
type tracker struct {
	mu    sync.Mutex
	n     int
	zeroC chan struct{} // closed when n drops to 0; nil while n == 0
}

func (t *tracker) add() {
	t.mu.Lock()
	t.n++
	if t.zeroC == nil {
		t.zeroC = make(chan struct{})
	}
	t.mu.Unlock()
}

func (t *tracker) exit() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.zeroC)
		t.zeroC = nil
	}
	t.mu.Unlock()
}

// wait returns when the count is 0 or with ctx's error.
func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	ch := t.zeroC
	t.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
