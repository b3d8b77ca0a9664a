package cproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/thriftserver"
)

// memTransport is an in-memory thrift transport (a TRichTransport, as
// thriftserver's is): reads come from in, writes go to out, Flush moves out
// to replies.
type memTransport struct {
	in      bytes.Reader
	out     bytes.Buffer
	replies [][]byte
}

func (m *memTransport) Read(p []byte) (int, error)        { return m.in.Read(p) }
func (m *memTransport) ReadByte() (byte, error)           { return m.in.ReadByte() }
func (m *memTransport) Write(p []byte) (int, error)       { return m.out.Write(p) }
func (m *memTransport) WriteByte(c byte) error            { return m.out.WriteByte(c) }
func (m *memTransport) WriteString(s string) (int, error) { return m.out.WriteString(s) }
func (m *memTransport) Close() error                      { return nil }
func (m *memTransport) Open() error                       { return nil }
func (m *memTransport) IsOpen() bool                      { return true }
func (m *memTransport) RemainingBytes() uint64            { return uint64(m.in.Len()) }
func (m *memTransport) Flush(context.Context) error {
	m.replies = append(m.replies, bytes.Clone(m.out.Bytes()))
	m.out.Reset()
	return nil
}

// reply returns everything flushed, failing unless it was one Flush of
// pending writes.
func (m *memTransport) reply(t testing.TB) []byte {
	t.Helper()
	if len(m.replies) > 1 || m.out.Len() != 0 {
		t.Fatalf("%d flushes, %d bytes left unflushed", len(m.replies), m.out.Len())
	}
	if len(m.replies) == 0 {
		return nil
	}
	return m.replies[0]
}

// refTransport is a memTransport that also implements
// thriftserver.RefWriter (appending the referenced bytes in order, as the
// server's frame would carry them) and counts the refs it was given.
type refTransport struct {
	memTransport
	refs int
}

func (r *refTransport) WriteRef(b []byte) {
	r.refs++
	r.out.Write(b)
}

var (
	_ thrift.TRichTransport  = (*memTransport)(nil)
	_ thriftserver.RefWriter = (*refTransport)(nil)
)

// encodePullCall returns the message a client sends for pull(req) at
// seqID (unframed).
func encodePullCall(t testing.TB, binary bool, seqID int32, req *consumer.PullRequest) []byte {
	t.Helper()
	mem := thrift.NewTMemoryBuffer()
	p := newProto(mem, binary)
	ctx := context.Background()
	args := consumer.ConsumerServicePullArgs{Request: req}
	if err := errors.Join(p.WriteMessageBegin(ctx, "pull", thrift.CALL, seqID), args.Write(ctx, p),
		p.WriteMessageEnd(ctx), p.Flush(ctx)); err != nil {
		t.Fatal(err)
	}
	return mem.Bytes()
}

func newProto(trans thrift.TTransport, binary bool) thrift.TProtocol {
	cfg := &thrift.TConfiguration{}
	if binary {
		return thrift.NewTBinaryProtocolConf(trans, cfg)
	}
	return thrift.NewTCompactProtocolConf(trans, cfg)
}

// process runs proc on one request message read from trans (whose in must
// hold it) and returns the reply and Process's results.
func process(t testing.TB, proc thrift.TProcessor, trans thrift.TTransport, binary bool) (bool, thrift.TException) {
	t.Helper()
	return proc.Process(context.Background(), newProto(trans, binary), newProto(trans, binary))
}

// staticRuntimes serves fixed batches (race-free: nothing is recorded).
type staticRuntimes map[string]Batch

type staticRuntime Batch

func (s staticRuntimes) ForPull(g string) (Runtime, bool) {
	b, ok := s[g]
	return staticRuntime(b), ok
}
func (s staticRuntimes) ForSubmit(g string) (Runtime, bool) { return s.ForPull(g) }

func (s staticRuntime) Pull(context.Context, string, int, time.Duration) (Batch, error) {
	return Batch(s), nil
}
func (staticRuntime) Submit(string, string, []int64, []int64) {}

