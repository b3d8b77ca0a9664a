package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// codeInMessage finds the response code in rocketmq-client-go's send
// errors: ProcessSendResponse returns fmt.Errorf("CODE: %d, DESC: %s"), and
// MQBrokerErr / MQClientErr print "CODE: %d  DESC: %s". Neither is a typed
// error a caller could inspect, so the text is the only source.
var codeInMessage = regexp.MustCompile(`CODE: (-?\d+),? +DESC: `)

// brokerCode extracts a response code from err: a *remoting.CodeError, a
// primitive.MQBrokerErr, or the library's formatted messages.
func brokerCode(err error) (int16, bool) {
	var be *remoting.CodeError
	if errors.As(err, &be) {
		return be.Code, true
	}
	var mbe primitive.MQBrokerErr
	if errors.As(err, &mbe) {
		return mbe.ResponseCode, true
	}
	var pmbe *primitive.MQBrokerErr
	if errors.As(err, &pmbe) && pmbe != nil {
		return pmbe.ResponseCode, true
	}
	m := codeInMessage.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, false
	}
	c, perr := strconv.ParseInt(m[1], 10, 16)
	if perr != nil {
		return 0, false
	}
	return int16(c), true
}

// translate turns an error of rocketmq-client-go, of the broker or of the
// network into an mq sentinel wrapping the cause. Errors without a
// sentinel are returned unchanged; the pproxy answers FAIL_UNKNOWN for
// them. This is the only place that decides the mapping (behaviour.md
// §1.8).
func translate(err error) error {
	if err == nil {
		return nil
	}
	if mq.IsSentinel(err) {
		return err
	}
	var sentinel error
	if code, ok := brokerCode(err); ok {
		switch code {
		// TOPIC_NOT_EXIST (17): the broker or NameServer does not know the
		// topic (deleted after the route was cached, or never created).
		case remoting.TopicNotExist:
			sentinel = mq.ErrTopicNotExist
		// MESSAGE_ILLEGAL (13): the broker refused the message (body over
		// its maxMessageSize, properties too long, bad topic name).
		case remoting.MessageIllegal:
			sentinel = mq.ErrMessageIllegal
		default:
			// SYSTEM_ERROR (1), SYSTEM_BUSY (2), SERVICE_NOT_AVAILABLE (14),
			// NO_PERMISSION (16, e.g. a queue not writable any more), ...:
			// nothing was stored; unmapped (FAIL_UNKNOWN).
			return err
		}
		return fmt.Errorf("%w: %w", sentinel, err)
	}
	switch {
	// The library's response wait ran out (its ResponseFuture timeout,
	// bounded by SendTimeout and its own 3s cap): the message may or may
	// not be stored.
	case errors.Is(err, rmqerrors.ErrRequestTimeout),
		// Our own deadline while waiting for a route.
		errors.Is(err, context.DeadlineExceeded),
		// Socket deadlines (dial, write).
		mq.IsNetTimeout(err):
		sentinel = mq.ErrTimeout

	// The library found no route for the topic (its publish info is empty:
	// the NameServer answered 17 and there is no TBW102 to fall back to).
	case strings.Contains(err.Error(), "route info not found"):
		sentinel = mq.ErrTopicNotExist

	// The client instance was shut down under us.
	case errors.Is(err, rmqerrors.ErrService),
		errors.Is(err, rmqerrors.ErrNotRunning):
		sentinel = mq.ErrClosed

	default:
		// Connection refused or reset, decode failures, ...: raw.
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// isRouteError reports whether err suggests the cached route of the topic
// is stale (the broker does not know the topic or refuses the queue, or the
// broker address is gone): the producer then refreshes the route.
func isRouteError(err error) bool {
	if code, ok := brokerCode(err); ok {
		return code == remoting.TopicNotExist || code == remoting.NoPermission ||
			code == remoting.ServiceNotAvailable
	}
	return errors.Is(err, mq.ErrTopicNotExist)
}
