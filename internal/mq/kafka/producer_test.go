package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/testenv"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// produceCounter records, per produce request the broker receives, how many
// records it carries.
type produceCounter struct {
	mu     sync.Mutex
	perReq []int
}

func (pc *produceCounter) snapshot() []int {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return append([]int(nil), pc.perReq...)
}

// countProduce installs an observing control on the Produce key. If pk is
// non-nil, the first request is parked on it.
func countProduce(c *kfake.Cluster, pk *parker) *produceCounter {
	pc := &produceCounter{}
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		n := 0
		for _, t := range req.(*kmsg.ProduceRequest).Topics {
			for _, p := range t.Partitions {
				n += countRecords(p.Records)
			}
		}
		pc.mu.Lock()
		first := len(pc.perReq) == 0
		pc.perReq = append(pc.perReq, n)
		pc.mu.Unlock()
		if first && pk != nil {
			pk.park()
		}
		return nil, nil, false
	})
	return pc
}

func countRecords(b []byte) int {
	n := 0
	for len(b) > 0 {
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			break
		}
		n += int(rb.NumRecords)
		next := 12 + int(rb.Length) // FirstOffset + Length + what Length counts
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return n
}

// Concurrent sends to one partition while its request is in flight leave
// in one later request: fewer produce requests than records.
func TestCoalescesConcurrentSends(t *testing.T) {
	k := testenv.StartKafka(t, kfake.SeedTopics(1, "co"))
	// Park the first request until every send is handed over.
	pk := newParker(k.Cluster)
	defer pk.release()
	pc := countProduce(k.Cluster, pk)
	p := newTestProducer(t, testOptions(k))
	tg, err := p.Resolve(ctxT(t), "co", mq.Selector{PartitionID: 0})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	results := make(chan error, n)
	var handed sync.WaitGroup
	for i := range n {
		handed.Go(func() {
			p.Produce(ctxT(t), &mq.Record{Topic: "co", Target: tg, Body: []byte(fmt.Sprint(i))},
				func(err error) { results <- err })
		})
	}
	handed.Wait()
	pk.release()
	for range n {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	per := pc.snapshot()
	total := 0
	for _, c := range per {
		total += c
	}
	t.Logf("%d records in %d produce requests: %v", n, len(per), per)
	if total != n {
		t.Fatalf("broker saw %d records, want %d", total, n)
	}
	if len(per) >= n {
		t.Fatalf("%d produce requests for %d concurrent records: not coalesced", len(per), n)
	}
}

// A lone send is not held back waiting for company: its request carries
// exactly that record.
func TestLoneSendIsItsOwnRequest(t *testing.T) {
	k := testenv.StartKafka(t, kfake.SeedTopics(2, "lone"))
	pc := countProduce(k.Cluster, nil)
	p := newTestProducer(t, testOptions(k))
	tg, err := p.Resolve(ctxT(t), "lone", mq.Selector{PartitionID: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "lone", Target: tg, Body: []byte("solo")}); err != nil {
			t.Fatal(err)
		}
		if got := pc.snapshot(); len(got) != i+1 || got[i] != 1 {
			t.Fatalf("after send %d: records per request %v, want %d requests of 1", i+1, got, i+1)
		}
	}
}

func TestRecordLayout(t *testing.T) {
	k := testenv.StartKafka(t)
	k.SeedTopics(1, "layout", "other")
	p := newTestProducer(t, testOptions(k))
	recs := []*mq.Record{
		{Topic: "layout", Body: []byte("no key")},
		{Topic: "layout", Key: "k1", Tags: "TagA", Body: []byte("v"),
			Properties: map[string]string{"b": "2", "a": "1", "TAGSx": "x"}},
	}
	for _, r := range recs {
		if err := mq.ProduceSync(ctxT(t), p, r); err != nil {
			t.Fatal(err)
		}
	}
	got := k.ReadAll("layout")
	if len(got) != 2 {
		t.Fatalf("read %d records", len(got))
	}
	if got[0].Key != nil || got[0].Headers != nil {
		t.Errorf("record without key/tags/properties: key %q headers %v, want null key, no headers", got[0].Key, got[0].Headers)
	}
	var hs []string
	for _, h := range got[1].Headers {
		hs = append(hs, h.Key+"="+string(h.Value))
	}
	if string(got[1].Key) != "k1" || strings.Join(hs, ",") != "TAGS=TagA,TAGSx=x,a=1,b=2" {
		t.Errorf("key %q headers %v, want k1 and TAGS first, then properties by name", got[1].Key, hs)
	}
}