// generatedReply is what the generated code writes for a successful pull
// answered with resp.
func generatedReply(t testing.TB, seqID int32, resp *consumer.PullResponse) []byte {
	t.Helper()
	mem := thrift.NewTMemoryBuffer()
	p := thrift.NewTCompactProtocolConf(mem, &thrift.TConfiguration{})
	ctx := context.Background()
	result := consumer.ConsumerServicePullResult{Success: resp}
	if err := errors.Join(p.WriteMessageBegin(ctx, "pull", thrift.REPLY, seqID), result.Write(ctx, p),
		p.WriteMessageEnd(ctx)); err != nil {
		t.Fatal(err)
	}
	return mem.Bytes()
}

// decodedReply is a compact pull reply decoded by the generated code.
type decodedReply struct {
	name   string
	typ    thrift.TMessageType
	seqID  int32
	result consumer.ConsumerServicePullResult
}

func decodeReply(t testing.TB, b []byte) decodedReply {
	t.Helper()
	mem := thrift.NewTMemoryBuffer()
	mem.Write(b)
	p := thrift.NewTCompactProtocolConf(mem, &thrift.TConfiguration{})
	var d decodedReply
	var err error
	ctx := context.Background()
	d.name, d.typ, d.seqID, err = p.ReadMessageBegin(ctx)
	if err == nil {
		err = d.result.Read(ctx, p)
	}
	if err != nil {
		t.Fatalf("decoding the reply: %v\n% x", err, b)
	}
	if mem.Len() != 0 {
		t.Fatalf("%d bytes after the reply", mem.Len())
	}
	return d
}

// sameReply fails unless got equals want byte for byte or, when Go's map
// order may differ (a message with two properties or more), both decode to
// the same reply.
func sameReply(t testing.TB, got, want []byte, mapOrderFree bool) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if !mapOrderFree {
		t.Fatalf("reply differs from the generated code's\n got % x\nwant % x", got, want)
	}
	g, w := decodeReply(t, got), decodeReply(t, want)
	if len(got) != len(want) || g.name != w.name || g.typ != w.typ || g.seqID != w.seqID ||
		g.result.Error != nil || !g.result.Success.Equals(w.result.Success) {
		t.Fatalf("reply decodes differently from the generated code's\n got %+v %v\nwant %+v %v",
			g, g.result.Success, w, w.result.Success)
	}
}

// manyProperties reports whether a message of b has two properties or
// more (then map order makes the bytes vary).
func manyProperties(ds []*mq.Delivery) bool {
	for _, d := range ds {
		if len(d.Properties) >= 2 {
			return true
		}
	}
	return false
}

// bigBodies counts the bodies the encoder hands over by reference.
func bigBodies(ds []*mq.Delivery) int {
	n := 0
	for _, d := range ds {
		if len(d.Body) >= thriftserver.MinRefBytes {
			n++
		}
	}
	return n
}

// comparePull runs one pull request through the generated processor and
// through NewProcessor (on a RefWriter transport, so the encoder is used)
// and fails unless the replies match.
func comparePull(t testing.TB, h *Handler, seqID int32, req *consumer.PullRequest, batch []*mq.Delivery) {
	t.Helper()
	call := encodePullCall(t, false, seqID, req)
	gen := &memTransport{}
	gen.in.Reset(call)
	if ok, err := process(t, consumer.NewConsumerServiceProcessor(h), gen, false); !ok || err != nil {
		t.Fatalf("generated processor: %v %v", ok, err)
	}
	enc := &refTransport{}
	enc.in.Reset(call)
	if ok, err := process(t, NewProcessor(h), enc, false); !ok || err != nil {
		t.Fatalf("new processor: %v %v", ok, err)
	}
	sameReply(t, enc.reply(t), gen.reply(t), manyProperties(batch))
	if want := bigBodies(batch); enc.refs != want {
		t.Fatalf("%d bodies passed by reference, want %d", enc.refs, want)
	}
}

