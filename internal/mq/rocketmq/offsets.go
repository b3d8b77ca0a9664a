package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

var (
	_ mq.OffsetReader = (*OffsetReader)(nil)
	_ mq.SendBacker   = (*OffsetReader)(nil)
)

// OffsetReader implements mq.OffsetReader and mq.SendBacker for one
// RocketMQ cluster with plain remoting requests (the library exposes none
// of them): queue counts and max/min offsets from the routes and
// GET_MAX_OFFSET / GET_MIN_OFFSET, a group's offsets with
// QUERY_CONSUMER_OFFSET / UPDATE_CONSUMER_OFFSET, reads with PULL_MESSAGE,
// and CONSUMER_SEND_MSG_BACK. Partitions are numbered as in
// QueuePartition. It is safe for concurrent use; every call is bounded by
// its ctx and by RequestTimeout per request.
type OffsetReader struct {
	opts ConsumerOptions
	log  *zap.Logger
	rpc  *brokerRPC

	mu     sync.Mutex
	closed bool
}

// NewOffsetReader validates opts (Group and Subscriptions are not used);
// it does not contact the cluster yet. log may be nil.
func NewOffsetReader(opts ConsumerOptions, log *zap.Logger) (*OffsetReader, error) {
	if log == nil {
		log = zap.NewNop()
	}
	opts.applyDefaults()
	if err := opts.validateReader(); err != nil {
		return nil, err
	}
	r := &OffsetReader{opts: opts, log: log.With(zap.String("cluster", opts.Cluster))}
	r.rpc = newBrokerRPC(&r.opts, r.log, nil)
	return r, nil
}

// Close closes the connections. Idempotent.
func (r *OffsetReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.rpc.close()
	}
	return nil
}

// queues returns the readable queues of topic (ErrTopicNotExist).
func (r *OffsetReader) queues(ctx context.Context, topic string) ([]mqueue, error) {
	rt, err := r.rpc.route(ctx, topic)
	if err != nil {
		return nil, err
	}
	return rt.queues, nil
}

// queueOf maps a partition number of topic back to its queue.
func (r *OffsetReader) queueOf(topic string, partition int32) (mqueue, error) {
	b, id, ok := PartitionQueue(partition)
	if !ok {
		return mqueue{}, fmt.Errorf("%w: %s partition %d names no queue", mq.ErrTopicNotExist, topic, partition)
	}
	return mqueue{Topic: topic, Broker: b, QueueID: id}, nil
}

// Partitions implements mq.OffsetReader: the number of readable queues of
// topic over all its brokers.
func (r *OffsetReader) Partitions(ctx context.Context, topic string) (int32, error) {
	qs, err := r.queues(ctx, topic)
	if err != nil {
		return 0, err
	}
	return int32(len(qs)), nil
}

// perQueue runs f for every readable queue of topic, concurrently, and
// collects the results by partition. The first error wins.
func (r *OffsetReader) perQueue(ctx context.Context, topic string, f func(context.Context, mqueue) (int64, bool, error)) (map[int32]int64, error) {
	qs, err := r.queues(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(qs))
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		first error
	)
	for _, q := range qs {
		p, ok := QueuePartition(q.Broker, q.QueueID)
		if !ok {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, found, err := f(ctx, q)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				if first == nil {
					first = err
				}
			case found:
				out[p] = v
			}
		}()
	}
	wg.Wait()
	if first != nil {
		if !errors.Is(first, mq.ErrTimeout) {
			r.rpc.forget(topic) // a moved broker or a deleted topic: fetch the route again next time
		}
		return nil, first
	}
	return out, nil
}

// HighWatermarks implements mq.OffsetReader: every queue's max offset
// (GET_MAX_OFFSET), the offset the next message will get.
func (r *OffsetReader) HighWatermarks(ctx context.Context, topic string) (map[int32]int64, error) {
	return r.perQueue(ctx, topic, func(ctx context.Context, q mqueue) (int64, bool, error) {
		v, err := r.rpc.maxOffset(ctx, q)
		return v, err == nil, err
	})
}

// LowWatermarks returns every queue's min offset (GET_MIN_OFFSET), the
// oldest message still stored.
func (r *OffsetReader) LowWatermarks(ctx context.Context, topic string) (map[int32]int64, error) {
	return r.perQueue(ctx, topic, func(ctx context.Context, q mqueue) (int64, bool, error) {
		v, err := r.rpc.minOffset(ctx, q)
		return v, err == nil, err
	})
}

