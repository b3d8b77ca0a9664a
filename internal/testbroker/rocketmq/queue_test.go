package rocketmq

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// TestPropValueMatchesDecodeProperties compares propValue with
// DecodeProperties on random strings of keys, values and separators.
func TestPropValueMatchesDecodeProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{'a', 'b', rm.NameValueSeparator, rm.PropertySeparator}
	keys := []string{"a", "b", "ab", "", "aa"}
	for range 20000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		s := string(b)
		props := rm.DecodeProperties(s)
		for _, k := range keys {
			want, wantOK := props[k]
			got, ok := propValue(s, k)
			gotB, okB := propValue(b, k)
			if got != want || ok != wantOK || string(gotB) != want || okB != wantOK {
				t.Fatalf("%q key %q: propValue %q,%v / %q,%v; DecodeProperties %q,%v", s, k, got, ok, gotB, okB, want, wantOK)
			}
		}
	}
}

// TestStoredFieldAccess checks the field readers against the decoder for
// IPv4 and IPv6 hosts and both magic codes.
func TestStoredFieldAccess(t *testing.T) {
	v4 := netip.MustParseAddrPort("10.1.2.3:4567")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:99")
	for _, magic := range []int32{0, rm.MessageMagicCodeV2} {
		for _, born := range []netip.AddrPort{v4, v6} {
			for _, store := range []netip.AddrPort{v4, v6} {
				m := &rm.StoredMessage{MagicCode: magic, QueueID: 3, QueueOffset: 77, CommitLogOffset: 1<<40 + 5,
					BornTimestamp: 111, BornHost: born, StoreTimestamp: 1234567890123, StoreHost: store,
					Body: []byte("body bytes"), Topic: "topic-x", Properties: "TAGS\x01t1\x02k\x01v\x02"}
				data, err := rm.EncodeStoredMessage(m)
				if err != nil {
					t.Fatal(err)
				}
				if got := commitLogOffsetOf(data); got != m.CommitLogOffset {
					t.Errorf("magic %d hosts %v/%v: commit-log offset %d", magic, born, store, got)
				}
				if got := storeTimestampOf(data); got != m.StoreTimestamp {
					t.Errorf("magic %d hosts %v/%v: store timestamp %d", magic, born, store, got)
				}
				if got := string(propertiesOf(data)); got != m.Properties {
					t.Errorf("magic %d hosts %v/%v: properties %q", magic, born, store, got)
				}
			}
		}
	}
}

// TestTagFilterConfirmsHashMatches: two tags with the same hash are told
// apart by the stored TAGS property.
func TestTagFilterConfirmsHashMatches(t *testing.T) {
	const a, b = "tag73809", "tag1120216" // FNV-1a 32 collision
	if tagHash(a) != tagHash(b) {
		t.Fatal("the test's tags no longer collide")
	}
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic("tf", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := rm.Dial(ctx, s.BrokerAddrs()["broker-a"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, tag := range []string{a, b, a} {
		resp, err := c.Invoke(ctx, rm.NewRequest(rm.SendMessage, map[string]string{"topic": "tf", "queueId": "0",
			"properties": rm.EncodeProperties(map[string]string{rm.PropertyTags: tag})}, []byte(strconv.Itoa(i))))
		if err != nil || resp.Code != rm.Success {
			t.Fatalf("send: %v %v", resp, err)
		}
	}
	pull := func(sub string) []string {
		resp, err := c.Invoke(ctx, rm.NewRequest(rm.PullMessage, map[string]string{"consumerGroup": "g", "topic": "tf",
			"queueId": "0", "queueOffset": "0", "maxMsgNums": "32", "subscription": sub, "expressionType": "TAG"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := rm.DecodeStoredMessages(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		var bodies []string
		for _, m := range msgs {
			bodies = append(bodies, string(m.Body))
		}
		return bodies
	}
	if got := pull(a); len(got) != 2 || got[0] != "0" || got[1] != "2" {
		t.Fatalf("filter %s: %v", a, got)
	}
	if got := pull(b); len(got) != 1 || got[0] != "1" {
		t.Fatalf("filter %s: %v", b, got)
	}
}
