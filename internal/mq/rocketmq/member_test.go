package rocketmq

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/ddmq-go/carrera/internal/javastr"
)

// TestHeartbeatPayload checks the HEART_BEAT body against the Java/Go
// client's shape: one consumer data entry, passive consumption, the
// message model, one subscription per topic including the retry topic,
// tags with their Java hash codes.
func TestHeartbeatPayload(t *testing.T) {
	for _, broadcasting := range []bool{false, true} {
		g, err := NewGroupConsumer(ConsumerOptions{NameServers: []string{"h:1"}, Group: "cg", Broadcasting: broadcasting,
			ConsumeFrom:   ConsumeFromFirstOffset,
			Subscriptions: []Subscription{{Topic: "a", Expression: "x || y"}, {Topic: "b"}}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := &member{g: g}
		var hb struct {
			ClientID     string            `json:"clientID"`
			ProducerData []json.RawMessage `json:"producerDataSet"`
			ConsumerData []struct {
				GroupName, ConsumeType, MessageModel, ConsumeFromWhere string
				SubscriptionDataSet                                    []struct {
					Topic, SubString, ExpressionType string
					TagsSet                          []string
					CodeSet                          []int32
					SubVersion                       int64
				}
			} `json:"consumerDataSet"`
		}
		if err := json.Unmarshal(m.heartbeatPayload(), &hb); err != nil {
			t.Fatal(err)
		}
		if hb.ClientID != g.ClientID() || hb.ProducerData == nil || len(hb.ConsumerData) != 1 {
			t.Fatalf("heartbeat %+v", hb)
		}
		cd := hb.ConsumerData[0]
		model, topics := "CLUSTERING", []string{"%RETRY%cg", "a", "b"}
		if broadcasting {
			model, topics = "BROADCASTING", []string{"a", "b"}
		}
		if cd.GroupName != "cg" || cd.ConsumeType != "CONSUME_PASSIVELY" || cd.MessageModel != model ||
			cd.ConsumeFromWhere != ConsumeFromFirstOffset || len(cd.SubscriptionDataSet) != len(topics) {
			t.Fatalf("consumer data %+v", cd)
		}
		for i, sd := range cd.SubscriptionDataSet {
			if sd.Topic != topics[i] || sd.ExpressionType != "TAG" || sd.SubVersion <= 0 {
				t.Fatalf("subscription %+v", sd)
			}
			if sd.Topic != "a" {
				if sd.SubString != "*" || len(sd.TagsSet) != 0 {
					t.Fatalf("subscription %+v", sd)
				}
				continue
			}
			if sd.SubString != "x || y" || len(sd.TagsSet) != 2 || len(sd.CodeSet) != 2 {
				t.Fatalf("subscription %+v", sd)
			}
			for j, tag := range sd.TagsSet {
				if !slices.Contains([]string{"x", "y"}, tag) || sd.CodeSet[j] != javastr.HashCode(tag) {
					t.Fatalf("tags %v codes %v", sd.TagsSet, sd.CodeSet)
				}
			}
		}
	}
}

// TestClaimFlushValue: the stored offset is the last commit, moved past
// filtered messages only while everything handed out is committed.
func TestClaimFlushValue(t *testing.T) {
	c := &claim{committed: 10, delivered: 10, pulled: 10}
	if v := c.flushValueLocked(); v != 10 {
		t.Fatalf("start: %d", v)
	}
	c.pulled = 15 // 10..14 filtered out
	if v := c.flushValueLocked(); v != 15 {
		t.Fatalf("filtered tail: %d", v)
	}
	c.delivered = 18 // 15..17 handed out, not finished
	c.pulled = 20
	if v := c.flushValueLocked(); v != 10 {
		t.Fatalf("in flight: %d", v)
	}
	c.committed = 18
	if v := c.flushValueLocked(); v != 20 {
		t.Fatalf("all finished: %d", v)
	}
}
