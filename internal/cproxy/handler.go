// Package cproxy implements the DDMQ ConsumerService: the Thrift handler, the
// per-group runtimes (one pull engine per group, one broker group consumer
// per served G@B unit) and the daemon wiring.
//
// The Thrift processor (NewProcessor) is the generated one except for the
// pull reply, which is written by a hand-made compact-protocol encoder that
// passes message bodies to thriftserver by reference (pullreply.go); it
// produces the bytes the generated code would.
package cproxy

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/mq"
)

// Long-poll bounds (wire-contract.md §3.4).
const (
	minLinger = 20 * time.Millisecond
	// maxLinger bounds a client's maxLingerTime so a pull never holds its
	// connection longer than the SDKs' socket timeouts tolerate.
	maxLinger = 30 * time.Second
	// unknownGroupWait is how long a pull for a group this cproxy does not
	// serve waits before its empty answer, so a misconfigured client does
	// not spin (bounded by its own linger).
	unknownGroupWait = time.Second
)

// Batch is what a runtime hands out for one pull: messages of one qid.
type Batch struct {
	Topic    string
	QID      string
	Messages []*mq.Delivery
}

// Runtime is one group's high-level pull runtime.
type Runtime interface {
	// Pull returns up to max messages (max <= 0: the subscription's
	// maxPullBatchSize) of one qid, waiting up to linger for the first.
	Pull(ctx context.Context, topic string, max int, linger time.Duration) (Batch, error)
	// Submit finishes (success) or redelivers (fail) offsets of one qid.
	Submit(topic, qid string, success, fail []int64)
}

// Runtimes resolves groups; Pull marks the group active (lazy start).
type Runtimes interface {
	// ForPull returns the runtime of a high-level pull group served here,
	// starting it if it is idle; false if the group is unknown, low-level
	// or push-only.
	ForPull(group string) (Runtime, bool)
	// ForSubmit returns the runtime of a running group without starting it.
	ForSubmit(group string) (Runtime, bool)
}

// StatsSource answers getConsumeStats.
type StatsSource interface {
	ConsumeStats(ctx context.Context, group, topic string) ([]*consumer.ConsumeStats, error)
}

// Handler implements consumer.ConsumerService.
type Handler struct {
	log      *zap.Logger
	runtimes Runtimes
	stats    StatsSource
	lowLevel LowLevelAPI // nil: fetch/ack not served
}

var _ consumer.ConsumerService = (*Handler)(nil)

// NewHandler returns the ConsumerService handler.
func NewHandler(log *zap.Logger, r Runtimes, s StatsSource) *Handler {
	return &Handler{log: log, runtimes: r, stats: s}
}

// WithLowLevel serves fetch/ack with l and returns h.
func (h *Handler) WithLowLevel(l LowLevelAPI) *Handler {
	h.lowLevel = l
	return h
}

// submitChain applies a ConsumeResult chain, each element to its own
// context's group (DDMQ defect #11 is not reproduced). The chain length is
// bounded by the frame size; cycles cannot occur in a decoded chain.
func (h *Handler) submitChain(r *consumer.ConsumeResult_) {
	for ; r != nil; r = r.NextResult_ {
		c := r.GetContext()
		if c == nil || c.GroupId == "" || c.Qid == "" {
			continue
		}
		rt, ok := h.runtimes.ForSubmit(c.GroupId)
		if !ok {
			continue // group not running here: the offsets were never handed out by us
		}
		rt.Submit(c.Topic, c.Qid, r.SuccessOffsets, r.FailOffsets)
	}
}

func lingerOf(req *consumer.PullRequest) time.Duration {
	d := time.Duration(req.GetMaxLingerTime()) * time.Millisecond
	return min(max(d, minLinger), maxLinger)
}

func emptyPull() *consumer.PullResponse {
	return &consumer.PullResponse{Context: &consumer.Context{}, Messages: []*consumer.Message{}}
}