// Strings worth encoding: empty, multi-byte UTF-8, invalid UTF-8, long.
var sampleStrings = []string{"", "k", "键-ключ-🔑", "\xff\xfe", "tag with spaces", string(bytes.Repeat([]byte("x"), 300))}

func randomString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return sampleStrings[r.IntN(len(sampleStrings))]
	}
	b := make([]byte, r.IntN(20))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

var sampleOffsets = []int64{0, 1, -1, 63, 64, -64, -65, math.MaxInt64, math.MinInt64, 1 << 40, -(1 << 40)}

func randomDelivery(r *rand.Rand) *mq.Delivery {
	d := &mq.Delivery{Key: randomString(r), Tags: randomString(r), Offset: int64(r.Uint64())}
	if r.IntN(3) == 0 {
		d.Offset = sampleOffsets[r.IntN(len(sampleOffsets))]
	}
	switch r.IntN(6) {
	case 0: // nil body
	case 1:
		d.Body = []byte{}
	case 2: // around the reference threshold
		d.Body = make([]byte, thriftserver.MinRefBytes-1+r.IntN(3))
	default:
		d.Body = make([]byte, r.IntN(5001))
	}
	for i := range d.Body {
		d.Body[i] = byte(r.Uint32())
	}
	switch r.IntN(8) {
	case 0: // empty map: toThrift leaves the field out
		d.Properties = map[string]string{}
	case 1, 2:
		d.Properties = map[string]string{randomString(r): randomString(r)}
	case 3:
		d.Properties = map[string]string{"a": randomString(r), "b": randomString(r), "中": ""}
	}
	return d
}

var sampleSeqIDs = []int32{0, 1, -1, 127, 128, math.MaxInt32, math.MinInt32}

// TestPullReplyMatchesGenerated: for random batches the encoder's reply
// is the generated code's (same bytes; same decoded reply where property
// order is random).
func TestPullReplyMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for i := range 400 {
		batch := make([]*mq.Delivery, r.IntN(41))
		if i == 1 {
			batch = batch[:0] // an empty batch: the empty answer
		}
		for j := range batch {
			batch[j] = randomDelivery(r)
		}
		group := randomString(r)
		h := NewHandler(zap.NewNop(), staticRuntimes{group: {Topic: randomString(r), QID: randomString(r), Messages: batch}}, nil)
		seqID := int32(r.Uint32()) //nolint:gosec // any bit pattern
		if r.IntN(3) == 0 {
			seqID = sampleSeqIDs[r.IntN(len(sampleSeqIDs))]
		}
		comparePull(t, h, seqID, &consumer.PullRequest{GroupId: group}, batch)
	}
}

// TestPullReplyEmptyAnswers: the empty answers (unknown group, no message)
// match the generated code's. (A request without PullRequest cannot be
// decoded: groupId is required.)
func TestPullReplyEmptyAnswers(t *testing.T) {
	h := NewHandler(zap.NewNop(), staticRuntimes{"empty": {Topic: "t", QID: "q"}}, nil)
	linger := int32(1)
	comparePull(t, h, 6, &consumer.PullRequest{GroupId: "empty"}, nil)
	comparePull(t, h, 7, &consumer.PullRequest{GroupId: "unknown", MaxLingerTime: &linger}, nil)
}

