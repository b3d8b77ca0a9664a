package rocketmq

import (
	"strconv"
	"strings"
	"time"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// PULL limits, as RocketMQ's defaults: at most 32 messages and 256 KiB per
// answer (at least one message), and at most 16000 queue entries scanned
// for a tag match.
const (
	maxPullMessages = 32
	maxPullBytes    = 256 << 10
	maxPullScan     = 16000
	maxHeldPerConn  = 10000
)

type pullArgs struct {
	group   string
	topic   string
	queueID int
	offset  int64
	maxNums int
	tags    map[string]bool // nil: every message
	hashes  []uint32        // tagHash of each of tags
}

// heldPull is a PULL with nothing to answer yet (long polling).
type heldPull struct {
	c     *conn
	req   *rm.Command
	args  pullArgs
	q     *queue
	timer *time.Timer
	done  bool
}

// parseTags turns "a || b" into a set; "", "*" → nil (all).
func parseTags(expr string) map[string]bool {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" {
		return nil
	}
	set := map[string]bool{}
	for t := range strings.SplitSeq(expr, "||") {
		if t = strings.TrimSpace(t); t != "" {
			set[t] = true
		}
	}
	if len(set) == 0 {
		return nil
	}
	return set
}

func (b *broker) pull(c *conn, req *rm.Command) *rm.Command {
	p := &extParser{req: req}
	a := pullArgs{group: p.required("consumerGroup"), topic: p.required("topic")}
	a.queueID = int(p.int("queueId", -1))
	a.offset = p.int("queueOffset", 0)
	a.maxNums = int(p.int("maxMsgNums", maxPullMessages))
	sysFlag := int32(p.int("sysFlag", 0))
	commitOffset := p.int("commitOffset", -1)
	suspend := time.Duration(p.int("suspendTimeoutMillis", 0)) * time.Millisecond
	if p.err != nil {
		return errResp(req, rm.SystemError, "%v", p.err)
	}
	a.maxNums = min(max(a.maxNums, 1), maxPullMessages)

	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.topics[a.topic]
	if t == nil {
		return errResp(req, rm.TopicNotExist, "topic[%s] not exist, apply first please!", a.topic)
	}
	if t.conf.Perm&rm.PermRead == 0 {
		return errResp(req, rm.NoPermission, "the topic[%s] pulling message is forbidden", a.topic)
	}
	if a.queueID < 0 || a.queueID >= t.conf.ReadQueueNums || a.queueID >= len(t.qs) {
		return errResp(req, rm.SystemError, "queueId[%d] is illegal, topic:[%s] topicConfig.readQueueNums:[%d]", a.queueID, a.topic, t.conf.ReadQueueNums)
	}
	// Tag filter: the request's expression, else the group's registered one.
	expr, exprType := req.Ext("subscription"), req.Ext("expressionType")
	if expr == "" {
		if g := b.groups[a.group]; g != nil {
			for _, m := range g.members {
				if e, ok := m.subs[a.topic]; ok {
					expr = e
					break
				}
			}
		}
	}
	if exprType == "" || strings.EqualFold(exprType, "TAG") {
		a.tags = parseTags(expr)
		for t := range a.tags {
			a.hashes = append(a.hashes, tagHash(t))
		}
	}
	if sysFlag&rm.PullFlagCommitOffset != 0 && commitOffset >= 0 {
		b.setOffsetLocked(a.group, a.topic, a.queueID, commitOffset)
	}
	q := t.qs[a.queueID]
	resp, body := b.pullLocked(req, q, a)
	if resp.Code == rm.PullNotFound && sysFlag&rm.PullFlagSuspend != 0 && !b.closed && c.held < maxHeldPerConn {
		hold := min(suspend, b.srv.opts.MaxPullHold)
		if hold > 0 {
			req.Body = nil // the connection's read buffer: not to be kept
			hp := &heldPull{c: c, req: req, args: a, q: q}
			q.waiters = append(q.waiters, hp)
			c.held++
			b.srv.wg.Add(1)
			hp.timer = time.AfterFunc(hold, func() {
				defer b.srv.wg.Done()
				b.expireHeld(hp)
			})
			return nil
		}
	}
	c.sendParts(resp, body)
	return nil
}

