package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// produceBatch produces n records to topic/partition in one produce
// request, so that the broker stores them as one record batch.
func produceBatch(t *testing.T, k *testenv.Kafka, topic string, partition int32, n int) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = protocolVersion
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Flush.Messages = n
	cfg.Producer.Flush.Frequency = time.Second
	sp, err := sarama.NewSyncProducer(k.Addrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	msgs := make([]*sarama.ProducerMessage, n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: partition, Value: sarama.StringEncoder(fmt.Sprint(i))}
	}
	if err := sp.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

func offsetList(ds []*mq.Delivery) []int64 {
	var out []int64
	for _, d := range ds {
		out = append(out, d.Offset)
	}
	return out
}

func TestOffsetReaderOffsets(t *testing.T) {
	k := startGroupKafka(t)
	k.CreateTopic("r", 3)
	p := newTestProducer(t, testOptions(k))
	produceN(t, p, "r", 0, 5)
	produceN(t, p, "r", 2, 2)
	r := newTestReader(t, k)
	ctx := ctxT(t)

	if n, err := r.Partitions(ctx, "r"); err != nil || n != 3 {
		t.Errorf("Partitions: %d, %v; want 3", n, err)
	}
	if _, err := r.Partitions(ctx, "missing"); !errors.Is(err, mq.ErrTopicNotExist) {
		t.Errorf("Partitions of a missing topic: %v, want ErrTopicNotExist", err)
	}
	hw, err := r.HighWatermarks(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int32]int64{0: 5, 1: 0, 2: 2}; !maps.Equal(hw, want) {
		t.Errorf("HighWatermarks %v, want %v", hw, want)
	}
	if _, err := r.HighWatermarks(ctx, "missing"); !errors.Is(err, mq.ErrTopicNotExist) {
		t.Errorf("HighWatermarks of a missing topic: %v, want ErrTopicNotExist", err)
	}
	if lw, err := r.LowWatermarks(ctx, "r"); err != nil || !maps.Equal(lw, map[int32]int64{0: 0, 1: 0, 2: 0}) {
		t.Errorf("LowWatermarks %v, %v; want all 0", lw, err)
	}

	// kfake answers GROUP_ID_NOT_FOUND for a group it never saw.
	got, err := r.Committed(ctx, "never-seen", "r")
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("Committed of an unknown group: %v, %v; want empty", got, err)
	}

	err = r.Commit(ctx, "g-simple", "r", map[int32]mq.CommittedOffset{
		0: {Offset: 3, Metadata: "ot1:3"}, 2: {Offset: 1}, 1: {Offset: -1, Metadata: "skipped"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int32]mq.CommittedOffset{0: {Offset: 3, Metadata: "ot1:3"}, 2: {Offset: 1}}
	if got, err := r.Committed(ctx, "g-simple", "r"); err != nil || !maps.Equal(got, want) {
		t.Errorf("Committed: %v, %v; want %v", got, err, want)
	}
	// Same offset, new metadata; and backwards.
	if err := r.Commit(ctx, "g-simple", "r", map[int32]mq.CommittedOffset{0: {Offset: 3, Metadata: "new"}, 2: {Offset: 0}}); err != nil {
		t.Fatal(err)
	}
	want = map[int32]mq.CommittedOffset{0: {Offset: 3, Metadata: "new"}, 2: {Offset: 0}}
	if got, err := r.Committed(ctx, "g-simple", "r"); err != nil || !maps.Equal(got, want) {
		t.Errorf("Committed: %v, %v; want %v", got, err, want)
	}
	if err := r.Commit(ctx, "g-simple", "r", nil); err != nil {
		t.Errorf("empty Commit: %v", err)
	}
	if _, err := r.Committed(ctx, "g-simple", "missing"); !errors.Is(err, mq.ErrTopicNotExist) {
		t.Errorf("Committed of a missing topic: %v, want ErrTopicNotExist", err)
	}
}

func TestOffsetReaderFetch(t *testing.T) {
	k := startGroupKafka(t)
	k.CreateTopic("f", 1)
	pc := countProduce(k.Cluster, nil)
	produceBatch(t, k, "f", 0, 10)
	if per := pc.snapshot(); !slices.Equal(per, []int{10}) {
		t.Fatalf("records per produce request %v, want one batch of 10", per)
	}
	r := newTestReader(t, k)
	ctx := ctxT(t)

	// The batch starts at 0; only offsets >= 3 come back, at most 2.
	msgs, next, err := r.Fetch(ctx, "f", 0, 3, 2, 0)
	if err != nil || !slices.Equal(offsetList(msgs), []int64{3, 4}) || next != 5 {
		t.Fatalf("Fetch(3, max 2): %v next %d, %v; want [3 4] next 5", offsetList(msgs), next, err)
	}
	if string(msgs[0].Body) != "3" || msgs[0].Topic != "f" || msgs[0].Partition != 0 {
		t.Errorf("delivery %+v", msgs[0])
	}
	msgs, next, err = r.Fetch(ctx, "f", 0, 5, 100, 0)
	if err != nil || !slices.Equal(offsetList(msgs), []int64{5, 6, 7, 8, 9}) || next != 10 {
		t.Fatalf("Fetch(5): %v next %d, %v; want 5..9 next 10", offsetList(msgs), next, err)
	}

	// At the log end: nothing after waiting.
	start := time.Now()
	msgs, next, err = r.Fetch(ctx, "f", 0, 10, 10, 200*time.Millisecond)
	if err != nil || len(msgs) != 0 || next != 10 {
		t.Fatalf("Fetch at the end: %v next %d, %v; want nothing, next 10", offsetList(msgs), next, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("Fetch at the end returned after %v, want about the 200ms wait", d)
	}

	// A long poll returns as soon as a record arrives.
	type res struct {
		msgs []*mq.Delivery
		next int64
		err  error
	}
	ch := make(chan res, 1)
	start = time.Now()
	go func() {
		m, n, err := r.Fetch(ctx, "f", 0, 10, 10, 10*time.Second)
		ch <- res{m, n, err}
	}()
	time.Sleep(100 * time.Millisecond) // let the fetch reach the broker; correctness does not depend on it
	produceBatch(t, k, "f", 0, 1)
	got := <-ch
	if got.err != nil || !slices.Equal(offsetList(got.msgs), []int64{10}) || got.next != 11 {
		t.Fatalf("long poll: %v next %d, %v; want [10] next 11", offsetList(got.msgs), got.next, got.err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("long poll returned after %v", d)
	}

	// The wait is cut to the context's deadline: no error, nothing.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start = time.Now()
	msgs, next, err = r.Fetch(short, "f", 0, 11, 10, 10*time.Second)
	if err != nil || len(msgs) != 0 || next != 11 {
		t.Errorf("Fetch with a short deadline: %v next %d, %v", offsetList(msgs), next, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Fetch with a 300ms deadline returned after %v", d)
	}

	for _, c := range []struct {
		name      string
		topic     string
		partition int32
		offset    int64
		want      error
	}{
		{"AboveEnd", "f", 0, 12, mq.ErrOffsetOutOfRange},
		{"Negative", "f", 0, -1, mq.ErrOffsetOutOfRange},
		{"UnknownTopic", "missing", 0, 0, mq.ErrTopicNotExist},
		{"UnknownPartition", "f", 5, 0, mq.ErrTopicNotExist},
	} {
		t.Run(c.name, func(t *testing.T) {
			msgs, next, err := r.Fetch(ctx, c.topic, c.partition, c.offset, 10, 0)
			if !errors.Is(err, c.want) || msgs != nil || next != c.offset {
				t.Errorf("Fetch: %v next %d, %v; want %v, next %d", msgs, next, err, c.want, c.offset)
			}
		})
	}
}

func TestOffsetReaderClosed(t *testing.T) {
	k := startGroupKafka(t)
	k.CreateTopic("c", 1)
	r, err := NewOffsetReader(consumerOptions(k, "", ""), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Fetch(ctxT(t), "c", 0, 0, 1, 0); err != nil {
		t.Fatal(err) // leaves a pooled fetch connection for Close
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := r.Partitions(ctxT(t), "c"); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Partitions after Close: %v, want ErrClosed", err)
	}
	if _, _, err := r.Fetch(ctxT(t), "c", 0, 0, 1, 0); !errors.Is(err, mq.ErrClosed) {
		t.Errorf("Fetch after Close: %v, want ErrClosed", err)
	}
	if _, err := NewOffsetReader(ConsumerOptions{}, nil); err == nil {
		t.Error("NewOffsetReader without brokers succeeded")
	}
}

func TestBlockDeliveriesRecordBatches(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	batch := func(first int64, lastDelta int32, control bool, offsets ...int64) *sarama.Records {
		b := &sarama.RecordBatch{FirstOffset: first, LastOffsetDelta: lastDelta, Control: control, FirstTimestamp: t0, Version: 2}
		for _, o := range offsets {
			b.Records = append(b.Records, &sarama.Record{
				OffsetDelta: o - first, TimestampDelta: time.Duration(o) * time.Millisecond,
				Key: fmt.Appendf(nil, "k%d", o), Value: fmt.Appendf(nil, "v%d", o),
				Headers: []*sarama.RecordHeader{{Key: []byte("TAGS"), Value: []byte("t")}, {Key: []byte("p"), Value: []byte("1")}},
			})
		}
		return &sarama.Records{RecordBatch: b}
	}
	blk := &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{
		batch(0, 4, false, 0, 1, 3, 4), // 2 compacted away
		batch(5, 0, true, 5),           // transaction marker
		batch(6, 3, false, 6, 7),       // 8 and 9 compacted away
	}}

	msgs, next := blockDeliveries("t", 1, blk, 2, 10)
	if !slices.Equal(offsetList(msgs), []int64{3, 4, 6, 7}) || next != 10 {
		t.Errorf("all: %v next %d; want [3 4 6 7] next 10", offsetList(msgs), next)
	}
	d := msgs[0]
	if d.Key != "k3" || string(d.Body) != "v3" || d.Tags != "t" || !maps.Equal(d.Properties, map[string]string{"p": "1"}) ||
		!d.Timestamp.Equal(t0.Add(3*time.Millisecond)) || d.Topic != "t" || d.Partition != 1 {
		t.Errorf("delivery %+v", d)
	}
	msgs, next = blockDeliveries("t", 1, blk, 2, 3)
	if !slices.Equal(offsetList(msgs), []int64{3, 4, 6}) || next != 7 {
		t.Errorf("max 3: %v next %d; want [3 4 6] next 7", offsetList(msgs), next)
	}
	msgs, next = blockDeliveries("t", 1, blk, 2, 2)
	// The marker at 5 lies between the last returned message and the first
	// left out: next skips it.
	if !slices.Equal(offsetList(msgs), []int64{3, 4}) || next != 6 {
		t.Errorf("max 2: %v next %d; want [3 4] next 6", offsetList(msgs), next)
	}
	// Only the marker at and above the offset: skipped, next moves past it.
	msgs, next = blockDeliveries("t", 1, &sarama.FetchResponseBlock{RecordsSet: blk.RecordsSet[1:2]}, 5, 10)
	if len(msgs) != 0 || next != 6 {
		t.Errorf("marker only: %v next %d; want nothing, next 6", offsetList(msgs), next)
	}
	// A partial trailing batch is left for the next fetch.
	partial := batch(10, 5, false, 10)
	partial.RecordBatch.PartialTrailingRecord = true
	msgs, next = blockDeliveries("t", 1, &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{blk.RecordsSet[2], partial}}, 6, 10)
	if !slices.Equal(offsetList(msgs), []int64{6, 7}) || next != 10 {
		t.Errorf("partial: %v next %d; want [6 7] next 10", offsetList(msgs), next)
	}
	// Log append time.
	lat := batch(20, 0, false, 20)
	lat.RecordBatch.LogAppendTime = true
	lat.RecordBatch.MaxTimestamp = t0.Add(time.Hour)
	msgs, _ = blockDeliveries("t", 1, &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{lat}}, 20, 10)
	if len(msgs) != 1 || !msgs[0].Timestamp.Equal(t0.Add(time.Hour)) {
		t.Errorf("log append time: %+v", msgs)
	}
	// Nothing at all.
	if msgs, next = blockDeliveries("t", 1, &sarama.FetchResponseBlock{}, 7, 10); msgs != nil || next != 7 {
		t.Errorf("empty: %v next %d", msgs, next)
	}
}

func TestBlockDeliveriesMessageSets(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	msg := func(v int8, o int64, val string) *sarama.MessageBlock {
		return &sarama.MessageBlock{Offset: o, Msg: &sarama.Message{Version: v, Value: []byte(val), Key: []byte("k"), Timestamp: t0}}
	}
	// Compressed wrapper of magic 1: inner offsets 0..2 relative to the
	// wrapper's offset 12, the last inner one.
	wrapper1 := &sarama.MessageBlock{Offset: 12, Msg: &sarama.Message{Version: 1, Codec: sarama.CompressionGZIP,
		Set: &sarama.MessageSet{Messages: []*sarama.MessageBlock{msg(1, 0, "a"), msg(1, 1, "b"), msg(1, 2, "c")}}}}
	// Compressed wrapper of magic 0: inner offsets are absolute.
	wrapper0 := &sarama.MessageBlock{Offset: 14, Msg: &sarama.Message{Version: 0, Codec: sarama.CompressionGZIP,
		Set: &sarama.MessageSet{Messages: []*sarama.MessageBlock{msg(0, 13, "d"), msg(0, 14, "e")}}}}
	blk := &sarama.FetchResponseBlock{RecordsSet: []*sarama.Records{{MsgSet: &sarama.MessageSet{
		Messages: []*sarama.MessageBlock{msg(1, 9, "x"), wrapper1, wrapper0, msg(0, 15, "f")},
	}}}}
	msgs, next := blockDeliveries("t", 0, blk, 11, 10)
	if !slices.Equal(offsetList(msgs), []int64{11, 12, 13, 14, 15}) || next != 16 {
		t.Fatalf("%v next %d; want 11..15 next 16", offsetList(msgs), next)
	}
	var bodies string
	for _, d := range msgs {
		bodies += string(d.Body)
		if d.Key != "k" || d.Properties != nil || d.Tags != "" {
			t.Errorf("delivery %+v", d)
		}
	}
	if bodies != "bcdef" {
		t.Errorf("bodies %q, want bcdef", bodies)
	}
	msgs, next = blockDeliveries("t", 0, blk, 11, 2)
	if !slices.Equal(offsetList(msgs), []int64{11, 12}) || next != 13 {
		t.Errorf("max 2: %v next %d; want [11 12] next 13", offsetList(msgs), next)
	}
}
