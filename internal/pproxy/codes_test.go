package pproxy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/ddmq-go/carrera/internal/mq"
)

// TestCodesGolden freezes numbers and message strings: they are wire protocol.
func TestCodesGolden(t *testing.T) {
	golden := map[int32]string{
		0:  "OK",
		10: "FAILED: unknown reason.",
		11: "FAILED: Message is too large or illegal or the length is 0",
		12: "FAILED: Send timeout",
		13: "FAILED: Topic is not in the proxy white list",
		14: "FAILED: Topic do not exist!",
		15: "FAILED: Refused by the rate limiter.",
		18: "FAILED: Topic is not delay",
		19: "FAILED: Topic is delay",
		20: "FAILED: Server is shutting down.",
		21: "FAILED: no producer for cluster.",
		30: "FAILED: Illegal uniqDelayMsgId.",
		31: "FAILED: Illegal dMsgType.",
		32: "FAILED: Illegal delay action.",
		33: "FAILED: Illegal delay timestamp.",
		34: "FAILED: Illegal delay innerTopicSeq.",
		35: "FAILED: Illegal delay loopTimes.",
		36: "FAILED: Illegal delay expire, expire must be greater than timestamp.",
		37: "FAILED: Illegal delay interval, interval can not be less than 3.",
		38: "FAILED: Illegal delay exponent base, base can not be less than 2.",
	}
	if len(codeTable) != len(golden) {
		t.Fatalf("code table has %d entries, golden %d", len(codeTable), len(golden))
	}
	for n, msg := range golden {
		if got := Code(n).Msg(); got != msg {
			t.Errorf("code %d: msg %q, want %q", n, got, msg)
		}
	}
}

func TestEverySentinelMapsToOneCode(t *testing.T) {
	want := map[error]Code{
		mq.ErrTimeout:         FailTimeout,
		mq.ErrTopicNotExist:   FailTopicNotExist,
		mq.ErrMessageTooLarge: FailIllegalMsg,
		mq.ErrMessageIllegal:  FailIllegalMsg,
		mq.ErrClosed:          FailServerShutdown,
		mq.ErrBufferFull:      FailTimeout,
	}
	for err, code := range want {
		wrapped := fmt.Errorf("%w: broker said no", err)
		if got := CodeOf(wrapped); got != code {
			t.Errorf("%v → %d, want %d", err, got, code)
		}
	}
	if got := CodeOf(errors.New("something else")); got != FailUnknown {
		t.Errorf("unmatched → %d, want %d", got, FailUnknown)
	}
	if got := CodeOf(nil); got != OK {
		t.Errorf("nil → %d", got)
	}
}
