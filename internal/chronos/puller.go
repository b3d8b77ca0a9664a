package chronos

import (
	"context"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
)

// puller is one pulling goroutine: an ordinary cproxy pull client of the
// inner group (behaviour.md §3.1–§3.2) with acknowledgements piggy-backed
// on the next pull.
type puller struct {
	log    *zap.Logger
	m      *metrics
	engine *Engine
	role   *role
	clock  Clock

	addr         string
	group, topic string
	batch        int32
	linger       time.Duration
	timeout      time.Duration
	retry        time.Duration
	hold         time.Duration

	trans  thrift.TTransport
	client *consumer.ConsumerServiceClient
}

// run pulls until ctx ends; the batch in hand is finished (stored, due
// occurrences sent) and its acknowledgement submitted before it returns.
func (p *puller) run(ctx context.Context) {
	defer p.close()
	var ack *consumer.ConsumeResult_
	for ctx.Err() == nil {
		if err := p.connect(); err != nil {
			p.log.Warn("cproxy connect failed", zap.String("addr", p.addr), zap.Error(err))
			p.pause(ctx)
			continue
		}
		bs, ml := p.batch, int32(p.linger.Milliseconds())
		topic := p.topic
		resp, err := p.client.Pull(context.Background(), &consumer.PullRequest{GroupId: p.group, Topic: &topic,
			MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack})
		if err != nil {
			// The piggy-backed ack may be lost: it is resent with the next
			// pull (cproxy ignores offsets it no longer has in flight).
			p.log.Warn("pull failed", zap.String("addr", p.addr), zap.Error(err))
			p.close()
			p.pause(ctx)
			continue
		}
		ack = nil
		if len(resp.GetMessages()) == 0 || resp.Context == nil {
			continue
		}
		if offs := p.handle(ctx, resp); len(offs) > 0 {
			ack = &consumer.ConsumeResult_{Context: resp.Context, SuccessOffsets: offs}
		}
	}
	if ack != nil && p.client != nil {
		if _, err := p.client.Submit(context.Background(), ack); err != nil {
			p.log.Warn("final submit failed; the messages will be redelivered", zap.Error(err))
		}
	}
}

// handle ingests a batch (one qid) and returns the offsets to acknowledge.
// A node that is not master ingests only messages below the master's
// published offset of the qid; for the others it waits up to hold for the
// published offsets to advance, and leaves what is still beyond them
// un-acknowledged: cproxy redelivers them after the group's timeout
// (behaviour.md §4 defect #18: never nack-loop, never drop).
func (p *puller) handle(ctx context.Context, resp *consumer.PullResponse) []int64 {
	qid := resp.Context.Qid
	msgs := resp.Messages
	allowed := make([]InnerMessage, 0, len(msgs))
	var held []*consumer.Message
	split := func(in []*consumer.Message) {
		held = held[:0]
		for _, m := range in {
			if p.role.Allowed(qid, m.Offset) {
				allowed = append(allowed, InnerMessage{Offset: m.Offset, Value: m.Value})
			} else {
				held = append(held, m)
			}
		}
	}
	changed := p.role.Changed() // before the check: no change is missed
	split(msgs)
	if len(held) > 0 {
		deadline := p.clock.After(p.hold)
	wait:
		for len(held) > 0 {
			select {
			case <-changed:
				changed = p.role.Changed()
				split(append([]*consumer.Message(nil), held...))
			case <-deadline:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		if len(held) > 0 {
			p.m.backupHeld.Add(float64(len(held)))
		}
	}
	if len(allowed) == 0 {
		return nil
	}
	for {
		acks, err := p.engine.Ingest(allowed)
		if err == nil {
			return acks
		}
		p.log.Error("storing a pulled batch failed; retrying", zap.String("qid", qid), zap.Error(err))
		select {
		case <-ctx.Done():
			return nil // not acknowledged: redelivered
		case <-p.clock.After(p.retry):
		}
	}
}

func (p *puller) connect() error {
	if p.client != nil {
		return nil
	}
	trans, proto, err := dialThrift(p.addr, p.timeout)
	if err != nil {
		return err
	}
	p.trans, p.client = trans, consumer.NewConsumerServiceClient(thrift.NewTStandardClient(proto, proto))
	return nil
}

func (p *puller) close() {
	if p.trans != nil {
		_ = p.trans.Close()
	}
	p.trans, p.client = nil, nil
}

func (p *puller) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-p.clock.After(p.retry):
	}
}
