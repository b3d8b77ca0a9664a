package kafka

import (
	"fmt"
	"strings"
	"sync"

	"github.com/IBM/sarama"
	"go.uber.org/zap"
)

// sarama logs through one process-wide variable (connections, rebalances,
// subscriptions abandoned because a partition's consumer was too slow);
// left unset, those lines are lost. RouteSaramaLog sends them to log, named
// "sarama", at debug level (the library does not grade its lines, and most
// are routine). It writes a global that sarama's goroutines read without
// synchronisation, so a daemon calls it once at start-up, before it creates
// any client; later calls do nothing.
var saramaLogOnce sync.Once

// RouteSaramaLog sends sarama's log lines to log (see above).
func RouteSaramaLog(log *zap.Logger) {
	saramaLogOnce.Do(func() {
		sarama.Logger = saramaLogger{log.Named("sarama").WithOptions(zap.WithCaller(false))}
	})
}

// saramaLogger adapts zap to sarama.StdLogger.
type saramaLogger struct{ l *zap.Logger }

func (s saramaLogger) Print(v ...any) {
	if s.on() {
		s.write(fmt.Sprint(v...))
	}
}

func (s saramaLogger) Printf(format string, v ...any) {
	if s.on() {
		s.write(fmt.Sprintf(format, v...))
	}
}

func (s saramaLogger) Println(v ...any) {
	if s.on() {
		s.write(fmt.Sprintln(v...))
	}
}

// on reports whether debug lines are written, so that nothing is formatted
// otherwise.
func (s saramaLogger) on() bool { return s.l.Core().Enabled(zap.DebugLevel) }

func (s saramaLogger) write(msg string) { s.l.Debug(strings.TrimRight(msg, "\n")) }