func TestAcksZero(t *testing.T) {
	k := testenv.StartKafka(t, kfake.SeedTopics(1, "a0"))
	opts := testOptions(k)
	opts.Acks = "0"
	p := newTestProducer(t, opts)
	for range 5 {
		if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "a0", Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	// acks=0 completes on write; the broker stores in order behind it.
	deadline := time.Now().Add(10 * time.Second)
	for len(k.ReadAll("a0")) != 5 {
		if time.Now().After(deadline) {
			t.Fatal("records of an acks=0 producer never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The broker refuses a record above the topic's max.message.bytes although
// the client accepts it.
func TestBrokerTooLarge(t *testing.T) {
	k := testenv.StartKafka(t)
	k.CreateTopicWithConfig("small", 1, map[string]string{"max.message.bytes": "1000"})
	p := newTestProducer(t, testOptions(k))
	err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "small", Body: make([]byte, 2000)})
	if !errors.Is(err, mq.ErrMessageTooLarge) || !errors.Is(err, sarama.ErrMessageSizeTooLarge) {
		t.Fatalf("got %v, want ErrMessageTooLarge wrapping MESSAGE_TOO_LARGE", err)
	}
}

// Broker error codes on produce, injected with kfake faults, arrive as the
// sentinels of translate (with client retries off, as in DDMQ).
func TestBrokerErrorsOnProduce(t *testing.T) {
	cases := []struct {
		name string
		code *kerr.Error
		want error // nil: no sentinel
		raw  error
	}{
		{"request timed out", kerr.RequestTimedOut, mq.ErrTimeout, sarama.ErrRequestTimedOut},
		{"not enough replicas after append", kerr.NotEnoughReplicasAfterAppend, mq.ErrTimeout, sarama.ErrNotEnoughReplicasAfterAppend},
		{"message too large", kerr.MessageTooLarge, mq.ErrMessageTooLarge, sarama.ErrMessageSizeTooLarge},
		{"invalid record", kerr.InvalidRecord, mq.ErrMessageIllegal, sarama.ErrInvalidRecord},
		{"unknown topic or partition", kerr.UnknownTopicOrPartition, mq.ErrTopicNotExist, sarama.ErrUnknownTopicOrPartition},
		{"not enough replicas", kerr.NotEnoughReplicas, nil, sarama.ErrNotEnoughReplicas},
		{"policy violation", kerr.PolicyViolation, nil, sarama.ErrPolicyViolation},
	}
	k := testenv.StartKafka(t, kfake.SeedTopics(1, "faulty"))
	p := newTestProducer(t, testOptions(k))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := k.Cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "faulty", Err: c.code})
			defer h.Remove()
			err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "faulty", Body: []byte("x")})
			if !errors.Is(err, c.raw) {
				t.Fatalf("got %v, want it to wrap %v", err, c.raw)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if c.want == nil && mq.IsSentinel(err) {
				t.Fatalf("got %v, want no mq sentinel (FAIL_UNKNOWN)", err)
			}
		})
	}
	// The producer is still healthy afterwards.
	if err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "faulty", Body: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
}

func TestBufferMemory(t *testing.T) {
	k := testenv.StartKafka(t, kfake.SeedTopics(1, "buf"))
	opts := testOptions(k)
	opts.BufferMemory = 2500
	p := newTestProducer(t, opts)
	release := blockProduce(k.Cluster)
	defer release()

	body := make([]byte, 1000) // ~1.1 KB with record overhead
	results := make(chan error, 3)
	for range 3 {
		p.Produce(ctxT(t), &mq.Record{Topic: "buf", Body: body}, func(err error) { results <- err })
	}
	// Two fit, the third is refused at once while the first two are held.
	if err := <-results; !errors.Is(err, mq.ErrBufferFull) {
		t.Fatalf("first completion: %v, want ErrBufferFull", err)
	}
	err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "buf", Body: make([]byte, 3000)})
	if !errors.Is(err, mq.ErrMessageTooLarge) {
		t.Fatalf("record larger than the whole buffer: %v, want ErrMessageTooLarge", err)
	}
	if got := p.inflight.Load(); got <= 2000 || got > 2500 {
		t.Fatalf("in-flight bytes %d, want two records' worth", got)
	}
	release()
	for range 2 {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
	if got := p.inflight.Load(); got != 0 {
		t.Fatalf("in-flight bytes %d after all completions, want 0", got)
	}
	if got := p.bufFull.Load(); got != 1 {
		t.Fatalf("buffer-full count %d, want 1", got)
	}
}

func TestResolveTopicCreatedLater(t *testing.T) {
	k := testenv.StartKafka(t)
	p := newTestProducer(t, testOptions(k))
	if _, err := p.Resolve(ctxT(t), "later", mq.Selector{PartitionID: -1}); !errors.Is(err, mq.ErrTopicNotExist) {
		t.Fatalf("before creation: %v, want ErrTopicNotExist", err)
	}
	k.CreateTopic("later", 3)
	tg, err := p.Resolve(ctxT(t), "later", mq.Selector{PartitionID: 2})
	if err != nil || tg.Partition != 2 || tg.Broker == "" {
		t.Fatalf("after creation: %+v, %v", tg, err)
	}
}

