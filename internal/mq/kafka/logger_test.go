package kafka

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestSaramaLoggerWritesDebugLines(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	l := saramaLogger{zap.New(core)}
	l.Printf("consumer/broker/%d abandoned subscription to %s/%d\n", 1, "t", 3)
	l.Println("Connected to broker at", "127.0.0.1:9092")
	l.Print("plain")
	got := logs.All()
	want := []string{"consumer/broker/1 abandoned subscription to t/3", "Connected to broker at 127.0.0.1:9092", "plain"}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.Message != want[i] || e.Level != zapcore.DebugLevel {
			t.Errorf("entry %d: %v %q, want debug %q", i, e.Level, e.Message, want[i])
		}
	}
	// Above debug nothing is formatted or written.
	quiet, ql := observer.New(zapcore.InfoLevel)
	saramaLogger{zap.New(quiet)}.Printf("x %d", 1)
	if ql.Len() != 0 {
		t.Fatal("debug line written at info level")
	}
}