// pullLocked reads from q per a and builds the answer, with RocketMQ's
// status rules:
//
//	empty queue: offset 0 → 19 (not found), else 21 (moved) with next 0
//	offset < min → 21, next = min
//	offset == max → 19, next = offset
//	offset > max → 21, next = min when min is 0 (RocketMQ's correction), else max
//	messages but none matches the tags → 20 (retry at once), next = past the scanned ones
//	otherwise → 0 with up to maxNums messages (and ≤ 256 KiB unless a single message is larger)
//
// The answer's body is returned apart, as runs of stored bytes aliasing
// the queue's segments (send it with conn.sendParts).
func (b *broker) pullLocked(req *rm.Command, q *queue, a pullArgs) (*rm.Command, [][]byte) {
	minOff := q.minOff
	maxOff := q.maxOffset()
	var code int16
	next := a.offset
	var body [][]byte
	switch {
	case maxOff == 0:
		next = 0
		code = rm.PullNotFound
		if a.offset != 0 {
			code = rm.PullOffsetMoved
		}
	case a.offset < minOff:
		code, next = rm.PullOffsetMoved, minOff
	case a.offset == maxOff:
		code = rm.PullNotFound
	case a.offset > maxOff:
		code, next = rm.PullOffsetMoved, minOff
		if minOff != 0 {
			next = maxOff
		}
	default:
		n, size := 0, 0
		off := a.offset
		var run slot // the current run of consecutive bytes of one segment (size 0: none)
		for ; off < maxOff && off-a.offset < maxPullScan && n < a.maxNums; off++ {
			if a.tags != nil && !a.matches(q, off) {
				continue
			}
			s := q.index[off-minOff]
			if n > 0 && size+int(s.size) > maxPullBytes {
				break
			}
			if run.size > 0 && s.seg == run.seg && s.pos == run.pos+run.size {
				run.size += s.size
			} else {
				if run.size > 0 {
					body = append(body, q.run(run))
				}
				run = s
			}
			size += int(s.size)
			n++
		}
		if run.size > 0 {
			body = append(body, q.run(run))
		}
		next = off
		code = rm.Success
		if n == 0 {
			code = rm.PullRetryImmediately
		}
	}
	resp := rm.NewResponse(req, code, "")
	resp.ExtFields["nextBeginOffset"] = strconv.FormatInt(next, 10)
	resp.ExtFields["minOffset"] = strconv.FormatInt(minOff, 10)
	resp.ExtFields["maxOffset"] = strconv.FormatInt(maxOff, 10)
	resp.ExtFields["suggestWhichBrokerId"] = "0"
	return resp, body
}

// matches reports whether the message at off carries one of a's tags: its
// tag hash first, then its stored TAGS property.
func (a *pullArgs) matches(q *queue, off int64) bool {
	h := q.index[off-q.minOff].tagHash
	for _, x := range a.hashes {
		if x == h {
			tags, _ := propValue(propertiesOf(q.data(off)), rm.PropertyTags)
			return a.tags[string(tags)]
		}
	}
	return false
}

// wakeWaitersLocked answers the held pulls of q that now find a message.
func (b *broker) wakeWaitersLocked(q *queue) {
	if len(q.waiters) == 0 {
		return
	}
	keep := q.waiters[:0]
	for _, hp := range q.waiters {
		resp, body := b.pullLocked(hp.req, q, hp.args)
		if resp.Code == rm.PullNotFound || resp.Code == rm.PullRetryImmediately {
			keep = append(keep, hp) // nothing new that matches: keep holding
			continue
		}
		b.finishHeldLocked(hp)
		hp.c.sendParts(resp, body)
	}
	clear(q.waiters[len(keep):])
	q.waiters = keep
}

// answerWaitersLocked answers every held pull of q: with a fresh read, or
// with code 17 when the topic was deleted.
func (b *broker) answerWaitersLocked(q *queue, deleted bool) {
	for _, hp := range q.waiters {
		b.finishHeldLocked(hp)
		if deleted {
			hp.c.send(errResp(hp.req, rm.TopicNotExist, "topic[%s] was deleted", q.topic))
		} else {
			hp.c.sendParts(b.pullLocked(hp.req, q, hp.args))
		}
	}
	q.waiters = nil
}

// finishHeldLocked marks hp answered and stops its timer.
func (b *broker) finishHeldLocked(hp *heldPull) {
	if hp.done {
		return
	}
	hp.done = true
	hp.c.held--
	if hp.timer.Stop() {
		b.srv.wg.Done() // the timer's function will not run
	}
}

// expireHeld answers hp when its hold time is over.
func (b *broker) expireHeld(hp *heldPull) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if hp.done {
		return
	}
	hp.done = true
	hp.c.held--
	for i, w := range hp.q.waiters {
		if w == hp {
			hp.q.waiters = append(hp.q.waiters[:i], hp.q.waiters[i+1:]...)
			break
		}
	}
	hp.c.sendParts(b.pullLocked(hp.req, hp.q, hp.args))
}

// shutdownHeld answers every held pull and makes later pulls answer at
// once (Close).
func (b *broker) shutdownHeld() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, t := range b.topics {
		for _, q := range t.qs {
			b.answerWaitersLocked(q, false)
		}
	}
}