// Resolve of a topic missing from the cache waits for metadata only as long
// as its ctx allows.
func TestResolveBoundedByContext(t *testing.T) {
	k := testenv.StartKafka(t)
	p := newTestProducer(t, testOptions(k))
	pk := newParker(k.Cluster)
	k.Cluster.ControlKey(int16(kmsg.Metadata), func(kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster.KeepControl()
		if !pk.park() {
			k.Cluster.DropControl()
		}
		return nil, nil, false
	})
	defer pk.release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Resolve(ctx, "slow", mq.Selector{PartitionID: -1})
	if !errors.Is(err, mq.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrTimeout wrapping DeadlineExceeded", err)
	}
}

// An explicit partition the topic does not have fails in Produce too (the
// caller may build a Target without Resolve).
func TestProduceInvalidPartition(t *testing.T) {
	k := testenv.StartKafka(t, kfake.SeedTopics(2, "two"))
	p := newTestProducer(t, testOptions(k))
	for _, part := range []int32{2, 100, -1} {
		err := mq.ProduceSync(ctxT(t), p, &mq.Record{Topic: "two", Target: mq.Target{Partition: part}, Body: []byte("x")})
		if !errors.Is(err, mq.ErrTopicNotExist) {
			t.Fatalf("partition %d: %v, want ErrTopicNotExist", part, err)
		}
	}
}

func TestInstanceAffinity(t *testing.T) {
	k := testenv.StartKafka(t)
	opts := testOptions(k)
	opts.Instances = 4
	p := newTestProducer(t, opts)
	used := map[int]bool{}
	for part := range int32(64) {
		in := p.instanceFor("topic", part)
		if again := p.instanceFor("topic", part); again != in {
			t.Fatalf("partition %d mapped to instances %d and %d", part, in.id, again.id)
		}
		used[in.id] = true
	}
	if len(used) != 4 {
		t.Fatalf("64 partitions used instances %v, want all 4", used)
	}
}

func TestNewProducerOptions(t *testing.T) {
	k := testenv.StartKafka(t)
	cases := []struct {
		name string
		mod  func(*Options)
	}{
		{"no brokers", func(o *Options) { o.Brokers = nil }},
		{"bad acks", func(o *Options) { o.Acks = "2" }},
		{"negative retries", func(o *Options) { o.Retries = -1 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := testOptions(k)
			c.mod(&o)
			if p, err := NewProducer(o, nil); err == nil {
				_ = p.Close(context.Background())
				t.Fatal("NewProducer succeeded")
			}
		})
	}
	// An unreachable cluster surfaces at the first metadata request.
	o := testOptions(k)
	o.Brokers = []string{"127.0.0.1:1"}
	p := newTestProducer(t, o)
	if _, err := p.Resolve(ctxT(t), "t", mq.Selector{PartitionID: -1}); !errors.Is(err, sarama.ErrOutOfBrokers) {
		t.Fatalf("Resolve on an unreachable cluster: %v, want ErrOutOfBrokers", err)
	}
	for _, acks := range []string{"all", "-1", "1", "0", "ALL", ""} {
		o := testOptions(k)
		o.Acks = acks
		o.Instances = 2
		p, err := NewProducer(o, nil)
		if err != nil {
			t.Fatalf("acks %q: %v", acks, err)
		}
		if err := p.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
}

func BenchmarkResolve(b *testing.B) {
	k := testenv.StartKafka(b, kfake.NumBrokers(3), kfake.SeedTopics(16, "bench"))
	p := newTestProducer(b, testOptions(k))
	ctx := context.Background()
	for _, c := range []struct {
		name string
		sel  func(i int) mq.Selector
	}{
		{"Explicit", func(i int) mq.Selector { return mq.Selector{PartitionID: int32(i % 16)} }},
		{"Hash", func(i int) mq.Selector { return mq.Selector{PartitionID: -1, HashID: int64(i)} }},
		{"Random", func(int) mq.Selector { return mq.Selector{PartitionID: -2} }},
		{"AvoidBroker", func(int) mq.Selector { return mq.Selector{PartitionID: -2, AvoidBroker: k.Addrs()[0]} }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := p.Resolve(ctx, "bench", c.sel(i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkProduceParallel(b *testing.B) {
	k := testenv.StartKafka(b, kfake.SeedTopics(4, "bench"))
	p := newTestProducer(b, testOptions(k))
	body := make([]byte, 200)
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			i++
			rec := &mq.Record{Topic: "bench", Target: mq.Target{Partition: int32(i % 4)}, Body: body}
			if err := mq.ProduceSync(ctx, p, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
