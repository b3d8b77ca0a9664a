package config

import (
	"encoding/json"
	"strings"
	"testing"
)

// mustParsePProxy parses a node or fails the test.
func mustParsePProxy(t testing.TB, s string) *PProxyConfig {
	t.Helper()
	c, err := ParsePProxyConfig([]byte(s))
	if err != nil {
		t.Fatalf("ParsePProxyConfig: %v", err)
	}
	return c
}

// mustParseTopic parses a topic or fails the test.
func mustParseTopic(t testing.TB, s string) *TopicConfig {
	t.Helper()
	c, err := ParseTopicConfig([]byte(s))
	if err != nil {
		t.Fatalf("ParseTopicConfig: %v", err)
	}
	return c
}

// patchJSON decodes doc into a generic map, applies edit, and re-encodes.
// Tests use it to derive invalid variants of a valid document.
func patchJSON(t testing.TB, doc string, edit func(m map[string]any)) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("patchJSON: %v", err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("patchJSON: %v", err)
	}
	return string(b)
}

// obj walks a path of object keys in a generic JSON map.
func obj(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m = m[k].(map[string]any)
	}
	return m
}

// wantErr checks that err is non-nil and mentions every fragment.
func wantErr(t testing.TB, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected an error mentioning %q, got nil", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q does not mention %q", err, f)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
