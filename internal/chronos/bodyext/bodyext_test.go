package bodyext

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"testing"
)

func TestEncodeDDMQCompatible(t *testing.T) {
	// The spec's example, byte for byte (keys in DDMQ's order).
	got := Encode("order_timeout", "1700000000-2-1700172800-0-0-0-0-3f0c1a2e-5b7d-4c1e-9a2b-7d1e0f9c8b6a", ActionAdd,
		[]byte(`{"orderId":42}`), "pay", map[string]string{"traceId": "t-1"})
	want := `{"action":1,"body":"{\"orderId\":42}","properties":{"traceId":"t-1"},"tags":"pay","topic":"order_timeout","uniqDelayMsgId":"1700000000-2-1700172800-0-0-0-0-3f0c1a2e-5b7d-4c1e-9a2b-7d1e0f9c8b6a"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if got := Encode("t", "i", ActionAdd, []byte("<a&b>"), "", nil); string(got) != `{"action":1,"body":"<a&b>","topic":"t","uniqDelayMsgId":"i"}` {
		t.Fatalf("HTML-escaped: %s", got)
	}
	var m map[string]any
	_ = json.Unmarshal(Encode("t", "id", ActionCancel, []byte{0xff, 0}, "", nil), &m)
	if m["body"] != nil || m["bodyBase64"] != "/wA=" || m["tags"] != nil || m["properties"] != nil {
		t.Fatalf("binary body encoded as %v", m)
	}
}

func TestRoundTrip(t *testing.T) {
	bodies := [][]byte{[]byte("plain text"), {0, 1, 2, 0xff, 0xfe, 0x80}, []byte("日本語"), {0xe6, 0x97}, []byte("x")}
	for _, body := range bodies {
		props := map[string]string{"a": "b", "ü": "\x00"}
		ext, err := Decode(Encode("topic", "id-1", ActionAdd, body, "tg", props))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ext.Body, body) || ext.Topic != "topic" || ext.UniqDelayMsgID != "id-1" ||
			ext.Action != ActionAdd || ext.Tags != "tg" || !maps.Equal(ext.Properties, props) {
			t.Fatalf("round trip of %x: %+v", body, ext)
		}
	}
}

func TestDecodeDDMQBodies(t *testing.T) {
	// As DDMQ's pproxy writes them: no bodyBase64, possibly no tags/properties.
	ext, err := Decode([]byte(`{"action":2,"body":"c","topic":"t","uniqDelayMsgId":"x","extra":[1,2]}`))
	if err != nil || ext.Action != ActionCancel || string(ext.Body) != "c" || ext.Tags != "" || ext.Properties != nil {
		t.Fatalf("%+v %v", ext, err)
	}
	// bodyBase64 wins over body.
	ext, err = Decode([]byte(`{"action":1,"body":"text","bodyBase64":"AAE=","topic":"t","uniqDelayMsgId":"x"}`))
	if err != nil || !bytes.Equal(ext.Body, []byte{0, 1}) {
		t.Fatalf("%+v %v", ext, err)
	}
	// Absent body: empty.
	ext, err = Decode([]byte(`{"action":1,"topic":"t","uniqDelayMsgId":"x"}`))
	if err != nil || ext.Body == nil || len(ext.Body) != 0 {
		t.Fatalf("%+v %v", ext, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for name, c := range map[string]struct {
		in   string
		want error
	}{
		"not json":         {`hello`, ErrNotJSON},
		"array":            {`[1]`, ErrNotJSON},
		"no topic":         {`{"action":1,"uniqDelayMsgId":"x"}`, ErrMissingTopic},
		"empty topic":      {`{"action":1,"topic":"","uniqDelayMsgId":"x"}`, ErrMissingTopic},
		"no id":            {`{"action":1,"topic":"t"}`, ErrMissingID},
		"no action":        {`{"topic":"t","uniqDelayMsgId":"x"}`, ErrMissingAction},
		"fraction action":  {`{"action":1.5,"topic":"t","uniqDelayMsgId":"x"}`, errActionNotInt32},
		"huge action":      {`{"action":4294967297,"topic":"t","uniqDelayMsgId":"x"}`, errActionNotInt32},
		"bad base64":       {`{"action":1,"bodyBase64":"***","topic":"t","uniqDelayMsgId":"x"}`, ErrBadBodyBase64},
		"property object":  {`{"action":1,"properties":{"a":{}},"topic":"t","uniqDelayMsgId":"x"}`, ErrNotJSON},
		"topic not string": {`{"action":1,"topic":7,"uniqDelayMsgId":"x"}`, ErrNotJSON},
	} {
		if _, err := Decode([]byte(c.in)); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", name, err, c.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"action":1,"body":"{\"orderId\":42}","properties":{"traceId":"t-1"},"tags":"pay","topic":"order_timeout","uniqDelayMsgId":"1700000000-2-1700172800-0-0-0-0-3f0c1a2e-5b7d-4c1e-9a2b-7d1e0f9c8b6a"}`))
	f.Add(Encode("t", "id", ActionAdd, []byte{0xff, 0x00}, "", nil))
	f.Add([]byte(`{"action":2,"bodyBase64":"","topic":"t","uniqDelayMsgId":"x"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ext, err := Decode(data)
		if err != nil {
			return
		}
		if ext.Topic == "" || ext.UniqDelayMsgID == "" || ext.Body == nil {
			t.Fatalf("accepted incomplete %+v", ext)
		}
		// Whatever was accepted survives a re-encode byte-exactly.
		again, err := Decode(Encode(ext.Topic, ext.UniqDelayMsgID, ext.Action, ext.Body, ext.Tags, ext.Properties))
		if err != nil || !bytes.Equal(again.Body, ext.Body) || again.Topic != ext.Topic || again.Tags != ext.Tags ||
			again.UniqDelayMsgID != ext.UniqDelayMsgID || again.Action != ext.Action || !maps.Equal(again.Properties, ext.Properties) {
			t.Fatalf("re-encode changed %+v into %+v (%v)", ext, again, err)
		}
	})
}