// TestPullReplyFixedBytes pins a few bytes of the layout by hand, so that a
// change in thrift's writer (which the comparisons would follow) is
// noticed: the result's field 0 is written with an explicit id, lists of 15
// and more use the long header.
func TestPullReplyFixedBytes(t *testing.T) {
	msgs := make([]*mq.Delivery, 15)
	for i := range msgs {
		msgs[i] = &mq.Delivery{Offset: -1}
	}
	e := &pullEncoder{}
	out := &refTransport{}
	e.w, e.ref = out, out
	if err := e.encode(-1, pulled{group: "g", msgs: msgs[:1]}); err != nil {
		t.Fatal(err)
	}
	want := []byte{0x82, 0x41, 0xff, 0xff, 0xff, 0xff, 0x0f, 4, 'p', 'u', 'l', 'l', // message begin, seqid -1
		0x0c, 0x00, 0x1c, 0x18, 1, 'g', 0x18, 0, 0x18, 0, 0x00, // success (id 0), context
		0x19, 0x1c, // messages: list of 1 struct
		0x18, 0, 0x18, 0, 0x18, 0, 0x16, 0x01, 0x00, // key, value, tag, offset -1 (zigzag 1), stop
		0x00, 0x00}
	if !bytes.Equal(out.out.Bytes(), want) {
		t.Fatalf("got  % x\nwant % x", out.out.Bytes(), want)
	}
	out.out.Reset()
	if err := e.encode(0, pulled{msgs: msgs}); err != nil {
		t.Fatal(err)
	}
	if got := out.out.Bytes()[19:21]; !bytes.Equal(got, []byte{0xfc, 15}) {
		t.Fatalf("list header of 15 = % x", got)
	}
}

// errService is a ConsumerService whose Pull fails with err.
type errService struct {
	consumer.ConsumerService
	err error
}

func (s errService) Pull(context.Context, *consumer.PullRequest) (*consumer.PullResponse, error) {
	return nil, s.err
}

// TestPullReplyErrorsMatchGenerated: handler errors and undecodable
// arguments are answered as the generated processor answers them.
func TestPullReplyErrorsMatchGenerated(t *testing.T) {
	call := encodePullCall(t, false, 9, &consumer.PullRequest{GroupId: "g"})
	// Arguments whose request lacks the required groupId.
	noGroup := append([]byte{0x82, 0x21, 9, 4, 'p', 'u', 'l', 'l'}, 0x1c, 0x00, 0x00)
	cases := []struct {
		name    string
		call    []byte
		err     error
		noReply bool
	}{
		{"PullException", call, &consumer.PullException{Code: 3, Message: "declared"}, false},
		{"undeclared error", call, errors.New("boom"), false},
		{"abandon", call, fmt.Errorf("gone: %w", thrift.ErrAbandonRequest), true},
		{"missing groupId", noGroup, errors.New("not called"), false},
		{"truncated arguments", call[:len(call)-3], errors.New("not called"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gen := &memTransport{}
			gen.in.Reset(tc.call)
			gok, gerr := process(t, consumer.NewConsumerServiceProcessor(errService{err: tc.err}), gen, false)

			p := consumer.NewConsumerServiceProcessor(errService{err: tc.err})
			generated, _ := p.GetProcessorFunction("pull")
			p.AddToProcessorMap("pull", &pullProcessor{generated: generated,
				pull: func(context.Context, *consumer.PullRequest) (pulled, error) { return pulled{}, tc.err }})
			enc := &refTransport{}
			enc.in.Reset(tc.call)
			eok, eerr := process(t, p, enc, false)

			if gok != eok || (gerr == nil) != (eerr == nil) || (gerr != nil && gerr.Error() != eerr.Error()) {
				t.Fatalf("Process = %v, %v; generated %v, %v", eok, eerr, gok, gerr)
			}
			got, want := enc.reply(t), gen.reply(t)
			if !bytes.Equal(got, want) {
				t.Fatalf("reply differs from the generated code's\n got % x\nwant % x", got, want)
			}
			if (len(want) == 0) != tc.noReply {
				t.Fatalf("generated reply of %d bytes", len(want))
			}
		})
	}
}

