package pproxy

import (
	"strings"
	"testing"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
)

func TestValidateMessage(t *testing.T) {
	const max = 100
	ok := func() *producer.Message {
		return &producer.Message{Topic: "t", Body: []byte("x"), PartitionId: -1}
	}
	cases := []struct {
		name  string
		mod   func(m *producer.Message)
		valid bool
	}{
		{"minimal", func(m *producer.Message) {}, true},
		{"nil topic", func(m *producer.Message) { m.Topic = "" }, false},
		{"key 255", func(m *producer.Message) { m.Key = strings.Repeat("k", 255) }, true},
		{"key 256", func(m *producer.Message) { m.Key = strings.Repeat("k", 256) }, false},
		{"key 255 utf16 units with surrogates", func(m *producer.Message) { m.Key = strings.Repeat("\U0001F600", 128) }, false},
		{"key 200 CJK chars", func(m *producer.Message) { m.Key = strings.Repeat("日", 200) }, true},
		{"tags 256", func(m *producer.Message) { m.Tags = strings.Repeat("t", 256) }, false},
		{"tags 255", func(m *producer.Message) { m.Tags = strings.Repeat("t", 255) }, true},
		{"property ok", func(m *producer.Message) { m.Properties = map[string]string{"a": "b"} }, true},
		{"property blank key", func(m *producer.Message) { m.Properties = map[string]string{" ": "b"} }, false},
		{"property blank value", func(m *producer.Message) { m.Properties = map[string]string{"a": " \t"} }, false},
		{"property empty value", func(m *producer.Message) { m.Properties = map[string]string{"a": ""} }, false},
		{"property reserved", func(m *producer.Message) { m.Properties = map[string]string{"KEYS": "b"} }, false},
		{"property reserved UNIQ_KEY", func(m *producer.Message) { m.Properties = map[string]string{"UNIQ_KEY": "b"} }, false},
		{"inner prefix", func(m *producer.Message) { m.Topic = "inner_0" }, false},
		{"empty body", func(m *producer.Message) { m.Body = []byte{} }, false},
		{"no body, value fallback", func(m *producer.Message) { m.Body = nil; m.Value = "v" }, true},
		{"no body, no value", func(m *producer.Message) { m.Body = nil }, false},
		{"body at limit", func(m *producer.Message) { m.Body = make([]byte, max) }, true},
		{"body over limit", func(m *producer.Message) { m.Body = make([]byte, max+1) }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := ok()
			c.mod(m)
			body, valid := validateMessage(m, "inner_", max)
			if valid != c.valid {
				t.Fatalf("valid = %v, want %v", valid, c.valid)
			}
			if valid && len(body) == 0 {
				t.Fatal("valid message with empty body")
			}
		})
	}
	if _, valid := validateMessage(nil, "", max); valid {
		t.Fatal("nil message accepted")
	}
}

func FuzzValidateMessage(f *testing.F) {
	f.Add("t", "k", "tag", []byte("body"), "v", "pk", "pv", 100)
	f.Add("", "", "", []byte{}, "", "KEYS", "", 0)
	f.Add("inner_1", strings.Repeat("x", 300), "", []byte(nil), "value", " ", "x", 5)
	f.Fuzz(func(t *testing.T, topic, key, tags string, body []byte, value, pk, pv string, max int) {
		m := &producer.Message{Topic: topic, Key: key, Tags: tags, Body: body, Value: value,
			Properties: map[string]string{pk: pv}}
		got, valid := validateMessage(m, "inner_", max)
		if valid {
			if topic == "" || len(got) == 0 || len(got) > max || strings.HasPrefix(topic, "inner_") {
				t.Fatalf("accepted illegal message %+v", m)
			}
		}
	})
}
