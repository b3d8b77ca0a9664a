package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
)

var _ mq.GroupConsumer = (*GroupConsumer)(nil)

// maxRejoinBackoff caps the doubling wait between failed generations (a
// missing topic, an unreachable cluster).
const maxRejoinBackoff = 10 * time.Second

// GroupConsumer is one member of a Kafka consumer group (sarama's
// ConsumerGroup, eager range assignment, auto-commit off). Create it with
// NewGroupConsumer and call Run once.
type GroupConsumer struct {
	opts    ConsumerOptions
	cfg     *sarama.Config
	log     *zap.Logger
	started atomic.Bool
	// gate bounds the fetch responses that shared bodies queued in the
	// claim channels keep alive (mq.ShareWindow): the member's sarama
	// client reads all of its claims' responses.
	gate *mq.ShareGate
}

// NewGroupConsumer validates opts. It does not contact the brokers: Run
// does, and keeps retrying while they are unreachable. log may be nil.
func NewGroupConsumer(opts ConsumerOptions, log *zap.Logger) (*GroupConsumer, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts.Brokers = slices.Clone(opts.Brokers)
	opts.Topics = slices.Clone(opts.Topics)
	opts.applyDefaults()
	cfg, err := opts.groupConfig()
	if err != nil {
		return nil, err
	}
	return &GroupConsumer{
		opts: opts,
		cfg:  cfg,
		gate: mq.NewShareGate(sharedCopies(opts.Registerer, opts.Cluster, opts.Group)),
		log: log.With(zap.String("cluster", opts.Cluster), zap.String("group", opts.Group),
			zap.Strings("topics", opts.Topics)),
	}, nil
}

// Run implements mq.GroupConsumer. It joins the group, serves each
// generation's claims to h and rejoins after every rebalance, until ctx is
// done; errors on the way (unreachable brokers, a missing topic, a lost
// session) are logged and retried after RetryBackoff, doubling up to 10s
// while they persist. On return every
// claim has ended, its commits are flushed, and the member has left the
// group. Run returns nil when ctx ended it; it may be called only once.
func (g *GroupConsumer) Run(ctx context.Context, h mq.ClaimHandler) error {
	if !g.started.CompareAndSwap(false, true) {
		return errors.New("kafka: GroupConsumer.Run called twice")
	}
	client, err := sarama.NewClient(g.opts.Brokers, g.cfg)
	if err != nil {
		return fmt.Errorf("kafka: cluster %q brokers %s: %w",
			g.opts.Cluster, strings.Join(g.opts.Brokers, ","), err)
	}
	cg, err := sarama.NewConsumerGroupFromClient(g.opts.Group, client)
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("kafka: group %q: %w", g.opts.Group, err)
	}
	errsDone := make(chan struct{})
	go func() {
		defer close(errsDone)
		for err := range cg.Errors() {
			g.logError(err)
		}
	}()
	g.log.Info("kafka group consumer started", zap.Strings("brokers", g.opts.Brokers),
		zap.String("initialOffset", g.opts.InitialOffset))

	var fatal error
	backoff := g.opts.RetryBackoff
	for ctx.Err() == nil {
		s := &session{g: g, h: h, client: client}
		err := cg.Consume(ctx, g.opts.Topics, s)
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, sarama.ErrClosedConsumerGroup) {
			fatal = err
			break
		}
		if err == nil {
			backoff = g.opts.RetryBackoff
			continue
		}
		g.log.Warn("kafka group session failed; rejoining", zap.Error(err), zap.Duration("backoff", backoff))
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, max(maxRejoinBackoff, g.opts.RetryBackoff))
	}
	// Close leaves the group; the last session has released its claims
	// (and flushed their commits) before Consume returned.
	if err := cg.Close(); err != nil {
		g.log.Debug("kafka group close", zap.Error(err))
	}
	<-errsDone
	// A consumer group made from a client leaves the client open.
	if err := client.Close(); err != nil {
		g.log.Debug("kafka client close", zap.Error(err))
	}
	g.log.Info("kafka group consumer stopped")
	if fatal != nil {
		return fmt.Errorf("kafka: group %q: %w", g.opts.Group, fatal)
	}
	return nil
}

// logError logs an error sarama reports on the group's error channel:
// partition consumer errors, failed commits, heartbeat failures.
func (g *GroupConsumer) logError(err error) {
	var ce *sarama.ConsumerError
	if errors.As(err, &ce) {
		g.log.Warn("kafka consumer error", zap.String("topic", ce.Topic),
			zap.Int32("partition", ce.Partition), zap.Error(ce.Err))
		return
	}
	g.log.Warn("kafka consumer group error", zap.Error(err))
}

type topicPartition struct {
	topic     string
	partition int32
}

