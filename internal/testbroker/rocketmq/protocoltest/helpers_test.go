// Package protocoltest drives the RocketMQ test broker with the project's
// own remoting client only (no rocketmq-client-go consumers), so it runs
// with the race detector.
package protocoltest

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	"github.com/ddmq-go/carrera/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// client is a remoting client plus the server → client requests it got.
type client struct {
	t *testing.T
	*rm.Client
	mu       sync.Mutex
	requests []*rm.Command
	notify   chan *rm.Command
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c := &client{t: t, notify: make(chan *rm.Command, 100)}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rc, err := rm.Dial(ctx, addr, rm.WithRequestHandler(func(req *rm.Command) *rm.Command {
		c.mu.Lock()
		c.requests = append(c.requests, req)
		c.mu.Unlock()
		select {
		case c.notify <- req:
		default:
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	c.Client = rc
	t.Cleanup(func() { rc.Close() })
	return c
}

func (c *client) invoke(code int16, ext map[string]string, body []byte) *rm.Command {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Invoke(ctx, rm.NewRequest(code, ext, body))
	if err != nil {
		c.t.Fatalf("invoke %d: %v", code, err)
	}
	return resp
}

func (c *client) mustOK(code int16, ext map[string]string, body []byte) *rm.Command {
	c.t.Helper()
	resp := c.invoke(code, ext, body)
	if resp.Code != rm.Success {
		c.t.Fatalf("code %d: answer %d %q", code, resp.Code, resp.Remark)
	}
	return resp
}

// send stores one message and returns the answer's ext fields.
func (c *client) send(topic string, queueID int, body []byte, props map[string]string) map[string]string {
	c.t.Helper()
	return c.mustOK(rm.SendMessage, map[string]string{
		"producerGroup": "pg", "topic": topic, "queueId": strconv.Itoa(queueID), "sysFlag": "0",
		"bornTimestamp": strconv.FormatInt(time.Now().UnixMilli(), 10), "flag": "0",
		"properties": rm.EncodeProperties(props), "reconsumeTimes": "0", "unitMode": "false",
		"maxReconsumeTimes": "0", "batch": "false", "defaultTopic": "TBW102", "defaultTopicQueueNums": "4",
	}, body).ExtFields
}

type pullReq struct {
	group, topic string
	queueID      int
	offset       int64
	max          int
	sysFlag      int32
	commit       int64
	suspend      time.Duration
	sub          string
}

func (p pullReq) ext() map[string]string {
	if p.max == 0 {
		p.max = 32
	}
	if p.sub == "" {
		p.sub = "*"
	}
	return map[string]string{
		"consumerGroup": p.group, "topic": p.topic, "queueId": strconv.Itoa(p.queueID),
		"queueOffset": strconv.FormatInt(p.offset, 10), "maxMsgNums": strconv.Itoa(p.max),
		"sysFlag": strconv.Itoa(int(p.sysFlag)), "commitOffset": strconv.FormatInt(p.commit, 10),
		"suspendTimeoutMillis": strconv.FormatInt(p.suspend.Milliseconds(), 10),
		"subscription":         p.sub, "subVersion": "0", "expressionType": "TAG",
	}
}

func (c *client) pull(p pullReq) (*rm.Command, []rm.StoredMessage) {
	c.t.Helper()
	resp := c.invoke(rm.PullMessage, p.ext(), nil)
	msgs, err := rm.DecodeStoredMessages(resp.Body)
	if err != nil {
		c.t.Fatalf("decode pull body: %v", err)
	}
	return resp, msgs
}

func (c *client) heartbeat(clientID, group string, topics ...string) {
	c.t.Helper()
	type sub struct {
		Topic     string `json:"topic"`
		SubString string `json:"subString"`
	}
	subs := []sub{}
	for _, tp := range topics {
		subs = append(subs, sub{tp, "*"})
	}
	body, _ := json.Marshal(map[string]any{
		"clientID":        clientID,
		"producerDataSet": []any{},
		"consumerDataSet": []any{map[string]any{
			"groupName": group, "consumeType": "CONSUME_PASSIVELY", "messageModel": "CLUSTERING",
			"consumeFromWhere": "CONSUME_FROM_LAST_OFFSET", "subscriptionDataSet": subs, "unitMode": false,
		}},
	})
	c.mustOK(rm.HeartBeat, nil, body)
}

// waitNotify waits for a code-40 request for group.
func (c *client) waitNotify(group string, within time.Duration) {
	c.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case r := <-c.notify:
			if r.Code == rm.NotifyConsumerIDsChanged && r.Ext("consumerGroup") == group {
				return
			}
		case <-deadline:
			c.t.Fatalf("no code 40 for %s within %v", group, within)
		}
	}
}

func (c *client) drainNotify() {
	for {
		select {
		case <-c.notify:
		default:
			return
		}
	}
}

func startBroker(t *testing.T, opts ...testenv.RocketMQOption) *testenv.RocketMQ {
	t.Helper()
	return testenv.StartRocketMQ(t, opts...)
}

func extInt(t *testing.T, c *rm.Command, key string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(c.Ext(key), 10, 64)
	if err != nil {
		t.Fatalf("ext %s = %q: %v", key, c.Ext(key), err)
	}
	return n
}
