package rocketmq

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// member is one client of a consumer group, as its heartbeats describe it.
type member struct {
	clientID  string
	c         *conn // connection of the latest heartbeat; code 40 goes there
	lastBeat  time.Time
	subs      map[string]string // topic → tag expression
	subsKey   string            // canonical form of subs, to detect changes
	model     string            // CLUSTERING / BROADCASTING
	fromWhere string
}

type group struct {
	name    string
	members map[string]*member
}

type heartbeatBody struct {
	ClientID        string `json:"clientID"`
	ConsumerDataSet []struct {
		GroupName           string `json:"groupName"`
		ConsumeType         string `json:"consumeType"`
		MessageModel        string `json:"messageModel"`
		ConsumeFromWhere    string `json:"consumeFromWhere"`
		SubscriptionDataSet []struct {
			Topic          string `json:"topic"`
			SubString      string `json:"subString"`
			ExpressionType string `json:"expressionType"`
		} `json:"subscriptionDataSet"`
	} `json:"consumerDataSet"`
}

// heartbeat registers the client in each of its consumer groups. A new
// member, or a member whose subscriptions changed, makes the broker send
// code 40 to every member of the group (as a real broker does).
func (b *broker) heartbeat(c *conn, req *rm.Command) *rm.Command {
	var hb heartbeatBody
	if err := json.Unmarshal(req.Body, &hb); err != nil || hb.ClientID == "" {
		return errResp(req, rm.SystemError, "bad heartbeat body: %v", err)
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, cd := range hb.ConsumerDataSet {
		if cd.GroupName == "" {
			continue
		}
		subs := map[string]string{}
		keys := []string{}
		for _, sd := range cd.SubscriptionDataSet {
			expr := sd.SubString
			if sd.ExpressionType != "" && !strings.EqualFold(sd.ExpressionType, "TAG") {
				expr = "*" // only tag expressions are filtered by this broker
			}
			subs[sd.Topic] = expr
			keys = append(keys, sd.Topic+"\x00"+expr)
		}
		slices.Sort(keys)
		subsKey := strings.Join(keys, "\x01")
		g := b.groups[cd.GroupName]
		if g == nil {
			g = &group{name: cd.GroupName, members: map[string]*member{}}
			b.groups[cd.GroupName] = g
		}
		m := g.members[hb.ClientID]
		changed := m == nil || m.subsKey != subsKey || m.c != c
		if m == nil {
			m = &member{clientID: hb.ClientID}
			g.members[hb.ClientID] = m
			b.log.Info("consumer joined", zap.String("group", g.name), zap.String("client", hb.ClientID))
		}
		m.c, m.lastBeat, m.subs, m.subsKey = c, now, subs, subsKey
		m.model, m.fromWhere = cd.MessageModel, cd.ConsumeFromWhere
		if retry := rm.RetryTopicPrefix + cd.GroupName; validTopic(retry) {
			b.ensureTopicLocked(retry, 1)
		}
		if changed {
			b.notifyGroupLocked(g)
		}
	}
	return rm.NewResponse(req, rm.Success, "")
}

// notifyGroupLocked sends code 40 to every member of g.
func (b *broker) notifyGroupLocked(g *group) {
	sent := map[*conn]bool{}
	for _, m := range g.members {
		if m.c == nil || sent[m.c] {
			continue
		}
		sent[m.c] = true
		m.c.notify(rm.NotifyConsumerIDsChanged, map[string]string{"consumerGroup": g.name})
	}
}

// removeMemberLocked drops clientID from g and notifies the rest.
func (b *broker) removeMemberLocked(g *group, clientID, why string) {
	if _, ok := g.members[clientID]; !ok {
		return
	}
	delete(g.members, clientID)
	b.log.Info("consumer left", zap.String("group", g.name), zap.String("client", clientID), zap.String("reason", why))
	for k, l := range b.locks {
		if k.group == g.name && l.clientID == clientID {
			delete(b.locks, k)
		}
	}
	b.notifyGroupLocked(g)
}

func (b *broker) unregister(req *rm.Command) *rm.Command {
	id := req.Ext("clientID")
	b.mu.Lock()
	defer b.mu.Unlock()
	if g := b.groups[req.Ext("consumerGroup")]; g != nil && id != "" {
		b.removeMemberLocked(g, id, "unregistered")
	}
	return rm.NewResponse(req, rm.Success, "")
}

func (b *broker) consumerList(req *rm.Command) *rm.Command {
	group := req.Ext("consumerGroup")
	b.mu.Lock()
	ids := b.memberIDsLocked(group)
	b.mu.Unlock()
	if len(ids) == 0 {
		return errResp(req, rm.SystemError, "no consumer for this group, %s", group)
	}
	resp := rm.NewResponse(req, rm.Success, "")
	resp.Body, _ = json.Marshal(map[string][]string{"consumerIdList": ids})
	return resp
}

// onConnClosed forgets the connection's held pulls and removes the members
// whose latest heartbeat came over it (a real broker does the same when a
// channel closes).
func (b *broker) onConnClosed(c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.topics {
		for _, q := range t.qs {
			q.waiters = slices.DeleteFunc(q.waiters, func(hp *heldPull) bool {
				if hp.c != c {
					return false
				}
				b.finishHeldLocked(hp)
				return true
			})
		}
	}
	for _, g := range b.groups {
		for id, m := range g.members {
			if m.c == c {
				b.removeMemberLocked(g, id, "connection closed")
			}
		}
	}
}

// housekeepingLoop expires silent clients and stale locks and writes
// consumer offsets (every second, with a DataDir).
func (b *broker) housekeepingLoop() {
	defer b.srv.wg.Done()
	tick := min(time.Second, max(b.srv.opts.ClientExpiry/4, 10*time.Millisecond))
	t := time.NewTicker(tick)
	defer t.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-b.srv.stop:
			return
		case now := <-t.C:
			b.mu.Lock()
			for _, g := range b.groups {
				for id, m := range g.members {
					if now.Sub(m.lastBeat) > b.srv.opts.ClientExpiry {
						b.removeMemberLocked(g, id, "heartbeat expired")
					}
				}
			}
			for k, l := range b.locks {
				if now.Sub(l.at) > lockExpiry {
					delete(b.locks, k)
				}
			}
			if now.Sub(lastSave) >= time.Second {
				lastSave = now
				if err := b.saveOffsetsLocked(); err != nil {
					b.log.Error("persist offsets failed", zap.Error(err))
				}
			}
			b.mu.Unlock()
		}
	}
}