// session is the sarama handler of one generation (one Consume call).
type session struct {
	g      *GroupConsumer
	h      mq.ClaimHandler
	client sarama.Client

	// initial holds the committed offsets fetched in Setup; read-only once
	// the claims start.
	initial map[topicPartition]mq.CommittedOffset

	stopFlush chan struct{}
	flushDone chan struct{}
}

// Setup fetches the committed state (offset and metadata) of the claimed
// partitions, hands the assignment to the handler and starts the commit
// flusher.
func (s *session) Setup(sess sarama.ConsumerGroupSession) error {
	claims := sess.Claims()
	assigned := make(map[string][]int32, len(claims))
	n := 0
	for t, ps := range claims {
		assigned[t] = slices.Clone(ps)
		n += len(ps)
	}
	s.initial = make(map[topicPartition]mq.CommittedOffset, n)
	if n > 0 {
		// sarama fetched the same offsets a moment ago for its offset
		// manager but keeps the metadata to itself.
		got, err := committedOffsets(sess.Context(), s.client, s.g.opts.Group, assigned, s.g.opts.RetryBackoff)
		if err != nil {
			// Claims then start without metadata: offsets finished above
			// the committed one may be delivered again (never lost).
			s.g.log.Warn("kafka committed metadata not fetched; claims start without it", zap.Error(err))
		}
		for t, ps := range got {
			for p, c := range ps {
				s.initial[topicPartition{t, p}] = c
			}
		}
	}
	s.pinStart(sess, assigned)
	s.g.log.Info("kafka group generation joined", zap.String("member", sess.MemberID()),
		zap.Int32("generation", sess.GenerationID()), zap.Any("assigned", assigned))
	s.h.Setup(assigned)

	s.stopFlush = make(chan struct{})
	s.flushDone = make(chan struct{})
	go s.flusher(sess)
	return nil
}

// pinStart commits the starting position of every assigned partition that
// has no committed offset yet, before its claim starts. Without it a member
// that crashes before its first commit of a partition leaves the partition
// uncommitted, and the next owner starts again at "newest" — skipping every
// message produced in between (at-least-once broken for new groups). sarama
// created the partition offset managers before Setup, so the marked
// position is also where this member's claim starts.
func (s *session) pinStart(sess sarama.ConsumerGroupSession, assigned map[string][]int32) {
	initial, err := parseInitialOffset(s.g.opts.InitialOffset)
	if err != nil {
		return // validated at construction
	}
	pinned := 0
	for t, ps := range assigned {
		for _, p := range ps {
			if c, ok := s.initial[topicPartition{t, p}]; ok && c.Offset >= 0 {
				continue
			}
			off, err := s.client.GetOffset(t, p, initial)
			if err != nil || off < 0 {
				s.g.log.Warn("kafka start offset not pinned; a crash before the first commit may skip messages",
					zap.String("topic", t), zap.Int32("partition", p), zap.Error(err))
				continue
			}
			sess.MarkOffset(t, p, off, "")
			pinned++
		}
	}
	if pinned > 0 {
		sess.Commit()
		s.g.log.Info("kafka start offsets committed for partitions without one", zap.Int("partitions", pinned))
	}
}

// flusher commits what the claims marked every CommitInterval.
func (s *session) flusher(sess sarama.ConsumerGroupSession) {
	defer close(s.flushDone)
	t := time.NewTicker(s.g.opts.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			sess.Commit()
		case <-s.stopFlush:
			return
		}
	}
}

// Cleanup runs once every ConsumeClaim has returned: a last flush, then the
// handler's Cleanup.
func (s *session) Cleanup(sess sarama.ConsumerGroupSession) error {
	if s.stopFlush != nil {
		close(s.stopFlush)
		<-s.flushDone
	}
	sess.Commit()
	s.h.Cleanup()
	return nil
}

// ConsumeClaim serves one partition of the generation: it converts sarama's
// messages for the handler's Claim, which runs on this goroutine. Commits
// made up to the claim's end are flushed by Cleanup, which sarama runs
// after every ConsumeClaim of the generation returned and before it
// releases the partitions (all claims end together: eager assignment).
func (s *session) ConsumeClaim(sess sarama.ConsumerGroupSession, sc sarama.ConsumerGroupClaim) error {
	ctx, cancel := context.WithCancel(sess.Context())
	defer cancel()
	c := &claim{
		topic:     sc.Topic(),
		partition: sc.Partition(),
		ctx:       ctx,
		msgs:      make(chan *mq.Delivery, mq.ClaimBuffer),
		sess:      sess,
		sc:        sc,
	}
	c.initial = s.initialFor(c.topic, c.partition, sc.InitialOffset())
	c.last = c.initial
	s.g.log.Debug("kafka claim started", zap.String("topic", c.topic), zap.Int32("partition", c.partition),
		zap.Int64("start", sc.InitialOffset()), zap.Int64("committed", c.initial.Offset))

	pumpDone := make(chan struct{})
	go func() {
		defer close(pumpDone)
		defer close(c.msgs)
		defer cancel()
		if !pump(ctx, sc.Messages(), s.g.gate.Sender(c.msgs)) && sess.Context().Err() == nil {
			// sarama gave the partition up (e.g. an offset out of range
			// mid-stream); ending the claim ends the generation and the
			// member rejoins.
			s.g.log.Warn("kafka partition consumer stopped; ending the claim",
				zap.String("topic", c.topic), zap.Int32("partition", c.partition))
		}
	}()

	s.h.Claim(c)
	// A handler that returned early still owns the partition until the
	// generation ends; returning now would end the generation for all.
	<-ctx.Done()
	<-pumpDone
	c.end()
	return nil
}