// TestPullFallsBackToGenerated: the binary protocol and transports that
// cannot reference slices take the generated path (same bytes).
func TestPullFallsBackToGenerated(t *testing.T) {
	batch := []*mq.Delivery{{Key: "k", Body: make([]byte, 1000), Properties: map[string]string{"p": "v"}}}
	h := NewHandler(zap.NewNop(), staticRuntimes{"g": {Topic: "t", QID: "q", Messages: batch}}, nil)
	for _, binary := range []bool{false, true} {
		call := encodePullCall(t, binary, 3, &consumer.PullRequest{GroupId: "g"})
		gen := &memTransport{}
		gen.in.Reset(call)
		process(t, consumer.NewConsumerServiceProcessor(h), gen, binary)
		plain := &memTransport{}
		plain.in.Reset(call)
		process(t, NewProcessor(h), plain, binary)
		if !bytes.Equal(plain.reply(t), gen.reply(t)) {
			t.Fatalf("binary=%v, plain transport: reply differs", binary)
		}
		if binary {
			withRef := &refTransport{}
			withRef.in.Reset(call)
			process(t, NewProcessor(h), withRef, binary)
			if withRef.refs != 0 || !bytes.Equal(withRef.reply(t), gen.reply(t)) {
				t.Fatalf("binary protocol used the encoder (%d refs)", withRef.refs)
			}
		}
	}
}

// FuzzPullReplyEncoding: for fuzzed fields the encoder's reply matches the
// generated code's (byte for byte with at most one property per message,
// decoded otherwise).
func FuzzPullReplyEncoding(f *testing.F) {
	f.Add(int32(1), "g", "t", "K_0", "key", "tag", []byte("body"), false, int64(5), uint8(1), "p", "v", uint8(1))
	f.Add(int32(-1), "", "", "", "", "", []byte{}, true, int64(math.MinInt64), uint8(0), "", "", uint8(0))
	f.Add(int32(math.MaxInt32), "群组", "topic", "q", "キー", "\xff", bytes.Repeat([]byte{7}, 300), false, int64(math.MaxInt64), uint8(40), "a", "", uint8(2))
	f.Add(int32(128), "g", "t", "q", "k", "t", bytes.Repeat([]byte{1}, 5000), false, int64(-64), uint8(15), "", "x", uint8(1))
	f.Fuzz(func(t *testing.T, seqID int32, group, topic, qid, key, tag string, body []byte, nilBody bool,
		offset int64, n uint8, pk, pv string, props uint8) {
		if nilBody {
			body = nil
		}
		batch := make([]*mq.Delivery, int(n)%41)
		for i := range batch {
			d := &mq.Delivery{Key: key, Tags: tag, Offset: offset + int64(i), Body: body}
			if i%2 == 1 && len(body) > 0 {
				d.Body = body[:len(body)*i/len(batch)] // sizes on both sides of the reference threshold
			}
			switch props % 3 {
			case 1:
				d.Properties = map[string]string{pk: pv}
			case 2:
				d.Properties = map[string]string{pk: pv, pk + "2": strconv.Itoa(i)}
			}
			batch[i] = d
		}
		h := NewHandler(zap.NewNop(), staticRuntimes{group: {Topic: topic, QID: qid, Messages: batch}}, nil)
		comparePull(t, h, seqID, &consumer.PullRequest{GroupId: group}, batch)
	})
}

// startPullServer serves NewProcessor(h) through thriftserver on a
// loopback port; closed when the test ends.
func startPullServer(t *testing.T, h *Handler) net.Addr {
	t.Helper()
	srv := thriftserver.New(thriftserver.Options{Addr: "127.0.0.1:0", Name: "cproxy-test"}, NewProcessor(h), nil)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv.Addr()
}

// wantResponse is the PullResponse for a batch, written out independently
// of toThrift.
func wantResponse(group string, b Batch) *consumer.PullResponse {
	resp := &consumer.PullResponse{Context: &consumer.Context{GroupId: group, Topic: b.Topic, Qid: b.QID}}
	for _, d := range b.Messages {
		m := &consumer.Message{Key: d.Key, Value: d.Body, Tag: d.Tags, Offset: d.Offset}
		if len(d.Properties) > 0 {
			m.Properties = d.Properties
		}
		resp.Messages = append(resp.Messages, m)
	}
	return resp
}

