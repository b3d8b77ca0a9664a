package remoting

import (
	"bytes"
	"errors"
	"maps"
	"net/netip"
	"reflect"
	"testing"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

func sampleMessage() StoredMessage {
	body := []byte{0, 1, 2, 0xfe, 0xff, '\n'}
	return StoredMessage{
		BodyCRC: BodyCRC(body), QueueID: 3, Flag: 7, QueueOffset: 42, CommitLogOffset: 1 << 40,
		SysFlag: FlagMultiTags, BornTimestamp: 1700000000123,
		BornHost:       netip.MustParseAddrPort("10.1.2.3:50000"),
		StoreTimestamp: 1700000000456, StoreHost: netip.MustParseAddrPort("127.0.0.1:10911"),
		ReconsumeTimes: 2, PreparedTransactionOffset: 9, Body: body, Topic: "topic-a",
		Properties: "TAGS\x01tagA\x02KEYS\x01k1 k2\x02UNIQ_KEY\x01ABC\x02user\x01v\x02",
	}
}

func TestStoredMessageRoundTrip(t *testing.T) {
	v4 := sampleMessage()
	v6 := sampleMessage()
	v6.BornHost = netip.MustParseAddrPort("[2001:db8::1]:1234")
	v6.StoreHost = netip.MustParseAddrPort("[::1]:10911")
	mixed := sampleMessage()
	mixed.StoreHost = netip.MustParseAddrPort("[fe80::2]:9")
	empty := StoredMessage{Topic: "t"} // zero hosts, no body, no properties
	v2 := sampleMessage()
	v2.MagicCode = MessageMagicCodeV2
	v2.Topic = string(bytes.Repeat([]byte("long"), 100)) // 400 bytes: needs the two-byte length
	cases := map[string]StoredMessage{"ipv4": v4, "ipv6": v6, "mixed": mixed, "empty": empty, "magic v2": v2}
	var all []byte
	var want []StoredMessage
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := EncodeStoredMessage(&m)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != m.EncodedLen() {
				t.Fatalf("encoded %d bytes, EncodedLen %d", len(b), m.EncodedLen())
			}
			got, err := DecodeStoredMessages(b)
			if err != nil || len(got) != 1 {
				t.Fatalf("decode: %v (%d messages)", err, len(got))
			}
			w := m
			if w.MagicCode == 0 {
				w.MagicCode = MessageMagicCode
			}
			if w.BornHost.Addr().Is6() {
				w.SysFlag |= FlagBornHostV6
			}
			if w.StoreHost.Addr().Is6() {
				w.SysFlag |= FlagStoreHostV6
			}
			if !w.BornHost.IsValid() {
				w.BornHost = netip.AddrPortFrom(netip.AddrFrom4([4]byte{}), 0)
				w.StoreHost = w.BornHost
			}
			if len(w.Body) == 0 {
				w.Body = nil
				got[0].Body = nil
			}
			if !reflect.DeepEqual(got[0], w) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got[0], w)
			}
			all = append(all, b...)
			want = append(want, w)
		})
	}
	got, err := DecodeStoredMessages(all)
	if err != nil || len(got) != len(want) {
		t.Fatalf("concatenation: %v, %d of %d", err, len(got), len(want))
	}
}

// TestStoredMessageReadByLibrary feeds the encoding to rocketmq-client-go's
// own decoder, which is what consumers run on PULL bodies.
func TestStoredMessageReadByLibrary(t *testing.T) {
	m := sampleMessage()
	b, err := EncodeStoredMessage(&m)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, b...) // two messages
	got := primitive.DecodeMessage(b)
	if len(got) != 2 {
		t.Fatalf("library decoded %d messages", len(got))
	}
	g := got[1]
	if g.Topic != m.Topic || !bytes.Equal(g.Body, m.Body) || g.QueueOffset != m.QueueOffset ||
		g.CommitLogOffset != m.CommitLogOffset || g.Queue.QueueId != 3 || g.ReconsumeTimes != 2 ||
		g.BornHost != "10.1.2.3:50000" || g.StoreHost != "127.0.0.1:10911" || g.GetTags() != "tagA" ||
		g.GetKeys() != "k1 k2" || g.GetProperty("user") != "v" || g.MsgId != "ABC" ||
		g.OffsetMsgId != OffsetMsgID(m.StoreHost, m.CommitLogOffset) {
		t.Fatalf("library view: %v", g)
	}
	if !maps.Equal(g.GetProperties(), DecodeProperties(m.Properties)) {
		t.Fatalf("properties: library %v, ours %v", g.GetProperties(), DecodeProperties(m.Properties))
	}
}

func TestStoredMessageLimits(t *testing.T) {
	m := sampleMessage()
	m.Properties = string(bytes.Repeat([]byte{'x'}, MaxPropertiesLen+1))
	if _, err := EncodeStoredMessage(&m); err == nil {
		t.Fatal("oversized properties encoded")
	}
	m = sampleMessage()
	m.Topic = string(bytes.Repeat([]byte{'t'}, 256))
	if _, err := EncodeStoredMessage(&m); err == nil {
		t.Fatal("oversized topic encoded")
	}
}

