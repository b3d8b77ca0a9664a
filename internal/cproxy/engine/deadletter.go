package engine

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Dead-letter retry backoff: 250 ms doubling up to 30 s.
const (
	deadLetterBackoffMin = 250 * time.Millisecond
	deadLetterBackoffMax = 30 * time.Second
)

func deadLetterBackoff(attempts int) time.Duration {
	d := deadLetterBackoffMin
	for i := 1; i < attempts && d < deadLetterBackoffMax; i++ {
		d *= 2
	}
	return min(d, deadLetterBackoffMax)
}

// deadLetterLoop is the dead-letter worker: it publishes exhausted jobs one
// at a time through Options.DeadLetter. A job is finished only after its
// publish succeeded; a failed publish is retried with backoff for as long
// as the partition stays claimed (the job holds its offset back meanwhile).
func (e *Engine) deadLetterLoop() {
	defer e.wg.Done()
	for {
		select {
		case <-e.done:
			return
		default:
		}
		e.mu.Lock()
		j := e.nextDeadLetterLocked()
		e.unlock()
		if j == nil {
			select {
			case <-e.dlKick:
				continue
			case <-e.done:
				return
			}
		}
		// j.d, j.dlTopic and j.p's names are immutable while the job is in
		// stDeadLetter; the worker is the only one acting on that state.
		ctx, cancel := context.WithTimeout(e.ctx, e.dlTimeout)
		err := e.deadLetter(ctx, j.p.cluster, j.dlTopic, j.d)
		cancel()

		e.mu.Lock()
		if j.state == stDeadLetter && !j.p.revoked {
			now := e.now()
			p := j.p
			if err == nil {
				p.ut.tm.deadLettered.Inc()
				e.dropLog.Info("message published to the dead-letter topic",
					zap.String("topic", p.key.topic), zap.String("qid", p.key.qid),
					zap.Int64("offset", j.off), zap.String("key", j.d.Key),
					zap.String("reason", j.dlReason), zap.String("deadLetterTopic", j.dlTopic))
				e.finishLocked(j, now)
			} else {
				j.dlAttempts++
				p.ut.tm.deadLetterErr.Inc()
				d := deadLetterBackoff(j.dlAttempts)
				e.log.Warn("dead-letter publish failed; retrying, the offset stays uncommitted",
					zap.String("topic", p.key.topic), zap.String("qid", p.key.qid),
					zap.Int64("offset", j.off), zap.String("deadLetterTopic", j.dlTopic),
					zap.Int("attempts", j.dlAttempts), zap.Duration("retryIn", d), zap.Error(err))
				j.tm.kind = tJobDeadLetter
				e.setTimerLocked(&j.tm, now.Add(d))
			}
		}
		e.unlock()
	}
}

// nextDeadLetterLocked pops the next job still waiting for a publish.
func (e *Engine) nextDeadLetterLocked() *job {
	for {
		j, ok := e.dlq.popFront()
		if !ok {
			return nil
		}
		if j.state == stDeadLetter && !j.p.revoked {
			return j
		}
	}
}