// testBatch has 40 messages: bodies of every kind (nil, small, at the
// reference threshold, large), 0, 1 or 3 properties.
func testBatch(maxProps int) Batch {
	r := rand.New(rand.NewPCG(5, 6))
	b := Batch{Topic: "topic-é", QID: "K_main_3"}
	for i := range 40 {
		d := &mq.Delivery{Key: "key-" + strconv.Itoa(i), Tags: []string{"", "tagA", "标签"}[i%3], Offset: int64(i*1000) - 5}
		switch i % 5 {
		case 0:
		case 1:
			d.Body = []byte("small")
		case 2:
			d.Body = make([]byte, thriftserver.MinRefBytes)
		default:
			d.Body = make([]byte, 1024+r.IntN(4000))
		}
		for j := range d.Body {
			d.Body[j] = byte(r.Uint32())
		}
		switch i % 3 {
		case 1:
			d.Properties = map[string]string{"p": strconv.Itoa(i)}
		case 2:
			d.Properties = map[string]string{"a": "1", "b": "2", "c": "3"}
			if maxProps < 3 {
				d.Properties = map[string]string{"only": "one"}
			}
		}
		b.Messages = append(b.Messages, d)
	}
	return b
}

// TestPullOverThriftServer: generated clients (compact and binary, framed)
// pulling through thriftserver get the expected messages, repeatedly on
// one connection and interleaved with other calls; and the compact reply
// that crosses the socket (built from references by the server's
// transport) is byte for byte the generated code's.
func TestPullOverThriftServer(t *testing.T) {
	full, oneProp := testBatch(3), testBatch(1)
	rts := staticRuntimes{"g1": full, "g3": oneProp, "empty": {Topic: "t", QID: "q"}}
	h := NewHandler(zap.NewNop(), rts, &fakeStats{})
	addr := startPullServer(t, h)
	ctx := context.Background()

	for _, binary := range []bool{false, true} {
		cfg := &thrift.TConfiguration{ConnectTimeout: 5 * time.Second, SocketTimeout: 10 * time.Second}
		trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr.String(), cfg), cfg)
		if err := trans.Open(); err != nil {
			t.Fatal(err)
		}
		defer trans.Close()
		var pf thrift.TProtocolFactory = thrift.NewTCompactProtocolFactoryConf(cfg)
		if binary {
			pf = thrift.NewTBinaryProtocolFactoryConf(cfg)
		}
		c := consumer.NewConsumerServiceClientFactory(trans, pf)
		for round := range 3 {
			for group, b := range map[string]Batch{"g1": full, "g3": oneProp} {
				resp, err := c.Pull(ctx, &consumer.PullRequest{GroupId: group})
				if err != nil {
					t.Fatalf("binary=%v pull %s: %v", binary, group, err)
				}
				if want := wantResponse(group, b); !resp.Equals(want) || len(resp.Messages) != 40 {
					t.Fatalf("binary=%v round %d: pull %s = %v, want %v", binary, round, group, resp, want)
				}
			}
			resp, err := c.Pull(ctx, &consumer.PullRequest{GroupId: "empty"})
			if err != nil || !resp.Equals(emptyPull()) {
				t.Fatalf("binary=%v: empty pull = %v, %v", binary, resp, err)
			}
			if ok, err := c.Submit(ctx, &consumer.ConsumeResult_{}); !ok || err != nil {
				t.Fatalf("submit = %v, %v", ok, err)
			}
			if _, err := c.GetConsumeStats(ctx, &consumer.ConsumeStatsRequest{Group: "g1"}); err != nil {
				t.Fatalf("getConsumeStats: %v", err)
			}
		}
	}

	// Raw bytes of compact replies on the wire, on one connection.
	nc, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	for i, seqID := range []int32{-7, 0, 1 << 20} {
		group := []string{"g3", "empty", "g3"}[i]
		call := encodePullCall(t, false, seqID, &consumer.PullRequest{GroupId: group})
		if _, err := nc.Write(append(frameHeader(len(call)), call...)); err != nil {
			t.Fatal(err)
		}
		hdr := make([]byte, 4)
		if _, err := io.ReadFull(nc, hdr); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, int(hdr[0])<<24|int(hdr[1])<<16|int(hdr[2])<<8|int(hdr[3]))
		if _, err := io.ReadFull(nc, got); err != nil {
			t.Fatal(err)
		}
		want := generatedReply(t, seqID, emptyPull())
		if group == "g3" {
			want = generatedReply(t, seqID, wantResponse(group, oneProp))
		}
		sameReply(t, got, want, false)
	}
}

