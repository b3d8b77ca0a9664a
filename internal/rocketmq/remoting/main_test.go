package remoting

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// rocketmq-client-go's package init starts a go-cache janitor that never
	// stops (imported here for cross-checks against the library's codecs).
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/patrickmn/go-cache.(*janitor).Run"))
}
