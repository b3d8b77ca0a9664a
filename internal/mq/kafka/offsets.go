package kafka

import (
	"bytes"
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

var _ mq.OffsetReader = (*OffsetReader)(nil)

// coordinatorAttempts bounds the tries of one offset fetch or commit
// against a coordinator that moves or is loading.
const coordinatorAttempts = 4

// Fetch connections: at most this many idle ones are kept per broker, and
// an idle one is dropped after idleFetchConnAge (brokers close idle
// connections after connections.max.idle.ms, 10 min by default).
const (
	maxIdleFetchConns = 4
	idleFetchConnAge  = 4 * time.Minute
)

// OffsetReader implements mq.OffsetReader for one cluster: offsets, commits
// without group membership, and direct fetches. It is safe for concurrent
// use. Every call is bounded by its ctx (→ mq.ErrTimeout); the request
// itself then finishes in the background, bounded by the client's network
// timeouts.
type OffsetReader struct {
	opts   ConsumerOptions
	cfg    *sarama.Config
	log    *zap.Logger
	client sarama.Client // metadata, list offsets, coordinators
	bg     tracker       // requests running for calls
	closed atomic.Bool

	// Fetches long-poll, and a sarama broker connection serves one request
	// at a time; so each Fetch borrows a connection of its own.
	poolMu     sync.Mutex
	poolClosed bool
	idle       map[string][]idleConn // by broker address
}

type idleConn struct {
	b     *sarama.Broker
	since time.Time
}

// NewOffsetReader validates opts (Group and Topics are not used) and
// creates the client; it does not contact the brokers yet. log may be nil.
func NewOffsetReader(opts ConsumerOptions, log *zap.Logger) (*OffsetReader, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts.Brokers = slices.Clone(opts.Brokers)
	opts.applyDefaults()
	cfg, err := opts.readerConfig()
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(opts.Brokers, cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka: cluster %q brokers %s: %w",
			opts.Cluster, strings.Join(opts.Brokers, ","), err)
	}
	return &OffsetReader{
		opts:   opts,
		cfg:    cfg,
		log:    log.With(zap.String("cluster", opts.Cluster)),
		client: client,
		idle:   make(map[string][]idleConn),
	}, nil
}

// errReaderClosed is returned by calls after Close.
var errReaderClosed = fmt.Errorf("%w: kafka offset reader closed", mq.ErrClosed)

