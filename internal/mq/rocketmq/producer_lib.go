package rocketmq

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/rlog"
	"go.uber.org/zap"
)

// Process-wide settings of rocketmq-client-go, made once at package
// initialisation (before any library goroutine runs, so without races):
//
//   - primitive.PanicHandler: the library runs its callbacks under
//     primitive.WithRecover, which recovers only when a handler is set. Its
//     asynchronous send panics on every send that fails without a response
//     (producer.sendAsync calls ProcessSendResponse with a nil command after
//     reporting the error), which would kill the process on the first send
//     timeout. The handler logs the panic and counts it; the error has
//     already been reported to the callback by then.
//   - rlog: the library's logrus output goes to zap instead, one level
//     lower (Info → Debug, Warning → Info, Error → Warn), because it logs
//     routine events (route refreshes, heartbeats, unknown topics) as
//     warnings and errors. The zap logger is the one of the most recent
//     Producer that is still open (none when all are closed).
func init() {
	if primitive.PanicHandler == nil {
		primitive.PanicHandler = func(v any) {
			libraryPanics.Add(1)
			libLogger().Debug("rocketmq-client-go callback panicked (recovered)", zap.String("panic", fmt.Sprint(v)))
		}
	}
	rlog.SetLogger(rlogAdapter{})
}

// libraryPanics counts the panics recovered from library goroutines.
var libraryPanics atomic.Int64

// LibraryPanics returns how many panics of rocketmq-client-go goroutines
// were recovered in this process (see the package initialisation).
func LibraryPanics() int64 { return libraryPanics.Load() }

// libLog is the logger of the library's output: that of the most recent
// live Producer (the library's goroutines outlive a closed producer, and a
// closed producer's logger may be gone, e.g. a finished test's).
var (
	libLog   atomic.Pointer[zap.Logger]
	libMu    sync.Mutex
	libLogs  []*zap.Logger // of live producers, oldest first
	nopLog   = zap.NewNop()
	libNamed = "client"
)

func libLogger() *zap.Logger {
	if l := libLog.Load(); l != nil {
		return l
	}
	return nopLog
}

// addLibLogger makes l (named "client") the library's logger until
// removeLibLogger; it returns the logger to pass to removeLibLogger.
func addLibLogger(l *zap.Logger) *zap.Logger {
	l = l.Named(libNamed)
	libMu.Lock()
	defer libMu.Unlock()
	libLogs = append(libLogs, l)
	libLog.Store(l)
	return l
}

func removeLibLogger(l *zap.Logger) {
	libMu.Lock()
	defer libMu.Unlock()
	for i, x := range libLogs {
		if x == l {
			libLogs = append(libLogs[:i], libLogs[i+1:]...)
			break
		}
	}
	if n := len(libLogs); n > 0 {
		libLog.Store(libLogs[n-1])
	} else {
		libLog.Store(nil)
	}
}

// rlogAdapter implements rlog.Logger on zap.
type rlogAdapter struct{}

func rlogFields(m map[string]any) []zap.Field {
	fs := make([]zap.Field, 0, len(m))
	for k, v := range m {
		fs = append(fs, zap.Any(k, v))
	}
	return fs
}

func (rlogAdapter) Debug(msg string, f map[string]any) { libLogger().Debug(msg, rlogFields(f)...) }
func (rlogAdapter) Info(msg string, f map[string]any)  { libLogger().Debug(msg, rlogFields(f)...) }
func (rlogAdapter) Warning(msg string, f map[string]any) {
	libLogger().Info(msg, rlogFields(f)...)
}
func (rlogAdapter) Error(msg string, f map[string]any) { libLogger().Warn(msg, rlogFields(f)...) }

// Fatal logs at error level; unlike logrus it does not exit the process.
func (rlogAdapter) Fatal(msg string, f map[string]any) { libLogger().Error(msg, rlogFields(f)...) }
func (rlogAdapter) Level(string)                       {}
func (rlogAdapter) OutputPath(string) error            { return nil }

// LingeringGoroutines lists the functions of rocketmq-client-go goroutines
// that outlive a closed Producer: the client instance's periodic tasks
// sleep up to 10s before they first check for shutdown, and the library
// starts a cache janitor (go-cache) at package initialisation that never
// stops. Tests that check for leaked goroutines ignore them
// (goleak.IgnoreAnyFunction).
func LingeringGoroutines() []string {
	const c = "github.com/apache/rocketmq-client-go/v2/internal.(*rmqClient).Start"
	return []string{
		c + ".func1", c + ".func1.1",
		c + ".func2", c + ".func2.1",
		c + ".func3", c + ".func3.1",
		c + ".func4", c + ".func4.1",
		c + ".func5", c + ".func5.1",
		"github.com/apache/rocketmq-client-go/v2/primitive.WithRecover",
		"github.com/patrickmn/go-cache.(*janitor).Run",
	}
}
