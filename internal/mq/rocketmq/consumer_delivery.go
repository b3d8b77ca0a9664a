package rocketmq

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// reservedProperties are RocketMQ's system property names; they are removed
// from a delivered message's properties (wire-contract.md §8.2).
var reservedProperties = map[string]bool{
	"TRACE_ON": true, "MSG_REGION": true, "KEYS": true, "TAGS": true, "WAIT": true, "DELAY": true,
	"RETRY_TOPIC": true, "REAL_TOPIC": true, "REAL_QID": true, "TRAN_MSG": true, "PGROUP": true,
	"MIN_OFFSET": true, "MAX_OFFSET": true, "BUYER_ID": true, "ORIGIN_MESSAGE_ID": true,
	"TRANSFER_FLAG": true, "CORRECTION_FLAG": true, "MQ2_FLAG": true, "RECONSUME_TIME": true,
	"UNIQ_KEY": true, "MAX_RECONSUME_TIMES": true, "CONSUME_START_TIME": true,
}

// maxInflatedBody bounds a decompressed body (a broker's message limit is
// at most a few MiB; this guards against a hostile deflate stream).
const maxInflatedBody = 64 << 20

// tagFilter is a subscription's tag expression: "*" (or empty) accepts
// every message, "a||b" the messages tagged a or b (RocketMQ's
// SubscriptionData; tags are filtered on the client as well as on the
// broker).
type tagFilter struct {
	expr    string
	all     bool
	tags    map[string]bool
	version int64 // subVersion: when the subscription was built (ms)
}

func newTagFilter(expr string) *tagFilter {
	f := &tagFilter{expr: strings.TrimSpace(expr), version: time.Now().UnixMilli()}
	if f.expr == "" || f.expr == "*" {
		f.expr, f.all = "*", true
		return f
	}
	f.tags = map[string]bool{}
	for t := range strings.SplitSeq(f.expr, "||") {
		if t = strings.TrimSpace(t); t != "" {
			f.tags[t] = true
		}
	}
	if len(f.tags) == 0 {
		f.expr, f.all = "*", true
	}
	return f
}

// match reports whether a message with tags passes the filter.
func (f *tagFilter) match(tags string) bool {
	return f.all || f.tags[tags]
}

// tagList returns the tags for a heartbeat's subscription data.
func (f *tagFilter) tagList() []string {
	out := make([]string, 0, len(f.tags))
	for t := range f.tags {
		out = append(out, t)
	}
	return out
}

// sendBackHandle is mq.Delivery.Handle for RocketMQ deliveries: what
// CONSUMER_SEND_MSG_BACK needs.
type sendBackHandle struct {
	broker          string
	commitLogOffset int64
	msgID           string
	originTopic     string
	reconsumeTimes  int32
}

// storedProps decodes the properties string of a stored message.
func storedProps(m *remoting.StoredMessage) map[string]string {
	if m.Properties == "" {
		return map[string]string{}
	}
	return remoting.DecodeProperties(m.Properties)
}

// toDelivery converts a pulled message of queue q (mq partition p) into a
// delivery. props are m's decoded properties.
func toDelivery(q mqueue, p int32, m *remoting.StoredMessage, props map[string]string) (*mq.Delivery, error) {
	body := m.Body
	if m.SysFlag&remoting.FlagCompressed != 0 {
		b, err := inflate(body)
		if err != nil {
			return nil, fmt.Errorf("rocketmq: message %s@%d: %w", q, m.QueueOffset, err)
		}
		body = b
	}
	d := &mq.Delivery{
		Topic:     q.Topic,
		Partition: p,
		Offset:    m.QueueOffset,
		Key:       props[remoting.PropertyKeys],
		Tags:      props[remoting.PropertyTags],
		Body:      body,
	}
	if m.BornTimestamp > 0 {
		d.Timestamp = time.UnixMilli(m.BornTimestamp)
	}
	for k, v := range props {
		if reservedProperties[k] || k == "" {
			continue
		}
		if d.Properties == nil {
			d.Properties = map[string]string{}
		}
		d.Properties[k] = v
	}
	h := &sendBackHandle{
		broker:          q.Broker,
		commitLogOffset: m.CommitLogOffset,
		msgID:           props[remoting.PropertyUniqKey],
		originTopic:     props[remoting.PropertyRetryTopic],
		reconsumeTimes:  m.ReconsumeTimes,
	}
	if h.msgID == "" && m.StoreHost.IsValid() {
		h.msgID = remoting.OffsetMsgID(m.StoreHost, m.CommitLogOffset)
	}
	if h.originTopic == "" {
		h.originTopic = m.Topic
	}
	d.Handle = h
	return d, nil
}

// inflate decompresses a zlib body (RocketMQ clients compress bodies above
// a size threshold and set FlagCompressed).
func inflate(b []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, maxInflatedBody+1))
	if err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if len(out) > maxInflatedBody {
		return nil, fmt.Errorf("inflate: body above %d bytes", maxInflatedBody)
	}
	return out, nil
}
