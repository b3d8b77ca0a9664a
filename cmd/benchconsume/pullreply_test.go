package main

import (
	"context"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
)

// encodeReply writes a "pull" reply the way a generated server does.
func encodeReply(t testing.TB, seq int32, res *consumer.ConsumerServicePullResult, extra func(p thrift.TProtocol)) []byte {
	t.Helper()
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	if err := p.WriteMessageBegin(ctx, "pull", thrift.REPLY, seq); err != nil {
		t.Fatal(err)
	}
	if extra != nil {
		extra(p)
	} else if err := res.Write(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteMessageEnd(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// generatedDecode decodes frame with the generated code.
func generatedDecode(frame []byte) (*consumer.PullResponse, error) {
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	_, _ = buf.Write(frame)
	p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	if _, _, _, err := p.ReadMessageBegin(ctx); err != nil {
		return nil, err
	}
	var res consumer.ConsumerServicePullResult
	if err := res.Read(ctx, p); err != nil {
		return nil, err
	}
	return res.Success, nil
}

// fastDecode decodes frame with decodePullReply into owned messages.
func fastDecode(frame []byte) (*consumer.PullResponse, error) {
	var m consumer.Message
	var msgs []*consumer.Message
	c, _, err := decodePullReply(frame, &m, func(m *consumer.Message) {
		cp := *m
		cp.Value = append([]byte{}, m.Value...)
		msgs = append(msgs, &cp)
	})
	if err != nil {
		return nil, err
	}
	if msgs == nil {
		msgs = []*consumer.Message{}
	}
	return &consumer.PullResponse{Context: c, Messages: msgs}, nil
}

func randString(r *rand.Rand) string {
	switch r.IntN(4) {
	case 0:
		return ""
	case 1:
		return "qid_" + strings.Repeat("é", r.IntN(5))
	default:
		b := make([]byte, r.IntN(300))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
}

// TestDecodePullReplyMatchesGenerated: for random responses (empty and
// nil bodies, long lists, properties, extreme offsets) the hand-written
// decoder yields what the generated code decodes.
func TestDecodePullReplyMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	offsets := []int64{0, -1, 1, math.MaxInt64, math.MinInt64, 1 << 40}
	for i := range 300 {
		resp := &consumer.PullResponse{
			Context:  &consumer.Context{GroupId: randString(r), Topic: randString(r), Qid: randString(r)},
			Messages: []*consumer.Message{},
		}
		for range r.IntN(40) {
			m := &consumer.Message{Key: randString(r), Tag: randString(r), Offset: offsets[r.IntN(len(offsets))] + int64(r.IntN(1000))}
			switch r.IntN(3) {
			case 0:
				m.Value = []byte{}
			default:
				m.Value = make([]byte, r.IntN(3000))
				for j := range m.Value {
					m.Value[j] = byte(r.IntN(256))
				}
			}
			if r.IntN(3) == 0 {
				m.Properties = map[string]string{}
				for range r.IntN(3) {
					m.Properties[randString(r)] = randString(r)
				}
			}
			resp.Messages = append(resp.Messages, m)
		}
		frame := encodeReply(t, int32(r.Uint32()), &consumer.ConsumerServicePullResult{Success: resp}, nil) //nolint:gosec // any seqid
		want, err := generatedDecode(frame)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fastDecode(frame)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: decoded differently:\n got %+v\nwant %+v", i, got, want)
		}
	}
}

// TestDecodePullReplySkipsUnknownFields: fields the decoder does not know
// (a newer server) are skipped, whatever their type.
func TestDecodePullReplySkipsUnknownFields(t *testing.T) {
	ctx := context.Background()
	frame := encodeReply(t, 1, nil, func(p thrift.TProtocol) {
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(p.WriteStructBegin(ctx, "result"))
		// Unknown fields of every shape before the success field.
		must(p.WriteFieldBegin(ctx, "x", thrift.LIST, 7))
		must(p.WriteListBegin(ctx, thrift.BOOL, 20))
		for range 20 {
			must(p.WriteBool(ctx, true))
		}
		must(p.WriteListEnd(ctx))
		must(p.WriteFieldEnd(ctx))
		must(p.WriteFieldBegin(ctx, "y", thrift.MAP, 300))
		must(p.WriteMapBegin(ctx, thrift.I32, thrift.DOUBLE, 2))
		for i := range 2 {
			must(p.WriteI32(ctx, int32(i)))
			must(p.WriteDouble(ctx, 1.5))
		}
		must(p.WriteMapEnd(ctx))
		must(p.WriteFieldEnd(ctx))
		must(p.WriteFieldBegin(ctx, "z", thrift.BOOL, 301))
		must(p.WriteBool(ctx, false))
		must(p.WriteFieldEnd(ctx))
		// success = PullResponse with one message.
		must(p.WriteFieldBegin(ctx, "success", thrift.STRUCT, 0))
		resp := &consumer.PullResponse{Context: &consumer.Context{GroupId: "g", Topic: "t", Qid: "c_1"},
			Messages: []*consumer.Message{{Key: "k", Value: []byte("v"), Offset: 42}}}
		must(resp.Write(ctx, p))
		must(p.WriteFieldEnd(ctx))
		must(p.WriteFieldStop(ctx))
		must(p.WriteStructEnd(ctx))
	})
	got, err := fastDecode(frame)
	if err != nil {
		t.Fatal(err)
	}
	if got.Context.Qid != "c_1" || len(got.Messages) != 1 || string(got.Messages[0].Value) != "v" || got.Messages[0].Offset != 42 {
		t.Fatalf("decoded %+v", got)
	}
}

// TestDecodePullReplyRefusesExceptionsAndTruncation: a PullException, an
// application exception and every truncation of a valid reply are errors.
func TestDecodePullReplyRefusesExceptionsAndTruncation(t *testing.T) {
	pe := encodeReply(t, 3, &consumer.ConsumerServicePullResult{Error: &consumer.PullException{Code: 2, Message: "x"}}, nil)
	if _, err := fastDecode(pe); err == nil || !strings.Contains(err.Error(), "PullException") {
		t.Fatalf("PullException: err %v", err)
	}
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	_ = p.WriteMessageBegin(ctx, "pull", thrift.EXCEPTION, 4)
	_ = thrift.NewTApplicationException(thrift.INTERNAL_ERROR, "boom").Write(ctx, p)
	_ = p.WriteMessageEnd(ctx)
	_ = p.Flush(ctx)
	if _, err := fastDecode(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "application exception") {
		t.Fatalf("application exception: err %v", err)
	}
	resp := &consumer.PullResponse{Context: &consumer.Context{GroupId: "g", Topic: "t", Qid: "q"},
		Messages: []*consumer.Message{{Key: "k", Value: []byte(strings.Repeat("b", 100)), Tag: "t", Offset: 9,
			Properties: map[string]string{"a": "b"}}}}
	full := encodeReply(t, 5, &consumer.ConsumerServicePullResult{Success: resp}, nil)
	for n := range len(full) {
		if _, err := fastDecode(full[:n]); err == nil {
			t.Fatalf("a reply cut to %d of %d bytes decoded without error", n, len(full))
		}
	}
}

// FuzzDecodePullReply: arbitrary frames never panic, and whatever both
// decoders accept they decode alike.
func FuzzDecodePullReply(f *testing.F) {
	resp := &consumer.PullResponse{Context: &consumer.Context{GroupId: "g", Topic: "t", Qid: "q"},
		Messages: []*consumer.Message{{Key: "k", Value: []byte("body"), Tag: "t", Offset: -3, Properties: map[string]string{"a": "b"}}}}
	f.Add(encodeReply(f, 1, &consumer.ConsumerServicePullResult{Success: resp}, nil))
	f.Add(encodeReply(f, 2, &consumer.ConsumerServicePullResult{Success: &consumer.PullResponse{Context: &consumer.Context{}, Messages: []*consumer.Message{}}}, nil))
	f.Add([]byte{0x82, 0x41, 0x01, 0x04, 'p', 'u', 'l', 'l', 0x0c, 0x00, 0x19, 0xfc, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, frame []byte) {
		got, err := fastDecode(frame)
		if err != nil {
			return
		}
		want, gerr := generatedDecode(frame)
		if gerr != nil || want == nil {
			return // the generated code is stricter about some shapes
		}
		if want.Messages == nil {
			want.Messages = []*consumer.Message{}
		}
		if want.Context == nil {
			want.Context = &consumer.Context{}
		}
		for _, m := range want.Messages {
			if m.Value == nil {
				m.Value = []byte{}
			}
		}
		for _, m := range got.Messages {
			if m.Value == nil {
				m.Value = []byte{}
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoded differently:\n got %+v\nwant %+v", got, want)
		}
	})
}
