package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"github.com/IBM/sarama"

	"github.com/ddmq-go/carrera/internal/mq"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTranslate(t *testing.T) {
	cases := []struct {
		in   error
		want error // nil: returned unchanged
	}{
		{sarama.ErrMessageSizeTooLarge, mq.ErrMessageTooLarge},
		{sarama.ErrMessageSetSizeTooLarge, mq.ErrMessageTooLarge},
		{sarama.ErrInvalidMessageSize, mq.ErrMessageTooLarge},
		{sarama.ErrInvalidRecord, mq.ErrMessageIllegal},
		{sarama.ErrInvalidTimestamp, mq.ErrMessageIllegal},
		{sarama.ErrUnknownTopicOrPartition, mq.ErrTopicNotExist},
		{sarama.ErrInvalidPartition, mq.ErrTopicNotExist},
		{sarama.ErrInvalidTopic, mq.ErrTopicNotExist},
		{sarama.ErrRequestTimedOut, mq.ErrTimeout},
		{sarama.ErrNotEnoughReplicasAfterAppend, mq.ErrTimeout},
		{context.DeadlineExceeded, mq.ErrTimeout},
		{os.ErrDeadlineExceeded, mq.ErrTimeout},
		{&net.OpError{Op: "read", Net: "tcp", Err: timeoutErr{}}, mq.ErrTimeout},
		{fmt.Errorf("broker: %w", timeoutErr{}), mq.ErrTimeout},
		{sarama.ErrShuttingDown, mq.ErrClosed},
		{sarama.ErrClosedClient, mq.ErrClosed},
		{fmt.Errorf("wrapped: %w", sarama.ErrUnknownTopicOrPartition), mq.ErrTopicNotExist},
		{errors.Join(sarama.ErrOutOfBrokers, sarama.ErrRequestTimedOut), mq.ErrTimeout},
		{sarama.ErrNotEnoughReplicas, nil},
		{sarama.ErrNotLeaderForPartition, nil},
		{sarama.ErrLeaderNotAvailable, nil},
		{sarama.ErrOutOfBrokers, nil},
		{sarama.ErrNotConnected, nil},
		{sarama.ErrTopicAuthorizationFailed, nil},
		{sarama.ErrInvalidMessage, nil}, // CORRUPT_MESSAGE: transport damage, not the record's fault
		{sarama.ConfigurationError("x"), nil},
		{io.EOF, nil},
	}
	sentinels := []error{mq.ErrTimeout, mq.ErrTopicNotExist, mq.ErrMessageTooLarge, mq.ErrMessageIllegal, mq.ErrClosed, mq.ErrBufferFull}
	for _, c := range cases {
		t.Run(c.in.Error(), func(t *testing.T) {
			got := translate(c.in)
			if !errors.Is(got, c.in) {
				t.Fatalf("translate(%v) = %v: cause lost", c.in, got)
			}
			matched := 0
			for _, s := range sentinels {
				if errors.Is(got, s) {
					matched++
				}
			}
			switch {
			case c.want == nil && got != c.in:
				t.Fatalf("translate(%v) = %v, want it unchanged", c.in, got)
			case c.want != nil && (!errors.Is(got, c.want) || matched != 1):
				t.Fatalf("translate(%v) = %v, want exactly %v", c.in, got, c.want)
			}
		})
	}
	if translate(nil) != nil {
		t.Fatal("translate(nil) != nil")
	}
	already := fmt.Errorf("%w: x", mq.ErrBufferFull)
	if translate(already) != already {
		t.Fatal("an error carrying a sentinel was wrapped again")
	}
}
