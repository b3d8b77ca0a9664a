package logx

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestNewFileAppendsJSON(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	for i := range 2 { // the second logger appends to the first one's file
		log, _, err := New("info", dir, "pproxy")
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello", zap.Int("n", i))
		log.Debug("hidden")
		_ = log.Sync()
	}
	data, err := os.ReadFile(filepath.Join(dir, "pproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), data)
	}
	iso := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}`)
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("line %d not JSON: %s", i, l)
		}
		if m["msg"] != "hello" || m["level"] != "info" || m["n"] != float64(i) {
			t.Fatalf("line %d = %v", i, m)
		}
		if ts, _ := m["ts"].(string); !iso.MatchString(ts) {
			t.Fatalf("line %d ts %v is not ISO8601", i, m["ts"])
		}
	}
}

func TestAtomicLevel(t *testing.T) {
	dir := t.TempDir()
	log, lvl, err := New("", dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	if lvl.Level() != zapcore.InfoLevel {
		t.Fatalf("default level = %v", lvl.Level())
	}
	log.Debug("one")
	lvl.SetLevel(zapcore.DebugLevel)
	log.Debug("two")
	_ = log.Sync()
	data, _ := os.ReadFile(filepath.Join(dir, "x.log"))
	if bytes.Contains(data, []byte(`"one"`)) || !bytes.Contains(data, []byte(`"two"`)) {
		t.Fatalf("level change not applied:\n%s", data)
	}
}

func TestNewErrors(t *testing.T) {
	if _, _, err := New("loud", "", "x"); err == nil {
		t.Fatal("bad level accepted")
	}
	if _, _, err := New("info", t.TempDir(), ""); err == nil {
		t.Fatal("empty file name accepted")
	}
	if _, _, err := New("warn", "", "x"); err != nil {
		t.Fatalf("stderr logger: %v", err)
	}
}
