package rocketmq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	rmqerrors "github.com/apache/rocketmq-client-go/v2/errors"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

func TestTranslate(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want error // nil: returned unchanged
	}{
		{"library send response 17", fmt.Errorf("CODE: 17, DESC: topic[x] not exist"), mq.ErrTopicNotExist},
		{"library send response 13", fmt.Errorf("CODE: 13, DESC: the message body size over max value"), mq.ErrMessageIllegal},
		{"MQBrokerErr 17", primitive.MQBrokerErr{ResponseCode: 17, ErrorMessage: "x"}, mq.ErrTopicNotExist},
		{"MQClientErr text 17", primitive.NewMQClientErr(17, "No topic route info"), mq.ErrTopicNotExist},
		{"CodeError 13", &remoting.CodeError{Code: 13, Remark: "too big"}, mq.ErrMessageIllegal},
		{"service not available", fmt.Errorf("CODE: 14, DESC: broker busy"), nil},
		{"no permission", fmt.Errorf("CODE: 16, DESC: not writable"), nil},
		{"library timeout", rmqerrors.ErrRequestTimeout, mq.ErrTimeout},
		{"deadline", fmt.Errorf("wrapped: %w", context.DeadlineExceeded), mq.ErrTimeout},
		{"net timeout", os.ErrDeadlineExceeded, mq.ErrTimeout},
		{"no route", errors.New("the topic=foo route info not found"), mq.ErrTopicNotExist},
		{"shut down", rmqerrors.ErrService, mq.ErrClosed},
		{"not running", rmqerrors.ErrNotRunning, mq.ErrClosed},
		{"already translated", fmt.Errorf("%w: x", mq.ErrMessageTooLarge), mq.ErrMessageTooLarge},
		{"connection refused", errors.New("dial tcp 127.0.0.1:1: connect: connection refused"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := translate(c.err)
			if c.want == nil {
				if got != c.err {
					t.Fatalf("translate(%v) = %v, want it unchanged", c.err, got)
				}
				return
			}
			if !errors.Is(got, c.want) {
				t.Fatalf("translate(%v) = %v, want %v", c.err, got, c.want)
			}
			if !errors.Is(got, c.err) && got != c.err {
				t.Fatalf("translate(%v) = %v does not wrap the cause", c.err, got)
			}
		})
	}
	if translate(nil) != nil {
		t.Fatal("translate(nil) != nil")
	}
}

func TestIsRouteError(t *testing.T) {
	for err, want := range map[error]bool{
		fmt.Errorf("CODE: 17, DESC: x"):             true,
		fmt.Errorf("CODE: 16, DESC: x"):             true,
		fmt.Errorf("CODE: 14, DESC: x"):             true,
		fmt.Errorf("CODE: 13, DESC: x"):             false,
		fmt.Errorf("%w: gone", mq.ErrTopicNotExist): true,
		rmqerrors.ErrRequestTimeout:                 false,
	} {
		if got := isRouteError(err); got != want {
			t.Errorf("isRouteError(%v) = %v, want %v", err, got, want)
		}
	}
}