// Close closes the client and the fetch connections and waits (up to 10s)
// for requests still running in the background. Idempotent.
func (r *OffsetReader) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	r.poolMu.Lock()
	r.poolClosed = true
	var idle []*sarama.Broker
	for _, l := range r.idle {
		for _, ic := range l {
			idle = append(idle, ic.b)
		}
	}
	r.idle = nil
	r.poolMu.Unlock()
	for _, b := range idle {
		_ = b.Close()
	}
	var errs []error
	if err := r.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
		errs = append(errs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.bg.wait(ctx); err != nil {
		errs = append(errs, fmt.Errorf("waiting for requests: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka: close offset reader %q: %w", r.opts.Cluster, err)
	}
	return nil
}

// call runs fn in the background and waits for it or for ctx.
func call[T any](r *OffsetReader, ctx context.Context, fn func() (T, error)) (T, error) {
	var zero T
	if r.closed.Load() {
		return zero, errReaderClosed
	}
	if err := ctx.Err(); err != nil {
		return zero, fmt.Errorf("%w: %w", mq.ErrTimeout, err)
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	r.bg.add()
	go func() {
		defer r.bg.exit()
		v, err := fn()
		ch <- result{v, err}
	}()
	select {
	case res := <-ch:
		if res.err != nil && r.closed.Load() && errors.Is(res.err, sarama.ErrClosedClient) {
			return zero, errReaderClosed
		}
		return res.v, res.err
	case <-ctx.Done():
		return zero, fmt.Errorf("%w: %w", mq.ErrTimeout, ctx.Err())
	}
}

// Partitions implements mq.OffsetReader (from the client's metadata cache,
// refreshed every MetadataMaxAge).
func (r *OffsetReader) Partitions(ctx context.Context, topic string) (int32, error) {
	return call(r, ctx, func() (int32, error) {
		ps, err := r.partitions(topic)
		return int32(len(ps)), err
	})
}

func (r *OffsetReader) partitions(topic string) ([]int32, error) {
	ps, err := r.client.Partitions(topic)
	if err != nil {
		return nil, translate(err)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("%w: topic %q has no partitions", mq.ErrTopicNotExist, topic)
	}
	return ps, nil
}

// HighWatermarks implements mq.OffsetReader with one ListOffsets request
// (latest) per leader, sent concurrently; a leadership error refreshes the
// metadata and retries once.
func (r *OffsetReader) HighWatermarks(ctx context.Context, topic string) (map[int32]int64, error) {
	return call(r, ctx, func() (map[int32]int64, error) {
		ps, err := r.partitions(topic)
		if err != nil {
			return nil, err
		}
		return r.listWithRetry(topic, ps, sarama.OffsetNewest)
	})
}

// LowWatermarks returns the log start offset (oldest retained offset) of
// every partition, like HighWatermarks (the low-level fetch corrects an
// offset below the log start with it).
func (r *OffsetReader) LowWatermarks(ctx context.Context, topic string) (map[int32]int64, error) {
	return call(r, ctx, func() (map[int32]int64, error) {
		ps, err := r.partitions(topic)
		if err != nil {
			return nil, err
		}
		return r.listWithRetry(topic, ps, sarama.OffsetOldest)
	})
}

// listWithRetry lists offsets at time at (sarama.OffsetNewest or
// OffsetOldest), refreshing the metadata and retrying once after a
// leadership error.
func (r *OffsetReader) listWithRetry(topic string, ps []int32, at int64) (map[int32]int64, error) {
	for attempt := 0; ; attempt++ {
		out, retry, err := r.listOffsets(topic, ps, at)
		if err == nil || !retry || attempt > 0 {
			return out, err
		}
		_ = r.client.RefreshMetadata(topic)
	}
}

func (r *OffsetReader) listOffsets(topic string, ps []int32, at int64) (out map[int32]int64, retry bool, err error) {
	byLeader := make(map[*sarama.Broker][]int32)
	for _, p := range ps {
		b, err := r.client.Leader(topic, p)
		if err != nil {
			return nil, isLeaderError(err), translate(err)
		}
		byLeader[b] = append(byLeader[b], p)
	}
	type result struct {
		offsets map[int32]int64
		retry   bool
		err     error
	}
	results := make(chan result, len(byLeader))
	for b, bps := range byLeader {
		go func() {
			req := sarama.NewOffsetRequest(r.cfg.Version)
			for _, p := range bps {
				req.AddBlock(topic, p, at, 1)
			}
			resp, err := b.GetAvailableOffsets(req)
			if err != nil {
				results <- result{retry: true, err: translate(err)}
				return
			}
			res := result{offsets: make(map[int32]int64, len(bps))}
			for _, p := range bps {
				blk := resp.GetBlock(topic, p)
				switch {
				case blk == nil:
					res.retry, res.err = true, fmt.Errorf("partition %d: %w", p, sarama.ErrIncompleteResponse)
				case !errors.Is(blk.Err, sarama.ErrNoError):
					res.retry, res.err = isLeaderError(blk.Err), translate(blk.Err)
				case len(blk.Offsets) == 0:
					res.err = fmt.Errorf("partition %d: no offset in response", p)
				default:
					res.offsets[p] = blk.Offsets[0]
					continue
				}
				break
			}
			results <- res
		}()
	}
	out = make(map[int32]int64, len(ps))
	var errs []error
	for range byLeader {
		res := <-results
		if res.err != nil {
			retry = retry || res.retry
			errs = append(errs, res.err)
			continue
		}
		for p, o := range res.offsets {
			out[p] = o
		}
	}
	if len(errs) > 0 {
		what := "high"
		if at == sarama.OffsetOldest {
			what = "low"
		}
		return nil, retry, fmt.Errorf("kafka: %s watermarks of %q: %w", what, topic, errs[0])
	}
	return out, false, nil
}

// isLeaderError: the client's view of partition leadership is stale.
func isLeaderError(err error) bool {
	return errors.Is(err, sarama.ErrNotLeaderForPartition) ||
		errors.Is(err, sarama.ErrLeaderNotAvailable) ||
		errors.Is(err, sarama.ErrFencedLeaderEpoch) ||
		errors.Is(err, sarama.ErrUnknownLeaderEpoch) ||
		errors.Is(err, sarama.ErrReplicaNotAvailable) ||
		errors.Is(err, sarama.ErrNotConnected) ||
		errors.Is(err, sarama.ErrOutOfBrokers)
}

// Committed implements mq.OffsetReader. A group the broker does not know
// (GROUP_ID_NOT_FOUND, which kfake answers where Kafka answers -1) has no
// committed offsets.
func (r *OffsetReader) Committed(ctx context.Context, group, topic string) (map[int32]mq.CommittedOffset, error) {
	return call(r, ctx, func() (map[int32]mq.CommittedOffset, error) {
		ps, err := r.partitions(topic)
		if err != nil {
			return nil, err
		}
		got, err := committedOffsets(ctx, r.client, group, map[string][]int32{topic: ps}, r.opts.RetryBackoff)
		if err != nil {
			return nil, err
		}
		out := got[topic]
		if out == nil {
			out = map[int32]mq.CommittedOffset{}
		}
		return out, nil
	})
}

// Commit implements mq.OffsetReader with a simple OffsetCommit (generation
// -1, no member id). Kafka accepts it only while the group has no members;
// for a group with members it fails (UNKNOWN_MEMBER_ID or
// ILLEGAL_GENERATION). Negative offsets are skipped.
func (r *OffsetReader) Commit(ctx context.Context, group, topic string, offsets map[int32]mq.CommittedOffset) error {
	blocks := make(map[int32]mq.CommittedOffset, len(offsets))
	for p, c := range offsets {
		if c.Offset >= 0 {
			blocks[p] = c
		}
	}
	if len(blocks) == 0 {
		return nil
	}
	_, err := call(r, ctx, func() (struct{}, error) {
		return struct{}{}, commitOffsets(ctx, r.client, group, topic, blocks, r.opts.RetryBackoff)
	})
	return err
}

// isCoordinatorError: the group's coordinator moved, is not available yet
// or is still loading its offsets; retry (after a coordinator refresh).
func isCoordinatorError(err error) bool {
	return errors.Is(err, sarama.ErrNotCoordinatorForConsumer) ||
		errors.Is(err, sarama.ErrConsumerCoordinatorNotAvailable) ||
		errors.Is(err, sarama.ErrOffsetsLoadInProgress)
}

// withCoordinator runs try against group's coordinator up to
// coordinatorAttempts times, refreshing the coordinator and waiting
// backoff between attempts while try reports a retriable error.
func withCoordinator(ctx context.Context, client sarama.Client, group string, backoff time.Duration,
	try func(coord *sarama.Broker) (retry bool, err error),
) error {
	var err error
	for attempt := range coordinatorAttempts {
		if attempt > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w: %w (last error: %w)", mq.ErrTimeout, ctx.Err(), err)
			}
			_ = client.RefreshCoordinator(group)
		}
		var coord *sarama.Broker
		coord, err = client.Coordinator(group)
		if err != nil {
			if errors.Is(err, sarama.ErrClosedClient) {
				return err
			}
			continue
		}
		var retry bool
		if retry, err = try(coord); err == nil || !retry {
			return err
		}
	}
	return err
}

