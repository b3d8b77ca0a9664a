package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/apache/thrift/lib/go/thrift"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
)

// fakeProducer answers sendSync with OK, or 15 for topic "limited", and
// records what it got.
type fakeProducer struct {
	mu   sync.Mutex
	msgs []*producer.Message
	tmo  []int64
}

func (f *fakeProducer) SendSync(_ context.Context, m *producer.Message, timeout int64) (*producer.Result_, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, m)
	f.tmo = append(f.tmo, timeout)
	if m.Topic == "limited" {
		return &producer.Result_{Code: 15, Msg: "FAILED: Refused by the rate limiter."}, nil
	}
	return &producer.Result_{Code: 0, Msg: "OK"}, nil
}

func (f *fakeProducer) SendBatchSync(context.Context, []*producer.Message) (*producer.Result_, error) {
	return nil, fmt.Errorf("not implemented")
}

func (f *fakeProducer) SendAsync(context.Context, *producer.Message) (*producer.Result_, error) {
	return nil, fmt.Errorf("not implemented")
}

func (f *fakeProducer) SendDelaySync(context.Context, *producer.DelayMessage, int64) (*producer.DelayResult_, error) {
	return nil, fmt.Errorf("not implemented")
}

// startProducerServer serves h over framed + compact Thrift, as pproxy does.
func startProducerServer(t *testing.T, h producer.ProducerService) string {
	t.Helper()
	sock, err := thrift.NewTServerSocket("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := sock.Listen(); err != nil {
		t.Fatal(err)
	}
	conf := &thrift.TConfiguration{}
	srv := thrift.NewTSimpleServer4(producer.NewProducerServiceProcessor(h), sock,
		thrift.NewTFramedTransportFactoryConf(thrift.NewTTransportFactory(), conf),
		thrift.NewTCompactProtocolFactoryConf(conf))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve()
	}()
	t.Cleanup(func() {
		_ = srv.Stop()
		<-done
	})
	return sock.Addr().String()
}

func TestSend(t *testing.T) {
	h := &fakeProducer{}
	addr := startProducerServer(t, h)

	r := mustRun(t, nil, "send", "-addr", addr, "-topic", "orders", "-key", "k1", "-tag", "paid", "-n", "3")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], `3/3 code=0 msg="OK"`) {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	h.mu.Lock()
	if len(h.msgs) != 3 || h.msgs[0].Topic != "orders" || h.msgs[0].Key != "k1" || h.msgs[0].Tags != "paid" ||
		string(h.msgs[1].Body) != "message 2 from carreractl" || h.msgs[0].PartitionId != -1 || h.tmo[0] != 50 {
		t.Fatalf("server got %+v timeouts %v", h.msgs, h.tmo)
	}
	h.mu.Unlock()

	r = mustRun(t, nil, "send", "-addr", addr, "-topic", "orders", "-body", "hello", "-timeout", "1000")
	h.mu.Lock()
	if last := h.msgs[len(h.msgs)-1]; string(last.Body) != "hello" || h.tmo[len(h.tmo)-1] != 1000 {
		t.Fatalf("got %+v", last)
	}
	h.mu.Unlock()

	r = runCLI(t, nil, "send", "-addr", addr, "-topic", "limited", "-n", "2")
	if r.code != 1 || !strings.Contains(r.stdout, `code=15 msg="FAILED: Refused by the rate limiter."`) ||
		!strings.Contains(r.stderr, "2 of 2 messages not OK") {
		t.Fatalf("%+v", r)
	}
}

func TestSendConnectError(t *testing.T) {
	r := runCLI(t, nil, "send", "-addr", "127.0.0.1:1", "-topic", "t", "-io-timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "connect to 127.0.0.1:1") {
		t.Fatalf("%+v", r)
	}
}

func TestKafkaTail(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")

	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(c.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{
			Topic:     "orders",
			Partition: int32(i % 2),
			Key:       sarama.StringEncoder(fmt.Sprintf("k%d", i)),
			Value:     sarama.StringEncoder(fmt.Sprintf("v%d", i)),
			Headers:   []sarama.RecordHeader{{Key: []byte("traceId"), Value: []byte("t1")}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r := mustRun(t, nil, "kafka-tail", "-brokers", brokers, "-topic", "orders", "-n", "3")
	if time.Since(start) > 4*time.Second {
		t.Errorf("-n 3 should stop at the third record, took %v", time.Since(start))
	}
	for i := range 3 {
		want := fmt.Sprintf(`key="k%d" headers={traceId="t1"} value="v%d"`, i, i)
		if !strings.Contains(r.stdout, want) {
			t.Errorf("missing %s in\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "partition=1 offset=0 ") {
		t.Errorf("missing partition/offset in\n%s", r.stdout)
	}

	// Fewer records than -n: the idle timeout stops it with an error.
	r = runCLI(t, nil, "kafka-tail", "-brokers", brokers, "-topic", "orders", "-n", "4", "-idle", "300ms")
	if r.code != 1 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stderr, "idle for 300ms") {
		t.Fatalf("%+v", r)
	}
	// -from newest sees nothing that was written before.
	r = mustRun(t, nil, "kafka-tail", "-brokers", brokers, "-topic", "orders", "-from", "newest", "-idle", "300ms")
	if r.stdout != "" {
		t.Fatalf("%+v", r)
	}
}