// Pull implements ConsumerService.pull: piggy-backed acks first, then one
// batch of one qid (possibly empty after the linger).
func (h *Handler) Pull(ctx context.Context, req *consumer.PullRequest) (*consumer.PullResponse, error) {
	r, err := h.pull(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(r.msgs) == 0 {
		return emptyPull(), nil
	}
	resp := &consumer.PullResponse{
		Context:  &consumer.Context{GroupId: r.group, Topic: r.topic, Qid: r.qid},
		Messages: make([]*consumer.Message, len(r.msgs)),
	}
	for i, d := range r.msgs {
		resp.Messages[i] = toThrift(d)
	}
	return resp, nil
}

// pulled is the answer to one pull before it is turned into wire structs:
// the context fields and the batch. The zero value is the empty answer
// (emptyPull: empty context strings, no message).
type pulled struct {
	group, topic, qid string
	msgs              []*mq.Delivery
}

// pull is Pull without the conversion to consumer.Message, shared by Pull
// and the pull reply encoder (pullreply.go), which writes the deliveries
// straight to the wire. The error is always nil today; it is kept so that
// both paths answer a future error the way the generated processor does.
func (h *Handler) pull(ctx context.Context, req *consumer.PullRequest) (pulled, error) {
	if req == nil {
		return pulled{}, nil
	}
	h.submitChain(req.Result_)
	linger := lingerOf(req)
	rt, ok := h.runtimes.ForPull(req.GroupId)
	if !ok {
		t := time.NewTimer(min(linger, unknownGroupWait))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		return pulled{}, nil
	}
	b, err := rt.Pull(ctx, req.GetTopic(), int(req.GetMaxBatchSize()), linger)
	if err != nil || len(b.Messages) == 0 {
		if err != nil {
			h.log.Warn("pull failed", zap.String("group", req.GroupId), zap.Error(err))
		}
		return pulled{}, nil
	}
	return pulled{group: req.GroupId, topic: b.Topic, qid: b.QID, msgs: b.Messages}, nil
}

// toThrift converts a delivery to the consumer wire message. The pull reply
// encoder (pullreply.go) writes the same bytes without the struct; keep the
// two in step.
func toThrift(d *mq.Delivery) *consumer.Message {
	m := &consumer.Message{Key: d.Key, Value: d.Body, Tag: d.Tags, Offset: d.Offset}
	if len(d.Properties) > 0 {
		m.Properties = d.Properties
	}
	if m.Value == nil {
		m.Value = []byte{}
	}
	return m
}

// Submit implements ConsumerService.submit; it always returns true (§5).
func (h *Handler) Submit(_ context.Context, r *consumer.ConsumeResult_) (bool, error) {
	h.submitChain(r)
	return true, nil
}

// GetConsumeStats implements ConsumerService.getConsumeStats with
// group = request.group (DDMQ defect #1 is not reproduced).
func (h *Handler) GetConsumeStats(ctx context.Context, req *consumer.ConsumeStatsRequest) ([]*consumer.ConsumeStats, error) {
	if req == nil || req.Group == "" {
		return []*consumer.ConsumeStats{}, nil
	}
	out, err := h.stats.ConsumeStats(ctx, req.Group, req.GetTopic())
	if err != nil {
		h.log.Warn("getConsumeStats failed", zap.String("group", req.Group), zap.Error(err))
		return []*consumer.ConsumeStats{}, nil
	}
	return out, nil
}

// Fetch implements the low-level ConsumerService.fetch: one QidResponse per
// qid owned by the consumer id's fetcher (code unset). Without a low-level
// server, or for a group that is not a LowLevel group served here, the
// answer lists no qid.
func (h *Handler) Fetch(ctx context.Context, req *consumer.FetchRequest) (*consumer.FetchResponse, error) {
	if h.lowLevel == nil || req == nil {
		return &consumer.FetchResponse{Results: []*consumer.QidResponse{}}, nil
	}
	return &consumer.FetchResponse{Results: h.lowLevel.Fetch(ctx, req)}, nil
}

// Ack implements the low-level ConsumerService.ack: true for an empty offset
// map; else true only if the consumer id's fetcher owns every qid.
func (h *Handler) Ack(ctx context.Context, r *consumer.AckResult_) (bool, error) {
	if r == nil || len(r.Offsets) == 0 {
		return true, nil
	}
	if h.lowLevel == nil {
		return false, nil
	}
	return h.lowLevel.Ack(ctx, r), nil
}
