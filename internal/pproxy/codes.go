package pproxy

import (
	"context"
	"errors"

	"github.com/ddmq-go/carrera/internal/mq"
)

// Code is a pproxy result code (wire-contract.md §4). Numbers and message
// strings are wire protocol: TestCodesGolden freezes them.
type Code int32

// Result codes returned by pproxy.
const (
	OK                         Code = 0
	FailUnknown                Code = 10
	FailIllegalMsg             Code = 11
	FailTimeout                Code = 12
	FailTopicNotAllowed        Code = 13
	FailTopicNotExist          Code = 14
	FailRefusedByRateLimiter   Code = 15
	FailTopicIsNotDelay        Code = 18
	FailTopicIsDelay           Code = 19
	FailServerShutdown         Code = 20
	FailNoProducerForCluster   Code = 21
	FailIllegalUniqDelayMsgID  Code = 30
	FailIllegalDelayMsgType    Code = 31
	FailIllegalDelayAction     Code = 32
	FailIllegalDelayTimestamp  Code = 33
	FailIllegalDelayInnerSeq   Code = 34
	FailIllegalDelayLoopTimes  Code = 35
	FailIllegalDelayLoopExpire Code = 36
	FailIllegalDelayInterval   Code = 37
	FailIllegalDelayExpBase    Code = 38
)

// codeTable holds the exact message string of every code.
var codeTable = map[Code]string{
	OK:                         "OK",
	FailUnknown:                "FAILED: unknown reason.",
	FailIllegalMsg:             "FAILED: Message is too large or illegal or the length is 0",
	FailTimeout:                "FAILED: Send timeout",
	FailTopicNotAllowed:        "FAILED: Topic is not in the proxy white list",
	FailTopicNotExist:          "FAILED: Topic do not exist!",
	FailRefusedByRateLimiter:   "FAILED: Refused by the rate limiter.",
	FailTopicIsNotDelay:        "FAILED: Topic is not delay",
	FailTopicIsDelay:           "FAILED: Topic is delay",
	FailServerShutdown:         "FAILED: Server is shutting down.",
	FailNoProducerForCluster:   "FAILED: no producer for cluster.",
	FailIllegalUniqDelayMsgID:  "FAILED: Illegal uniqDelayMsgId.",
	FailIllegalDelayMsgType:    "FAILED: Illegal dMsgType.",
	FailIllegalDelayAction:     "FAILED: Illegal delay action.",
	FailIllegalDelayTimestamp:  "FAILED: Illegal delay timestamp.",
	FailIllegalDelayInnerSeq:   "FAILED: Illegal delay innerTopicSeq.",
	FailIllegalDelayLoopTimes:  "FAILED: Illegal delay loopTimes.",
	FailIllegalDelayLoopExpire: "FAILED: Illegal delay expire, expire must be greater than timestamp.",
	FailIllegalDelayInterval:   "FAILED: Illegal delay interval, interval can not be less than 3.",
	FailIllegalDelayExpBase:    "FAILED: Illegal delay exponent base, base can not be less than 2.",
}

// Msg returns the exact wire message string of c.
func (c Code) Msg() string {
	if m, ok := codeTable[c]; ok {
		return m
	}
	return codeTable[FailUnknown]
}

// errorCodes is the one table mapping backend sentinels (internal/mq) to
// result codes (behaviour.md §1.8). Order matters only for errors wrapping
// several sentinels: the first match wins.
var errorCodes = []struct {
	err  error
	code Code
}{
	{mq.ErrTimeout, FailTimeout},
	{context.DeadlineExceeded, FailTimeout},
	{mq.ErrTopicNotExist, FailTopicNotExist},
	{mq.ErrMessageTooLarge, FailIllegalMsg},
	{mq.ErrMessageIllegal, FailIllegalMsg},
	{mq.ErrClosed, FailServerShutdown},
	// A full producer buffer is a transient overload like a slow broker;
	// 12 keeps the SDK from marking this node unhealthy.
	{mq.ErrBufferFull, FailTimeout},
}

// CodeOf maps a backend outcome to a result code; unmatched errors are
// FAIL_UNKNOWN.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return FailUnknown
}
