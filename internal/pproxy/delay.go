package pproxy

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/chronos/bodyext"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/javastr"
	"github.com/ddmq-go/carrera/internal/mq"
)

// Delay message enumerations (wire-contract.md §6.1).
const (
	delayActionAdd    = 1
	delayActionCancel = 2

	delayTypeDelay        = 2
	delayTypeLoop         = 3
	delayTypeLoopExponent = 4

	minDelayTimestamp = 1_000_000_000
	maxDelayAhead     = 62 * 86400 // seconds
	delayExpireExtra  = 172800     // DELAY: expire = timestamp + 2 days
)

var (
	cancelIDPattern = regexp.MustCompile(`^\d{10}-\d-\d{10}-\d+-\d+-\d+-\d+-[0-9a-z]{8}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{12}$`)
	uuidPattern     = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
)

// innerSeq is the inner-topic sequence of a hash: floor modulo, never
// negative (defect #4 is not reproduced).
func innerSeq(hash int64, n int) int {
	r := hash % int64(n)
	if r < 0 {
		r += int64(n)
	}
	return int(r)
}

func delayResult(c Code, id string) *producer.DelayResult_ {
	return &producer.DelayResult_{Code: int32(c), Msg: c.Msg(), UniqDelayMsgId: id}
}

// validateAdd applies §6.2 in table order and returns the generated id.
func validateAdd(dm *producer.DelayMessage, now time.Time, innerNum int) (string, int64, Code) {
	ts := dm.GetTimestamp()
	if ts < minDelayTimestamp || ts > now.Unix()+maxDelayAhead {
		return "", 0, FailIllegalDelayTimestamp
	}
	typ := dm.GetDmsgtype()
	if typ != delayTypeDelay && typ != delayTypeLoop && typ != delayTypeLoopExponent {
		return "", 0, FailIllegalDelayMsgType
	}
	times, expire, interval := dm.GetTimes(), dm.GetExpire(), dm.GetInterval()
	if typ == delayTypeDelay {
		if times != 0 {
			return "", 0, FailIllegalDelayLoopTimes
		}
		expire = ts + delayExpireExtra
	} else {
		if times <= 0 {
			return "", 0, FailIllegalDelayLoopTimes
		}
		// The id's expire must be 10 digits to stay cancellable.
		if expire <= ts || expire > 9_999_999_999 {
			return "", 0, FailIllegalDelayLoopExpire
		}
		if typ == delayTypeLoop && interval < 3 {
			return "", 0, FailIllegalDelayInterval
		}
		if typ == delayTypeLoopExponent && interval < 2 {
			return "", 0, FailIllegalDelayExpBase
		}
	}
	uuid := dm.GetUUID()
	if !uuidPattern.MatchString(uuid) {
		return "", 0, FailIllegalUniqDelayMsgID
	}
	hash := int64(javastr.HashCode(uuid))
	seq := innerSeq(hash, innerNum)
	id := strings.Join([]string{
		strconv.FormatInt(ts, 10), strconv.Itoa(int(typ)), strconv.FormatInt(expire, 10),
		strconv.FormatInt(times, 10), "0", strconv.FormatInt(interval, 10), strconv.Itoa(seq), uuid,
	}, "-")
	return id, hash, OK
}

// validateCancel applies §6.3 and returns the id's hash and sequence.
func validateCancel(id string, innerNum int) (int64, int, Code) {
	if isBlank(id) || !cancelIDPattern.MatchString(id) {
		return 0, 0, FailIllegalUniqDelayMsgID
	}
	parts := strings.SplitN(id, "-", 8)
	if t := parts[1]; t != "2" && t != "3" && t != "4" {
		return 0, 0, FailIllegalDelayMsgType
	}
	seq, err := strconv.ParseInt(parts[6], 10, 64)
	if err != nil || seq >= int64(innerNum) {
		return 0, 0, FailIllegalDelayInnerSeq
	}
	return int64(javastr.HashCode(parts[7])), int(seq), OK
}