// initialFor is the committed state the claim starts from. sarama's
// InitialOffset is authoritative (messages start there); the metadata
// fetched in Setup is used only if it belongs to that offset.
func (s *session) initialFor(topic string, partition int32, start int64) mq.CommittedOffset {
	if start < 0 { // no committed offset, or one outside the log
		return mq.CommittedOffset{Offset: -1}
	}
	c, ok := s.initial[topicPartition{topic, partition}]
	if ok && c.Offset == start {
		return c
	}
	if ok {
		s.g.log.Warn("kafka committed offset changed between fetches; claim starts without metadata",
			zap.String("topic", topic), zap.Int32("partition", partition),
			zap.Int64("start", start), zap.Int64("fetched", c.Offset))
	}
	return mq.CommittedOffset{Offset: start}
}

// pump converts and forwards messages through s until in closes (false) or
// ctx is done (true); it closes s.
func pump(ctx context.Context, in <-chan *sarama.ConsumerMessage, s *mq.BoundedSender) bool {
	defer s.Close()
	for {
		var m *sarama.ConsumerMessage
		var ok bool
		// A receive that does not block first: a two-case select costs a
		// lock of both channels per message (8 % of cproxy's CPU at C=16
		// with Send's). ctx is seen when in runs dry or Send blocks.
		select {
		case m, ok = <-in:
		default:
			select {
			case m, ok = <-in:
			case <-ctx.Done():
				return true
			}
		}
		if !ok {
			return false
		}
		if !s.Send(ctx, messageDelivery(m)) {
			return true
		}
	}
}

func messageDelivery(m *sarama.ConsumerMessage) *mq.Delivery {
	d := &mq.Delivery{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       string(m.Key),
		// Not copied: sarama's value is a window into the whole fetch
		// response. The member's ShareGate and the engine bound how long
		// such windows are held (DESIGN.md 27); the holders copy the rest.
		Body:      m.Value,
		Shared:    len(m.Value) > 0,
		Timestamp: recordTime(m.Timestamp),
	}
	d.Tags, d.Properties = headerFields(m.Headers)
	return d
}

// recordTime maps the "no timestamp" of old records (-1 ms) to the zero
// time.
func recordTime(t time.Time) time.Time {
	if t.UnixMilli() <= 0 {
		return time.Time{}
	}
	return t
}

// claim implements mq.Claim on a sarama claim of the session.
type claim struct {
	topic     string
	partition int32
	ctx       context.Context
	initial   mq.CommittedOffset
	msgs      chan *mq.Delivery
	sess      sarama.ConsumerGroupSession
	sc        sarama.ConsumerGroupClaim

	mu    sync.Mutex
	ended bool
	last  mq.CommittedOffset // last value handed to the offset manager
}

var _ mq.Claim = (*claim)(nil)

func (c *claim) Topic() string                 { return c.topic }
func (c *claim) Partition() int32              { return c.partition }
func (c *claim) Context() context.Context      { return c.ctx }
func (c *claim) Initial() mq.CommittedOffset   { return c.initial }
func (c *claim) Messages() <-chan *mq.Delivery { return c.msgs }
func (c *claim) HighWatermark() int64          { return c.sc.HighWaterMarkOffset() }

// Commit implements mq.Claim: the partition's offset manager takes
// (c.Offset, c.Metadata) as is, also when that moves the offset back or
// changes only the metadata. Negative offsets are ignored.
func (c *claim) Commit(co mq.CommittedOffset) {
	if co.Offset < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ended || co == c.last {
		return
	}
	c.last = co
	// sarama's MarkOffset only moves forward and ResetOffset only back (or
	// to the same offset, with new metadata); exactly one of them applies.
	c.sess.ResetOffset(c.topic, c.partition, co.Offset, co.Metadata)
	c.sess.MarkOffset(c.topic, c.partition, co.Offset, co.Metadata)
}

// end makes later commits no-ops.
func (c *claim) end() {
	c.mu.Lock()
	c.ended = true
	c.mu.Unlock()
}
