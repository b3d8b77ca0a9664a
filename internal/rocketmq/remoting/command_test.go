package remoting

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		cmd  Command
	}{
		{"request with body", Command{Code: SendMessage, Language: "GO", Version: 317, Opaque: 17,
			ExtFields: map[string]string{"topic": "t", "properties": "TAGS\x01a\x02"}, Body: []byte{0, 1, 2, 0xff}}},
		{"response no body", Command{Code: PullNotFound, Language: "JAVA", Opaque: -5, Flag: FlagResponse, Remark: "none",
			ExtFields: map[string]string{}}},
		{"nil ext", Command{Code: HeartBeat}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			frame, err := tc.cmd.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if got := int(binary.BigEndian.Uint32(frame)); got != len(frame)-4 {
				t.Fatalf("length field %d, frame %d", got, len(frame)-4)
			}
			if frame[4] != CodecJSON {
				t.Fatalf("codec byte %d", frame[4])
			}
			got, err := Decode(frame)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.cmd
			if want.ExtFields == nil {
				want.ExtFields = map[string]string{}
			}
			if want.Language == "" {
				want.Language = "GO"
			}
			assertCommand(t, got, &want)
			// the stream reader gives the same result
			got2, err := ReadCommand(bytes.NewReader(frame), 0)
			if err != nil {
				t.Fatal(err)
			}
			assertCommand(t, got2, &want)
		})
	}
}

func assertCommand(t *testing.T, got, want *Command) {
	t.Helper()
	if got.Code != want.Code || got.Language != want.Language || got.Version != want.Version ||
		got.Opaque != want.Opaque || got.Flag != want.Flag || got.Remark != want.Remark ||
		!bytes.Equal(got.Body, want.Body) || len(got.ExtFields) != len(want.ExtFields) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for k, v := range want.ExtFields {
		if got.ExtFields[k] != v {
			t.Fatalf("ext %q = %q, want %q", k, got.ExtFields[k], v)
		}
	}
}

// TestDecodeClientHeader decodes the header exactly as rocketmq-client-go
// writes it (test-environment.md §3.2).
func TestDecodeClientHeader(t *testing.T) {
	h := `{"code":34,"language":"GO","version":317,"opaque":17,"flag":0,"remark":"","extFields":{"k":"v"}}`
	frame := rawFrame(0, []byte(h), []byte("body"))
	c, err := Decode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if c.Code != HeartBeat || c.Opaque != 17 || c.Version != 317 || c.Ext("k") != "v" || string(c.Body) != "body" || c.IsResponse() {
		t.Fatalf("decoded %v", c)
	}
}

func rawFrame(codec byte, header, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(4+len(header)+len(body)))
	b = binary.BigEndian.AppendUint32(b, uint32(codec)<<24|uint32(len(header)))
	b = append(b, header...)
	return append(b, body...)
}

func TestDecodeRejects(t *testing.T) {
	okHeader := []byte(`{"code":1}`)
	good := rawFrame(0, okHeader, nil)
	cases := []struct {
		name  string
		frame []byte
	}{
		{"empty", nil},
		{"short", []byte{0, 0, 0, 4}},
		{"length too big", append(binary.BigEndian.AppendUint32(nil, 100), good[4:]...)},
		{"length too small", append(binary.BigEndian.AppendUint32(nil, 4), good[4:]...)},
		{"header beyond frame", func() []byte {
			b := bytes.Clone(good)
			binary.BigEndian.PutUint32(b[4:], 1000)
			return b
		}()},
		{"codec 1", rawFrame(1, okHeader, nil)},
		{"codec 7", rawFrame(7, okHeader, nil)},
		{"not json", rawFrame(0, []byte("hello"), nil)},
		{"json array", rawFrame(0, []byte("[1]"), nil)},
		{"json null", rawFrame(0, []byte("null"), nil)},
		{"empty header", rawFrame(0, nil, []byte("x"))},
		{"code overflow", rawFrame(0, []byte(`{"code":70000}`), nil)},
		{"ext not strings", rawFrame(0, []byte(`{"code":1,"extFields":{"a":1}}`), nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.frame); !errors.Is(err, ErrFrame) {
				t.Fatalf("Decode: err %v, want ErrFrame", err)
			}
		})
	}
}

func TestReadCommandBounds(t *testing.T) {
	big := binary.BigEndian.AppendUint32(nil, 1<<30) // no payload follows: must fail before reading it
	if _, err := ReadCommand(bytes.NewReader(big), 1<<20); !errors.Is(err, ErrFrame) {
		t.Fatalf("oversize: %v", err)
	}
	if _, err := ReadCommand(bytes.NewReader([]byte{0, 0, 0, 2, 0, 0}), 0); !errors.Is(err, ErrFrame) {
		t.Fatalf("undersize: %v", err)
	}
	if _, err := ReadCommand(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), 0); !errors.Is(err, ErrFrame) {
		t.Fatalf("negative: %v", err)
	}
	if _, err := ReadCommand(bytes.NewReader(nil), 0); err != io.EOF {
		t.Fatalf("clean EOF: %v", err)
	}
	frame, _ := NewRequest(HeartBeat, nil, []byte("abc")).Encode()
	if _, err := ReadCommand(bytes.NewReader(frame[:len(frame)-1]), 0); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
	// two frames back to back
	two := append(bytes.Clone(frame), frame...)
	r := bytes.NewReader(two)
	for i := range 2 {
		c, err := ReadCommand(r, 0)
		if err != nil || string(c.Body) != "abc" {
			t.Fatalf("frame %d: %v %v", i, c, err)
		}
	}
}

func TestNewResponseAndCheckCode(t *testing.T) {
	req := NewRequest(QueryConsumerOffset, map[string]string{"topic": "t"}, nil)
	req.Opaque = 42
	resp := NewResponse(req, QueryNotFound, "no offset")
	if !resp.IsResponse() || resp.Opaque != 42 || resp.Code != QueryNotFound {
		t.Fatalf("response %v", resp)
	}
	var ce *CodeError
	if err := CheckCode(resp); !errors.As(err, &ce) || ce.Code != QueryNotFound || !strings.Contains(err.Error(), "no offset") {
		t.Fatalf("CheckCode: %v", err)
	}
	if err := CheckCode(resp, Success, QueryNotFound); err != nil {
		t.Fatalf("CheckCode with allowed code: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := NewRequest(SendMessage, map[string]string{"a": "b"}, []byte("body")).Encode()
	f.Add(good)
	f.Add(rawFrame(0, []byte(`{"code":1,"extFields":null}`), nil))
	f.Add(rawFrame(1, []byte(`{}`), nil))
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrFrame) {
				t.Fatalf("error not wrapping ErrFrame: %v", err)
			}
			return
		}
		// A decoded command re-encodes and decodes to the same fields.
		again, err := c.Encode()
		if err != nil {
			return // e.g. invalid UTF-8 cannot fail json.Marshal, but stay lenient
		}
		c2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if c2.Code != c.Code || c2.Opaque != c.Opaque || !bytes.Equal(c2.Body, c.Body) {
			t.Fatalf("round trip changed %v → %v", c, c2)
		}
		// the stream reader agrees with Decode
		if _, err := ReadCommand(bytes.NewReader(b), len(b)); err != nil {
			t.Fatalf("ReadCommand rejects what Decode accepts: %v", err)
		}
	})
}
