package testenv

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
)

// RocketMQ is an in-process RocketMQ-protocol test broker
// (internal/testbroker/rocketmq): a NameServer and one or more brokers on
// 127.0.0.1. Clients use NameServer with the pass-through resolver;
// admin topic creation needs a broker address from Brokers.
type RocketMQ struct {
	t    testing.TB
	opts rmqtb.Options
	// Server is the running broker (nil after Stop).
	Server *rmqtb.Server
	// NameServer is the NameServer's "127.0.0.1:port".
	NameServer string
	// Brokers maps broker name → "127.0.0.1:port".
	Brokers map[string]string
}

// RocketMQOption adjusts the broker's options before it starts.
type RocketMQOption func(*rmqtb.Options)

// RocketMQBrokers runs one broker per name (default "broker-a").
func RocketMQBrokers(names ...string) RocketMQOption {
	return func(o *rmqtb.Options) {
		o.Brokers = nil
		for _, n := range names {
			o.Brokers = append(o.Brokers, rmqtb.BrokerConfig{Name: n})
		}
	}
}

// RocketMQDataDir persists the broker's state in dir (so Restart keeps
// messages, topics and offsets).
func RocketMQDataDir(dir string) RocketMQOption {
	return func(o *rmqtb.Options) { o.DataDir = dir }
}

// RocketMQClientExpiry sets how long a silent consumer stays registered.
func RocketMQClientExpiry(d time.Duration) RocketMQOption {
	return func(o *rmqtb.Options) { o.ClientExpiry = d }
}

// RocketMQNoAutoCreate makes sends to unknown topics fail with code 17.
func RocketMQNoAutoCreate() RocketMQOption {
	return func(o *rmqtb.Options) { o.DisableAutoCreateTopics = true }
}

// RocketMQRetentionBytes bounds the message bytes each broker keeps in
// memory; the oldest are dropped past it (see rmqtb.Options.RetentionBytes).
func RocketMQRetentionBytes(n int64) RocketMQOption {
	return func(o *rmqtb.Options) { o.RetentionBytes = n }
}

// StartRocketMQ starts the test broker; opts are applied in order (any
// func(*rmqtb.Options) works). It logs through the test at warn level and
// is closed in t.Cleanup.
func StartRocketMQ(t testing.TB, opts ...RocketMQOption) *RocketMQ {
	t.Helper()
	var o rmqtb.Options
	o.Logger = zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel))
	for _, f := range opts {
		f(&o)
	}
	r := &RocketMQ{t: t, opts: o}
	r.start()
	t.Cleanup(r.Stop)
	return r
}

func (r *RocketMQ) start() {
	r.t.Helper()
	s, err := rmqtb.Start(r.opts)
	if err != nil {
		r.t.Fatalf("testenv: start rocketmq test broker: %v", err)
	}
	r.Server, r.NameServer, r.Brokers = s, s.NameServerAddr(), s.BrokerAddrs()
}

// BrokerAddr returns the address of broker name; it fails the test when
// there is no such broker.
func (r *RocketMQ) BrokerAddr(name string) string {
	r.t.Helper()
	addr, ok := r.Brokers[name]
	if !ok {
		r.t.Fatalf("testenv: no rocketmq broker %q", name)
	}
	return addr
}

// CreateTopic creates topic with the given number of queues on every
// broker, or only on the named ones.
func (r *RocketMQ) CreateTopic(topic string, queues int, brokers ...string) {
	r.t.Helper()
	if err := r.Server.CreateTopic(topic, queues, brokers...); err != nil {
		r.t.Fatalf("testenv: create topic %q: %v", topic, err)
	}
}

// Stop closes the broker (idempotent).
func (r *RocketMQ) Stop() {
	if r.Server == nil {
		return
	}
	if err := r.Server.Close(); err != nil {
		r.t.Errorf("testenv: close rocketmq test broker: %v", err)
	}
	r.Server = nil
}

// Restart stops the broker and starts it again on the same addresses (and
// the same data directory, if any). Without a data directory everything
// stored is lost.
func (r *RocketMQ) Restart() {
	r.t.Helper()
	r.Stop()
	r.opts.NameServerAddr = r.NameServer
	brokers := make([]rmqtb.BrokerConfig, 0, len(r.Brokers))
	for name, addr := range r.Brokers {
		brokers = append(brokers, rmqtb.BrokerConfig{Name: name, Addr: addr})
	}
	r.opts.Brokers = brokers
	r.start()
}

// RocketMQMessage is one message Send stores.
type RocketMQMessage struct {
	Broker     string // broker name
	Queue      int    // queue id on that broker
	Keys, Tags string // "" = none
	Properties map[string]string
	Body       string
}

// Send stores msgs on topic in order with SEND_MESSAGE (code 10) through
// the remoting client (no library producer), as producerGroup, and returns
// their queue offsets. Each message's properties are a fresh UNIQ_KEY
// (uniqPrefix, a time stamp and its index), then its Properties, then KEYS
// and TAGS when set. Any failure fails t.
func (r *RocketMQ) Send(t testing.TB, topic, producerGroup, uniqPrefix string, msgs ...RocketMQMessage) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	clients := map[string]*remoting.Client{}
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	out := make([]int64, 0, len(msgs))
	for i, m := range msgs {
		addr, ok := r.Brokers[m.Broker]
		if !ok {
			t.Fatalf("testenv: no rocketmq broker %q", m.Broker)
		}
		c := clients[addr]
		if c == nil {
			var err error
			if c, err = remoting.Dial(ctx, addr); err != nil {
				t.Fatal(err)
			}
			clients[addr] = c
		}
		props := map[string]string{"UNIQ_KEY": fmt.Sprintf("%s%d-%d", uniqPrefix, time.Now().UnixNano(), i)}
		maps.Copy(props, m.Properties)
		if m.Keys != "" {
			props["KEYS"] = m.Keys
		}
		if m.Tags != "" {
			props["TAGS"] = m.Tags
		}
		resp, err := c.Invoke(ctx, remoting.NewRequest(remoting.SendMessage, map[string]string{
			"producerGroup": producerGroup, "topic": topic, "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
			"queueId": strconv.Itoa(m.Queue), "sysFlag": "0", "bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10),
			"flag": "0", "properties": remoting.EncodeProperties(props), "reconsumeTimes": "0", "unitMode": "false",
			"maxReconsumeTimes": "16", "batch": "false",
		}, []byte(m.Body)))
		if err != nil {
			t.Fatal(err)
		}
		if err := remoting.CheckCode(resp); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		off, err := strconv.ParseInt(resp.Ext("queueOffset"), 10, 64)
		if err != nil {
			t.Fatalf("send %d: queueOffset %q", i, resp.Ext("queueOffset"))
		}
		out = append(out, off)
	}
	return out
}