func TestDecodeStoredMessagesRejects(t *testing.T) {
	m := sampleMessage()
	good, _ := EncodeStoredMessage(&m)
	corrupt := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"truncated":       good[:len(good)-1],
		"three bytes":     good[:3],
		"size too big":    corrupt(func(b []byte) []byte { b[3]++; return b }),
		"size too small":  corrupt(func(b []byte) []byte { b[3]--; return b }),
		"negative size":   corrupt(func(b []byte) []byte { b[0] = 0x80; return b }),
		"body len > size": corrupt(func(b []byte) []byte { b[84] = 0x7f; return b }), // bodyLength's high byte (IPv4 layout)
		"trailing junk":   append(bytes.Clone(good), 1, 2),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeStoredMessages(b); !errors.Is(err, ErrMessage) {
				t.Fatalf("err %v, want ErrMessage", err)
			}
		})
	}
}

// TestBatchMatchesLibrary decodes the library's own batch encoding and
// checks that ours is byte-identical to it.
func TestBatchMatchesLibrary(t *testing.T) {
	m1 := primitive.NewMessage("t", []byte("one"))
	m1.WithTag("a")
	m2 := primitive.NewMessage("t", []byte{0, 0xff})
	m2.Flag = 5
	m3 := primitive.NewMessage("t", nil)
	lib := producer.MarshalMessageBatch(m1, m2, m3)
	got, err := DecodeBatch(lib)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || string(got[0].Body) != "one" || got[0].Properties != "TAGS\x01a\x02" ||
		!bytes.Equal(got[1].Body, []byte{0, 0xff}) || got[1].Flag != 5 || len(got[2].Body) != 0 {
		t.Fatalf("decoded %+v", got)
	}
	ours, err := EncodeBatch(got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, lib) {
		t.Fatalf("EncodeBatch differs from the library:\n%x\n%x", ours, lib)
	}
}

func TestDecodeBatchRejects(t *testing.T) {
	good, _ := EncodeBatch([]BatchMessage{{Body: []byte("abc"), Properties: "a\x01b\x02"}})
	cases := map[string][]byte{
		"truncated":      good[:len(good)-1],
		"short":          good[:10],
		"size mismatch":  func() []byte { b := bytes.Clone(good); b[3]--; return b }(),
		"body too long":  func() []byte { b := bytes.Clone(good); b[16] = 0x10; return b }(),
		"negative body":  func() []byte { b := bytes.Clone(good); b[16] = 0x80; return b }(),
		"trailing bytes": append(bytes.Clone(good), 0, 0),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeBatch(b); !errors.Is(err, ErrMessage) {
				t.Fatalf("err %v, want ErrMessage", err)
			}
		})
	}
}

func TestProperties(t *testing.T) {
	props := map[string]string{"TAGS": "a", "KEYS": "k1 k2", "empty": "", "ünï": "vål\x00"}
	s := EncodeProperties(props)
	if s != "KEYS\x01k1 k2\x02TAGS\x01a\x02empty\x01\x02ünï\x01vål\x00\x02" {
		t.Fatalf("encoded %q", s)
	}
	if got := DecodeProperties(s); !maps.Equal(got, props) {
		t.Fatalf("decoded %v", got)
	}
	// like the Go client: malformed items are skipped
	if got := DecodeProperties("a\x01b\x01c\x02noval\x02k\x01v"); !maps.Equal(got, map[string]string{"k": "v"}) {
		t.Fatalf("lenient decode: %v", got)
	}
}

func TestOffsetMsgID(t *testing.T) {
	for _, host := range []string{"127.0.0.1:10911", "[2001:db8::7]:80"} {
		h := netip.MustParseAddrPort(host)
		id := OffsetMsgID(h, 123456789)
		gh, off, err := ParseOffsetMsgID(id)
		if err != nil || gh != h || off != 123456789 {
			t.Fatalf("%s: %s → %v %d %v", host, id, gh, off, err)
		}
	}
	if id := OffsetMsgID(netip.MustParseAddrPort("127.0.0.1:10911"), 1); id != "7F00000100002A9F0000000000000001" {
		t.Fatalf("id %s", id)
	}
	if _, _, err := ParseOffsetMsgID("zz"); err == nil {
		t.Fatal("bad id parsed")
	}
}

func FuzzDecodeStoredMessages(f *testing.F) {
	m := sampleMessage()
	b, _ := EncodeStoredMessage(&m)
	f.Add(b)
	m.StoreHost = netip.MustParseAddrPort("[::1]:1")
	b6, _ := EncodeStoredMessage(&m)
	f.Add(b6)
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := DecodeStoredMessages(b)
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error not wrapping ErrMessage: %v", err)
			}
			return
		}
		// everything decoded re-encodes to the same bytes (host bits derive from the hosts)
		var out []byte
		for i := range msgs {
			if out, err = AppendStoredMessage(out, &msgs[i]); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
		}
		if len(out) != len(b) {
			t.Fatalf("re-encoded %d bytes of %d", len(out), len(b))
		}
	})
}

func FuzzDecodeBatch(f *testing.F) {
	b, _ := EncodeBatch([]BatchMessage{{Body: []byte("x"), Properties: "a\x01b\x02"}, {Flag: 1}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := DecodeBatch(b)
		if err != nil {
			if !errors.Is(err, ErrMessage) {
				t.Fatalf("error not wrapping ErrMessage: %v", err)
			}
			return
		}
		out, err := EncodeBatch(msgs)
		if err != nil || len(out) != len(b) {
			t.Fatalf("re-encode: %d of %d bytes, %v", len(out), len(b), err)
		}
	})
}

func FuzzDecodeProperties(f *testing.F) {
	f.Add("a\x01b\x02c\x01d\x02")
	f.Fuzz(func(t *testing.T, s string) {
		p := DecodeProperties(s)
		if again := DecodeProperties(EncodeProperties(p)); !maps.Equal(again, p) {
			t.Fatalf("not stable: %v → %v", p, again)
		}
	})
}
