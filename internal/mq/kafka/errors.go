package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/IBM/sarama"

	"github.com/ddmq-go/carrera/internal/mq"
)

// translate turns an error of sarama (or of the network below it) into an
// mq sentinel wrapping the cause. Errors without a sentinel are returned
// unchanged; the pproxy answers FAIL_UNKNOWN for them. This is the only
// place that decides the mapping (behaviour.md §1.8).
func translate(err error) error {
	if err == nil {
		return nil
	}
	var sentinel error
	switch {
	// Already translated (e.g. by Produce's own checks).
	case mq.IsSentinel(err):
		return err

	// MESSAGE_TOO_LARGE (10): the broker refused the record batch for its
	// size (topic max.message.bytes).
	case errors.Is(err, sarama.ErrMessageSizeTooLarge),
		// RECORD_LIST_TOO_LARGE (18): the request's batch exceeds the
		// segment size.
		errors.Is(err, sarama.ErrMessageSetSizeTooLarge),
		// INVALID_FETCH_SIZE (4), InvalidMessageSize in the 0.8 protocol
		// DDMQ used: a record size the broker cannot handle.
		errors.Is(err, sarama.ErrInvalidMessageSize):
		sentinel = mq.ErrMessageTooLarge

	// INVALID_RECORD (87): the broker's record validation failed (e.g. a
	// keyless record on a compacted topic).
	case errors.Is(err, sarama.ErrInvalidRecord),
		// INVALID_TIMESTAMP (32): the record's timestamp is outside the
		// topic's allowed range.
		errors.Is(err, sarama.ErrInvalidTimestamp):
		sentinel = mq.ErrMessageIllegal

	// UNKNOWN_TOPIC_OR_PARTITION (3): no such topic, or no such partition.
	case errors.Is(err, sarama.ErrUnknownTopicOrPartition),
		// The client's partition check: the record's partition is not in
		// the topic's metadata (explicit partitionId >= partition count).
		errors.Is(err, sarama.ErrInvalidPartition),
		// INVALID_TOPIC_EXCEPTION (17): an illegal topic name cannot exist.
		errors.Is(err, sarama.ErrInvalidTopic):
		sentinel = mq.ErrTopicNotExist

	// REQUEST_TIMED_OUT (7): the broker gave up waiting for replica acks;
	// the record may or may not be stored.
	case errors.Is(err, sarama.ErrRequestTimedOut),
		// NOT_ENOUGH_REPLICAS_AFTER_APPEND (20): written on the leader but
		// not acknowledged by enough replicas: the outcome is uncertain,
		// which is what mq.ErrTimeout means. (NOT_ENOUGH_REPLICAS (19), by
		// contrast, is a refusal before writing: nothing is stored, so it
		// stays unmatched → FAIL_UNKNOWN, and the SDK may retry elsewhere.)
		errors.Is(err, sarama.ErrNotEnoughReplicasAfterAppend),
		// A context deadline of ours (waiting for buffer space or metadata).
		errors.Is(err, context.DeadlineExceeded),
		// A network timeout: dial/read/write deadline on the broker socket
		// (Net.ReadTimeout exceeded while awaiting the produce response).
		mq.IsNetTimeout(err):
		sentinel = mq.ErrTimeout

	// The async producer is shutting down and refused the record.
	case errors.Is(err, sarama.ErrShuttingDown),
		// The producer's client was closed (Close gave up waiting).
		errors.Is(err, sarama.ErrClosedClient):
		sentinel = mq.ErrClosed

	default:
		// Everything else (leader elections that outlasted the retries,
		// NOT_ENOUGH_REPLICAS, authorization, broker unreachable, ...)
		// stays raw.
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}