// committedOffsets fetches group's committed offsets of parts from its
// coordinator. Partitions without a committed offset are absent; a group
// the broker does not know has none.
func committedOffsets(ctx context.Context, client sarama.Client, group string, parts map[string][]int32,
	backoff time.Duration,
) (map[string]map[int32]mq.CommittedOffset, error) {
	var out map[string]map[int32]mq.CommittedOffset
	err := withCoordinator(ctx, client, group, backoff, func(coord *sarama.Broker) (bool, error) {
		out = make(map[string]map[int32]mq.CommittedOffset, len(parts))
		req := sarama.NewOffsetFetchRequest(client.Config().Version, group, parts)
		resp, err := coord.FetchOffset(req)
		if err != nil {
			return true, err
		}
		switch ge := resp.GroupError(); {
		case errors.Is(ge, sarama.ErrNoError):
		case errors.Is(ge, sarama.ErrGroupIDNotFound):
			return false, nil
		default:
			return isCoordinatorError(ge), ge
		}
		for topic, ps := range parts {
			for _, p := range ps {
				blk := resp.GetBlock(topic, p)
				if blk == nil {
					continue
				}
				switch {
				case errors.Is(blk.Err, sarama.ErrNoError):
				case errors.Is(blk.Err, sarama.ErrUnknownTopicOrPartition):
					continue
				default:
					return isCoordinatorError(blk.Err), fmt.Errorf("partition %d: %w", p, blk.Err)
				}
				if blk.Offset < 0 {
					continue
				}
				if out[topic] == nil {
					out[topic] = make(map[int32]mq.CommittedOffset, len(ps))
				}
				out[topic][p] = mq.CommittedOffset{Offset: blk.Offset, Metadata: blk.Metadata}
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("kafka: committed offsets of group %q: %w", group, translate(err))
	}
	return out, nil
}

// commitOffsets stores offsets for group without membership.
func commitOffsets(ctx context.Context, client sarama.Client, group, topic string,
	offsets map[int32]mq.CommittedOffset, backoff time.Duration,
) error {
	err := withCoordinator(ctx, client, group, backoff, func(coord *sarama.Broker) (bool, error) {
		req := sarama.NewOffsetCommitRequest(client.Config(), group)
		req.ConsumerGroupGeneration = sarama.GroupGenerationUndefined
		req.ConsumerID = ""
		for p, c := range offsets {
			req.AddBlockWithLeaderEpoch(topic, p, c.Offset, -1, 0, c.Metadata)
		}
		resp, err := coord.CommitOffset(req)
		if err != nil {
			return true, err
		}
		var errs []error
		retry := false
		for p := range offsets {
			kerr, ok := resp.Errors[topic][p]
			if !ok {
				errs = append(errs, fmt.Errorf("partition %d: %w", p, sarama.ErrIncompleteResponse))
				continue
			}
			if !errors.Is(kerr, sarama.ErrNoError) {
				retry = retry || isCoordinatorError(kerr)
				errs = append(errs, fmt.Errorf("partition %d: %w", p, kerr))
			}
		}
		return retry, errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("kafka: commit group %q topic %q: %w", group, topic, translate(err))
	}
	return nil
}

// Fetch implements mq.OffsetReader with one FetchRequest (MinBytes 1,
// MaxWaitTime wait, no fetch session) to the partition's leader over a
// connection of its own. It returns up to maxMsgs (at least 1) messages at
// or above offset, in offset order (a fetched batch may start below
// offset). next is where the following fetch should start: past every
// message returned and past the offsets up to the first message not
// returned that hold nothing to deliver (control records, compacted gaps);
// offset itself when nothing was fetched. wait is shortened to leave ctx's
// deadline room. OFFSET_OUT_OF_RANGE (offset below the log start or above
// the log end) → mq.ErrOffsetOutOfRange; an unknown topic or partition →
// mq.ErrTopicNotExist. A stale leader or a dropped connection is refreshed
// and retried once.
func (r *OffsetReader) Fetch(ctx context.Context, topic string, partition int32, offset int64, maxMsgs int,
	wait time.Duration,
) ([]*mq.Delivery, int64, error) {
	if offset < 0 {
		return nil, offset, fmt.Errorf("%w: %s/%d offset %d", mq.ErrOffsetOutOfRange, topic, partition, offset)
	}
	maxMsgs = max(maxMsgs, 1)
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)-50*time.Millisecond)
	}
	// Leave the response room within the connection's read timeout.
	wait = min(max(wait, 0), r.cfg.Net.ReadTimeout-5*time.Second)
	type result struct {
		msgs []*mq.Delivery
		next int64
	}
	res, err := call(r, ctx, func() (result, error) {
		blk, err := r.fetchBlock(topic, partition, offset, wait)
		if err != nil {
			return result{}, err
		}
		msgs, next := blockDeliveries(topic, partition, blk, offset, maxMsgs)
		return result{msgs, next}, nil
	})
	if err != nil {
		return nil, offset, err
	}
	return res.msgs, res.next, nil
}

// fetchBlock fetches partition from offset and returns its response block
// (error-free).
func (r *OffsetReader) fetchBlock(topic string, partition int32, offset int64, wait time.Duration) (*sarama.FetchResponseBlock, error) {
	for attempt := 0; ; attempt++ {
		blk, retry, err := r.fetchOnce(topic, partition, offset, wait)
		if err == nil {
			return blk, nil
		}
		if !retry || attempt > 0 || r.closed.Load() {
			return nil, fmt.Errorf("kafka: fetch %s/%d at %d: %w", topic, partition, offset, err)
		}
		_ = r.client.RefreshMetadata(topic)
	}
}

func (r *OffsetReader) fetchOnce(topic string, partition int32, offset int64, wait time.Duration) (_ *sarama.FetchResponseBlock, retry bool, _ error) {
	leader, err := r.client.Leader(topic, partition)
	if err != nil {
		return nil, isLeaderError(err), translate(err)
	}
	addr := leader.Addr()
	b, err := r.acquire(addr)
	if err != nil {
		return nil, false, err
	}
	resp, err := b.Fetch(r.fetchRequest(topic, partition, offset, wait))
	r.release(addr, b, err == nil)
	if err != nil {
		// Also a pooled connection that the broker closed while idle.
		return nil, true, translate(err)
	}
	blk := resp.GetBlock(topic, partition)
	if blk == nil {
		return nil, true, sarama.ErrIncompleteResponse
	}
	switch {
	case errors.Is(blk.Err, sarama.ErrNoError):
		return blk, false, nil
	case errors.Is(blk.Err, sarama.ErrOffsetOutOfRange):
		return nil, false, fmt.Errorf("%w: log start %d, end %d: %w", mq.ErrOffsetOutOfRange,
			blk.LogStartOffset, blk.HighWaterMarkOffset, blk.Err)
	default:
		return nil, isLeaderError(blk.Err), translate(blk.Err)
	}
}

// fetchRequest builds a sessionless fetch of one partition, choosing the
// request version for the configured Kafka version as sarama's consumer
// does (the broker connection lowers it to what the broker supports).
func (r *OffsetReader) fetchRequest(topic string, partition int32, offset int64, wait time.Duration) *sarama.FetchRequest {
	v := r.cfg.Version
	req := &sarama.FetchRequest{
		MinBytes:    1,
		MaxWaitTime: int32(wait / time.Millisecond),
		MaxBytes:    r.opts.FetchMaxBytes,
		Isolation:   sarama.ReadUncommitted,
	}
	switch {
	case v.IsAtLeast(sarama.V2_7_0_0):
		req.Version = 12
	case v.IsAtLeast(sarama.V2_3_0_0):
		req.Version = 11
	case v.IsAtLeast(sarama.V2_1_0_0):
		req.Version = 10
	case v.IsAtLeast(sarama.V2_0_0_0):
		req.Version = 8
	case v.IsAtLeast(sarama.V1_1_0_0):
		req.Version = 7
	case v.IsAtLeast(sarama.V0_11_0_0):
		req.Version = 5
	default:
		req.Version = 3
	}
	if req.Version >= 7 {
		req.SessionID = 0
		req.SessionEpoch = -1 // a full fetch outside any fetch session
	}
	req.AddBlock(topic, partition, offset, r.opts.FetchMaxBytes, -1)
	return req
}

// blockDeliveries decodes the messages of blk at or above offset, up to
// maxMsgs, and the offset to fetch next.
func blockDeliveries(topic string, partition int32, blk *sarama.FetchResponseBlock, offset int64, maxMsgs int) ([]*mq.Delivery, int64) {
	var out []*mq.Delivery
	next := offset
	full := false
	add := func(o int64, key, value []byte, hs []*sarama.RecordHeader, ts time.Time) {
		if o < offset {
			return
		}
		if len(out) == maxMsgs {
			full = true
			return
		}
		d := &mq.Delivery{
			Topic: topic, Partition: partition, Offset: o,
			Key: string(key), Body: bytes.Clone(value), Timestamp: recordTime(ts), // see messageDelivery
		}
		d.Tags, d.Properties = headerFields(hs)
		out = append(out, d)
		next = o + 1
	}
	for _, recs := range blk.RecordsSet {
		if full {
			break
		}
		if recs == nil {
			continue
		}
		switch {
		case recs.RecordBatch != nil:
			b := recs.RecordBatch
			if b.PartialTrailingRecord {
				// Cut off by the size limit: fetched again next time.
				return out, next
			}
			if !b.Control {
				for _, rec := range b.Records {
					ts := b.FirstTimestamp.Add(rec.TimestampDelta)
					if b.LogAppendTime {
						ts = b.MaxTimestamp
					}
					add(b.FirstOffset+rec.OffsetDelta, rec.Key, rec.Value, rec.Headers, ts)
					if full {
						break
					}
				}
			}
			if !full {
				next = max(next, b.FirstOffset+int64(b.LastOffsetDelta)+1)
			}
		case recs.MsgSet != nil:
			for _, mb := range recs.MsgSet.Messages {
				if full {
					break
				}
				inner := mb.Messages()
				// Compressed message sets of magic 1 carry offsets relative
				// to the wrapper, whose offset is that of the last inner one.
				var base int64
				if mb.Msg != nil && mb.Msg.Set != nil && mb.Msg.Version >= 1 && len(inner) > 0 {
					base = mb.Offset - inner[len(inner)-1].Offset
				}
				for _, m := range inner {
					if m.Msg == nil {
						continue
					}
					ts := m.Msg.Timestamp
					if mb.Msg != nil && mb.Msg.Set != nil && mb.Msg.LogAppendTime {
						ts = mb.Msg.Timestamp
					}
					add(base+m.Offset, m.Msg.Key, m.Msg.Value, nil, ts)
					if full {
						break
					}
				}
			}
		}
	}
	return out, next
}

// acquire borrows a connection to addr: an idle one or a new one.
func (r *OffsetReader) acquire(addr string) (*sarama.Broker, error) {
	var stale []*sarama.Broker
	defer func() {
		for _, b := range stale {
			_ = b.Close()
		}
	}()
	r.poolMu.Lock()
	if r.poolClosed {
		r.poolMu.Unlock()
		return nil, errReaderClosed
	}
	l := r.idle[addr]
	for len(l) > 0 {
		ic := l[len(l)-1]
		l = l[:len(l)-1]
		if time.Since(ic.since) < idleFetchConnAge {
			r.idle[addr] = l
			r.poolMu.Unlock()
			return ic.b, nil
		}
		stale = append(stale, ic.b)
	}
	r.idle[addr] = l
	r.poolMu.Unlock()
	b := sarama.NewBroker(addr)
	if err := b.Open(r.cfg); err != nil {
		return nil, err
	}
	return b, nil
}

// release returns b to the idle pool if it is healthy and there is room,
// else closes it.
func (r *OffsetReader) release(addr string, b *sarama.Broker, healthy bool) {
	r.poolMu.Lock()
	if healthy && !r.poolClosed && len(r.idle[addr]) < maxIdleFetchConns {
		r.idle[addr] = append(r.idle[addr], idleConn{b: b, since: time.Now()})
		r.poolMu.Unlock()
		return
	}
	r.poolMu.Unlock()
	_ = b.Close()
}