// Committed implements mq.OffsetReader: the group's stored offset of every
// queue that has one (QUERY_CONSUMER_OFFSET). RocketMQ stores no
// metadata: Metadata is always "".
func (r *OffsetReader) Committed(ctx context.Context, group, topic string) (map[int32]mq.CommittedOffset, error) {
	m, err := r.perQueue(ctx, topic, func(ctx context.Context, q mqueue) (int64, bool, error) {
		return r.rpc.queryOffset(ctx, group, q)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[int32]mq.CommittedOffset, len(m))
	for p, v := range m {
		out[p] = mq.CommittedOffset{Offset: v}
	}
	return out, nil
}

// Commit implements mq.OffsetReader: UPDATE_CONSUMER_OFFSET per entry,
// waiting for each answer (Metadata is dropped).
func (r *OffsetReader) Commit(ctx context.Context, group, topic string, offsets map[int32]mq.CommittedOffset) error {
	var errs []error
	for _, p := range slices.Sorted(maps.Keys(offsets)) {
		co := offsets[p]
		if co.Offset < 0 {
			continue
		}
		q, err := r.queueOf(topic, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := r.ensureBroker(ctx, q); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := r.rpc.updateOffset(ctx, group, q, co.Offset, false); err != nil {
			errs = append(errs, fmt.Errorf("queue %s: %w", q, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("rocketmq: commit group %q topic %q: %w", group, topic, errors.Join(errs...))
	}
	return nil
}

// ensureBroker makes sure q's broker address is known (a route of the
// topic was fetched).
func (r *OffsetReader) ensureBroker(ctx context.Context, q mqueue) error {
	if _, err := r.rpc.brokerAddr(q.Broker); err == nil {
		return nil
	}
	if _, err := r.rpc.route(ctx, q.Topic); err != nil {
		return err
	}
	_, err := r.rpc.brokerAddr(q.Broker)
	return err
}

// Fetch implements mq.OffsetReader with one PULL_MESSAGE (no tag filter,
// no offset commit) that the broker may hold up to wait; see FetchAs.
// The pull names the consumer group "CARRERA_OFFSET_READER": brokers that
// refuse unknown subscription groups need FetchAs with a real group.
func (r *OffsetReader) Fetch(ctx context.Context, topic string, partition int32, offset int64, maxMsgs int,
	wait time.Duration,
) ([]*mq.Delivery, int64, error) {
	return r.FetchAs(ctx, "CARRERA_OFFSET_READER", "*", topic, partition, offset, maxMsgs, wait)
}

// FetchAs reads up to maxMsgs (at least 1) messages of one queue from
// offset as consumer group group, keeping those whose tag matches expr
// ("*" or "a||b"; filtered on the broker and here), with one PULL_MESSAGE
// that the broker may hold up to wait. next is the broker's next-begin
// offset — also when the answer was "nothing new", "no matching message"
// or "offset moved" (the broker's correction of an offset outside the
// queue: RocketMQ answers the min offset for an offset beyond the end when
// the min offset is 0, else the max offset), as behaviour.md §2.11 asks;
// mq.ErrOffsetOutOfRange is therefore never returned. Messages below
// offset are skipped.
func (r *OffsetReader) FetchAs(ctx context.Context, group, expr, topic string, partition int32, offset int64, maxMsgs int,
	wait time.Duration,
) ([]*mq.Delivery, int64, error) {
	q, err := r.queueOf(topic, partition)
	if err != nil {
		return nil, offset, err
	}
	if err := r.ensureBroker(ctx, q); err != nil {
		return nil, offset, err
	}
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)-r.opts.RequestTimeout)
	}
	wait = max(wait, 0)
	maxMsgs = max(maxMsgs, 1)
	filter := newTagFilter(expr)
	res, err := r.rpc.pull(ctx, group, q, max(offset, 0), maxMsgs, wait, filter)
	if err != nil {
		if !errors.Is(err, mq.ErrTimeout) {
			r.rpc.forget(topic)
		}
		return nil, offset, err
	}
	if res.code != remoting.Success {
		if res.next < 0 {
			return nil, offset, nil
		}
		return nil, res.next, nil
	}
	var out []*mq.Delivery
	next := res.next
	for i := range res.msgs {
		sm := &res.msgs[i]
		if sm.QueueOffset < offset {
			continue
		}
		if len(out) == maxMsgs {
			next = sm.QueueOffset
			break
		}
		props := storedProps(sm)
		if !filter.match(props[remoting.PropertyTags]) {
			continue
		}
		d, err := toDelivery(q, partition, sm, props)
		if err != nil {
			r.log.Error("rocketmq message cannot be decoded; skipped", zap.Stringer("queue", q),
				zap.Int64("offset", sm.QueueOffset), zap.Error(err))
			continue
		}
		out = append(out, d)
	}
	return out, next, nil
}

// SendBack implements mq.SendBacker with CONSUMER_SEND_MSG_BACK (delay
// level 0: the broker applies its retry schedule) to the broker that
// stored d. d must come from this backend (its Handle).
func (r *OffsetReader) SendBack(ctx context.Context, group string, d *mq.Delivery) error {
	h, ok := d.Handle.(*sendBackHandle)
	if !ok || h == nil {
		return errors.New("rocketmq: send-back of a message that was not consumed from RocketMQ")
	}
	q := mqueue{Topic: d.Topic, Broker: h.broker}
	if err := r.ensureBroker(ctx, q); err != nil {
		return err
	}
	ext := map[string]string{
		"group":             group,
		"offset":            strconv.FormatInt(h.commitLogOffset, 10),
		"delayLevel":        "0",
		"originMsgId":       h.msgID,
		"originTopic":       h.originTopic,
		"unitMode":          "false",
		"maxReconsumeTimes": strconv.Itoa(r.opts.MaxReconsumeTimes),
	}
	if _, err := r.rpc.call(ctx, h.broker, remoting.ConsumerSendMsgBack, ext); err != nil {
		return fmt.Errorf("rocketmq: send back %s offset %d: %w", d.Topic, d.Offset, err)
	}
	return nil
}