func frameHeader(n int) []byte {
	return []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// benchTransport mirrors thriftserver's transport: small writes are
// buffered, WriteRef keeps slices of MinRefBytes or more by reference with
// their position, and Flush writes header and segments as one net.Buffers
// (to io.Discard).
type benchTransport struct {
	memTransport
	refs      []benchRef
	iov, send net.Buffers
	hdr       [4]byte
}

type benchRef struct {
	at int
	b  []byte
}

func (t *benchTransport) WriteRef(p []byte) {
	if len(p) < thriftserver.MinRefBytes {
		t.out.Write(p)
		return
	}
	t.refs = append(t.refs, benchRef{t.out.Len(), p})
}

func (t *benchTransport) Flush(context.Context) error {
	out, prev := t.out.Bytes(), 0
	t.iov = append(t.iov[:0], t.hdr[:])
	for _, r := range t.refs {
		if r.at > prev {
			t.iov = append(t.iov, out[prev:r.at])
			prev = r.at
		}
		t.iov = append(t.iov, r.b)
	}
	t.iov = append(t.iov, out[prev:])
	t.send = t.iov
	_, err := t.send.WriteTo(io.Discard)
	clear(t.refs)
	t.refs = t.refs[:0]
	clear(t.iov)
	t.out.Reset()
	return err
}

// BenchmarkPullReplyEncode compares the generated reply path (toThrift per
// delivery, generated Write over TCompactProtocol, bodies copied into the
// reply buffer) with the encoder (bodies by reference) for 32 messages of
// 1 KiB, both on a transport that behaves like thriftserver's.
func BenchmarkPullReplyEncode(b *testing.B) {
	r := pulled{group: "group", topic: "topic", qid: "K_main_0"}
	for i := range 32 {
		r.msgs = append(r.msgs, &mq.Delivery{Key: "key-" + strconv.Itoa(i), Offset: int64(1_000_000 + i), Body: make([]byte, 1024)})
	}
	ctx := context.Background()
	b.Run("generated", func(b *testing.B) {
		trans := &benchTransport{}
		p := thrift.NewTCompactProtocolConf(trans, &thrift.TConfiguration{})
		b.ReportAllocs()
		b.SetBytes(32 * 1024)
		for b.Loop() {
			resp := &consumer.PullResponse{Context: &consumer.Context{GroupId: r.group, Topic: r.topic, Qid: r.qid},
				Messages: make([]*consumer.Message, len(r.msgs))}
			for i, d := range r.msgs {
				resp.Messages[i] = toThrift(d)
			}
			result := consumer.ConsumerServicePullResult{Success: resp}
			_ = p.WriteMessageBegin(ctx, "pull", thrift.REPLY, 1)
			_ = result.Write(ctx, p)
			_ = p.WriteMessageEnd(ctx)
			_ = p.Flush(ctx)
		}
	})
	b.Run("encoder", func(b *testing.B) {
		trans := &benchTransport{}
		p := thrift.NewTCompactProtocolConf(trans, &thrift.TConfiguration{})
		b.ReportAllocs()
		b.SetBytes(32 * 1024)
		for b.Loop() {
			e := pullEncoders.Get().(*pullEncoder)
			e.w, e.ref = trans, trans
			_ = e.encode(1, r)
			e.release()
			_ = p.Flush(ctx)
		}
	})
}
