package rocketmq

import (
	"context"
	"encoding/json"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/javastr"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// Heartbeat body types: the JSON a Java or Go client sends with HEART_BEAT
// (34). Field names are the wire names.
type (
	heartbeatBody struct {
		ClientID     string             `json:"clientID"`
		ProducerData []struct{}         `json:"producerDataSet"`
		ConsumerData []heartbeatConsume `json:"consumerDataSet"`
	}
	heartbeatConsume struct {
		GroupName        string             `json:"groupName"`
		ConsumeType      string             `json:"consumeType"`
		MessageModel     string             `json:"messageModel"`
		ConsumeFromWhere string             `json:"consumeFromWhere"`
		Subscriptions    []heartbeatSubData `json:"subscriptionDataSet"`
		UnitMode         bool               `json:"unitMode"`
	}
	heartbeatSubData struct {
		ClassFilterMode bool     `json:"classFilterMode"`
		Topic           string   `json:"topic"`
		SubString       string   `json:"subString"`
		TagsSet         []string `json:"tagsSet"`
		CodeSet         []int32  `json:"codeSet"`
		SubVersion      int64    `json:"subVersion"`
		ExpressionType  string   `json:"expressionType"`
	}
)

// heartbeatPayload builds the member's HEART_BEAT body: one consumer data
// entry for the group, "passive" (push-style) consumption, the message
// model, and one subscription per claimed topic.
func (m *member) heartbeatPayload() []byte {
	o := &m.g.opts
	model := "CLUSTERING"
	if o.Broadcasting {
		model = "BROADCASTING"
	}
	cd := heartbeatConsume{
		GroupName: o.Group, ConsumeType: "CONSUME_PASSIVELY", MessageModel: model,
		ConsumeFromWhere: o.ConsumeFrom,
	}
	for _, t := range m.g.topics {
		f := m.g.filters[t]
		sd := heartbeatSubData{Topic: t, SubString: f.expr, TagsSet: []string{}, CodeSet: []int32{},
			SubVersion: f.version, ExpressionType: "TAG"}
		for _, tag := range f.tagList() {
			sd.TagsSet = append(sd.TagsSet, tag)
			sd.CodeSet = append(sd.CodeSet, javastr.HashCode(tag))
		}
		cd.Subscriptions = append(cd.Subscriptions, sd)
	}
	b, _ := json.Marshal(heartbeatBody{ClientID: m.g.clientID, ProducerData: []struct{}{},
		ConsumerData: []heartbeatConsume{cd}})
	return b
}

// heartbeat registers the member at one broker.
func (m *member) heartbeat(ctx context.Context, addr string) bool {
	err := m.rpc.invokeAddr(ctx, addr, remoting.NewRequest(remoting.HeartBeat, nil, m.heartbeatPayload()))
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("rocketmq heartbeat failed", zap.String("broker", addr), zap.Error(err))
		}
		return false
	}
	if !m.hbDone[addr] {
		m.log.Debug("rocketmq member registered at broker", zap.String("broker", addr))
	}
	m.hbDone[addr] = true
	return true
}

// heartbeatAll heartbeats every broker of the subscribed topics' routes;
// with onlyNew, only those not heartbeated yet.
func (m *member) heartbeatAll(ctx context.Context, onlyNew bool) {
	for _, addr := range m.rpc.brokerAddrs(m.g.topics...) {
		if onlyNew && m.hbDone[addr] {
			continue
		}
		m.heartbeat(ctx, addr)
	}
}

// unregister tells every broker the member heartbeated that it leaves
// (UNREGISTER_CLIENT, 35), so the others rebalance at once. A broker that
// does not support the request drops the member when its connection
// closes or its heartbeats stop.
func (m *member) unregister() {
	ctx, cancel := context.WithTimeout(context.Background(), m.g.opts.RequestTimeout)
	defer cancel()
	for addr := range m.hbDone {
		req := remoting.NewRequest(unregisterClient, map[string]string{
			"clientID": m.g.clientID, "consumerGroup": m.g.opts.Group,
		}, nil)
		if err := m.rpc.invokeAddr(ctx, addr, req); err != nil {
			m.log.Debug("rocketmq unregister not acknowledged (closing the connection unregisters too)",
				zap.String("broker", addr), zap.Error(err))
		}
	}
}

// sleepCtx waits d or until ctx is done; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