func (h *Handler) sendDelay(ctx context.Context, dm *producer.DelayMessage, timeoutMs int64) (res *producer.DelayResult_) {
	const method = "sendDelaySync"
	start := time.Now()
	snap := h.snap.Load()
	code, id := FailServerShutdown, ""
	topic := ""
	if dm != nil {
		topic = dm.Topic
	}
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("panic in handler", zap.String("method", method), zap.Any("panic", p), zap.Stack("stack"))
			code, id = FailUnknown, ""
			res = delayResult(code, id)
		}
		h.m.call(method, topicLabel(snap, topic), code)
		h.m.observe(method, time.Since(start))
	}()
	if !h.enter() {
		return delayResult(code, id)
	}
	defer h.leave()
	code, id = h.delayOne(ctx, snap, dm, timeoutMs)
	if code != OK && code != FailIllegalUniqDelayMsgID && code != FailIllegalDelayMsgType && code != FailIllegalDelayInnerSeq {
		id = ""
	}
	return delayResult(code, id)
}

// delayOne follows the validation order of wire-contract.md §6.4.
func (h *Handler) delayOne(ctx context.Context, snap *config.PProxySnapshot, dm *producer.DelayMessage, timeoutMs int64) (Code, string) {
	if dm == nil {
		return FailIllegalMsg, ""
	}
	echo := dm.GetUniqDelayMsgId()
	// 1. generic checks.
	if dm.Topic == "" || (dm.Tags != "" && javastr.Len(dm.Tags) > maxTagsChars) ||
		!validProperties(dm.Properties) || len(dm.Body) == 0 || len(dm.Body) > snap.MaxBodyBytes(dm.Topic) {
		return FailIllegalMsg, echo
	}
	// 2. white list; absent delay block = delay disabled → 13.
	prefix, innerNum := delayPrefix(snap)
	tv, ok := snap.Topics[dm.Topic]
	if !ok || prefix == "" || innerNum <= 0 {
		return FailTopicNotAllowed, echo
	}
	// 3. inner-topic prefix.
	if strings.HasPrefix(dm.Topic, prefix) {
		return FailIllegalMsg, echo
	}
	// 4. delay topic.
	if !tv.Config.DelayTopic {
		return FailTopicIsNotDelay, echo
	}
	// 5. action.
	var id string
	var hash int64
	var seq int
	switch dm.Action {
	case delayActionAdd:
		var c Code
		id, hash, c = validateAdd(dm, time.Now(), innerNum)
		if c != OK {
			return c, echo
		}
		seq = innerSeq(hash, innerNum)
	case delayActionCancel:
		var c Code
		hash, seq, c = validateCancel(echo, innerNum)
		if c != OK {
			return c, echo
		}
		id = echo
	default:
		return FailIllegalDelayAction, echo
	}
	// 6. the inner message, re-checked.
	inner := &producer.Message{
		Topic: prefix + strconv.Itoa(seq), Key: id, Tags: dm.Tags, PartitionId: -1, HashId: hash,
	}
	// BodyExt; non-UTF-8 bodies travel as base64 (defect #6 is not
	// reproduced). The delay service decodes it with the same package.
	body := bodyext.Encode(dm.Topic, id, dm.Action, dm.Body, dm.Tags, dm.Properties)
	if javastr.Len(inner.Key) > maxKeyChars || len(body) > snap.MaxBodyBytes(inner.Topic) {
		return FailIllegalMsg, echo
	}
	// 7. send like sendSync, limiter keyed by the user topic; any backend
	// failure is 12 (not 13/15/21, which are decided before sending).
	rec := &mq.Record{Topic: inner.Topic, Key: id, Tags: dm.Tags, Body: body}
	c := h.deliver(ctx, inner, rec, timeoutMs, true, dm.Topic)
	switch c {
	case OK:
		return OK, id
	case FailTopicNotAllowed, FailRefusedByRateLimiter, FailNoProducerForCluster, FailServerShutdown:
		return c, echo
	default:
		return FailTimeout, echo
	}
}
