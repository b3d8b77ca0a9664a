package mq

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

func TestIsSentinel(t *testing.T) {
	for _, s := range []error{ErrTimeout, ErrTopicNotExist, ErrMessageTooLarge, ErrMessageIllegal, ErrClosed, ErrBufferFull} {
		if !IsSentinel(fmt.Errorf("%w: cause", s)) {
			t.Errorf("wrapped %v not a sentinel", s)
		}
	}
	for _, err := range []error{nil, errors.New("raw"), ErrOffsetOutOfRange} {
		if IsSentinel(err) {
			t.Errorf("%v counted as a producer sentinel", err)
		}
	}
}

func TestIsNetTimeout(t *testing.T) {
	if !IsNetTimeout(fmt.Errorf("write: %w", os.ErrDeadlineExceeded)) {
		t.Error("wrapped deadline error not a net timeout")
	}
	if IsNetTimeout(errors.New("connection refused")) || IsNetTimeout(nil) {
		t.Error("plain error counted as a net timeout")
	}
}
