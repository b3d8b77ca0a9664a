package rocketmq

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// handle answers one request; nil means the answer comes later (a held
// PULL) or never.
func (s *Server) handle(c *conn, req *rm.Command) *rm.Command {
	switch req.Code {
	case rm.GetRouteInfoByTopic:
		return s.routeInfo(req)
	case rm.GetBrokerClusterInfo:
		return s.clusterInfo(req)
	case rm.GetAllTopicListFromNameServer:
		return s.topicList(req)
	case rm.DeleteTopicInNameSrv:
		for _, b := range s.brokers {
			b.mu.Lock()
			b.deleteTopicLocked(req.Ext("topic"))
			b.mu.Unlock()
		}
		return rm.NewResponse(req, rm.Success, "")
	}
	b := c.b
	if b == nil {
		return notSupported(req)
	}
	switch req.Code {
	case rm.SendMessage, rm.SendMessageV2, rm.SendBatchMessage:
		return b.send(c, req)
	case rm.PullMessage:
		return b.pull(c, req)
	case rm.HeartBeat:
		return b.heartbeat(c, req)
	case rm.UnregisterClient:
		return b.unregister(req)
	case rm.GetConsumerListByGroup:
		return b.consumerList(req)
	case rm.QueryConsumerOffset:
		return b.queryOffset(req)
	case rm.UpdateConsumerOffset:
		return b.updateOffset(req)
	case rm.GetMaxOffset, rm.GetMinOffset:
		return b.maxMinOffset(req)
	case rm.SearchOffsetByTimestamp:
		return b.searchOffset(req)
	case rm.ConsumerSendMsgBack:
		return b.sendBack(req)
	case rm.CreateTopic:
		return b.createTopic(req)
	case rm.DeleteTopicInBroker:
		b.mu.Lock()
		b.deleteTopicLocked(req.Ext("topic"))
		b.mu.Unlock()
		return rm.NewResponse(req, rm.Success, "")
	case rm.GetAllSubscriptionGroupConfig:
		return b.subscriptionGroups(req)
	case rm.LockBatchMQ:
		return b.lockBatch(req)
	case rm.UnlockBatchMQ:
		return b.unlockBatch(req)
	}
	return notSupported(req)
}

func notSupported(req *rm.Command) *rm.Command {
	return rm.NewResponse(req, rm.RequestCodeNotSupported, fmt.Sprintf(" request type %d not supported", req.Code))
}

func errResp(req *rm.Command, code int16, format string, args ...any) *rm.Command {
	return rm.NewResponse(req, code, fmt.Sprintf(format, args...))
}

// extInt parses an integer ext field; def when absent.
func extInt(req *rm.Command, key string, def int64) (int64, error) {
	v, ok := req.ExtFields[key]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad %s %q", key, v)
	}
	return n, nil
}

// extInts parses several integer fields at once; the first error wins.
type extParser struct {
	req *rm.Command
	err error
}

func (p *extParser) int(key string, def int64) int64 {
	if p.err != nil {
		return 0
	}
	n, err := extInt(p.req, key, def)
	p.err = err
	return n
}

func (p *extParser) required(key string) string {
	v := p.req.Ext(key)
	if p.err == nil && v == "" {
		p.err = fmt.Errorf("missing %s", key)
	}
	return v
}

// ---- NameServer ----

func (s *Server) routeInfo(req *rm.Command) *rm.Command {
	topic := req.Ext("topic")
	template := topic == rm.DefaultTopic && !s.opts.DisableAutoCreateTopics
	// A group's retry topic is created when its route is asked for (a real
	// broker creates it on the group's first heartbeat; the client asks for
	// the route before that and would otherwise see it only 30 s later).
	retry := strings.HasPrefix(topic, rm.RetryTopicPrefix) && validTopic(topic)
	route := struct {
		QueueDatas        []rm.QueueData    `json:"queueDatas"`
		BrokerDatas       []rm.BrokerData   `json:"brokerDatas"`
		FilterServerTable map[string]string `json:"filterServerTable"`
	}{QueueDatas: []rm.QueueData{}, BrokerDatas: []rm.BrokerData{}, FilterServerTable: map[string]string{}}
	for _, b := range s.brokers {
		var qd *rm.QueueData
		b.mu.Lock()
		if retry && b.topics[topic] == nil && !b.closed {
			if err := b.createTopicLocked(topic, 1, 1, rm.PermRead|rm.PermWrite); err != nil {
				b.log.Error("create retry topic failed", zap.Error(err))
			}
		}
		if t := b.topics[topic]; t != nil && topic != scheduleTopic {
			qd = &rm.QueueData{BrokerName: b.name, ReadQueueNums: t.conf.ReadQueueNums, WriteQueueNums: t.conf.WriteQueueNums, Perm: t.conf.Perm}
		} else if template {
			n := s.opts.DefaultQueues
			qd = &rm.QueueData{BrokerName: b.name, ReadQueueNums: n, WriteQueueNums: n, Perm: rm.PermInherit | rm.PermRead | rm.PermWrite}
		}
		b.mu.Unlock()
		if qd != nil {
			route.QueueDatas = append(route.QueueDatas, *qd)
			route.BrokerDatas = append(route.BrokerDatas, rm.BrokerData{Cluster: s.opts.Cluster, BrokerName: b.name, BrokerAddrs: map[string]string{rm.MasterID: b.addrString}})
		}
	}
	if len(route.QueueDatas) == 0 {
		return errResp(req, rm.TopicNotExist, "No topic route info in name server for the topic: %s", topic)
	}
	resp := rm.NewResponse(req, rm.Success, "")
	resp.Body, _ = json.Marshal(route)
	return resp
}

func (s *Server) clusterInfo(req *rm.Command) *rm.Command {
	info := struct {
		BrokerAddrTable  map[string]rm.BrokerData `json:"brokerAddrTable"`
		ClusterAddrTable map[string][]string      `json:"clusterAddrTable"`
	}{map[string]rm.BrokerData{}, map[string][]string{}}
	for _, b := range s.brokers {
		info.BrokerAddrTable[b.name] = rm.BrokerData{Cluster: s.opts.Cluster, BrokerName: b.name, BrokerAddrs: map[string]string{rm.MasterID: b.addrString}}
		info.ClusterAddrTable[s.opts.Cluster] = append(info.ClusterAddrTable[s.opts.Cluster], b.name)
	}
	resp := rm.NewResponse(req, rm.Success, "")
	resp.Body, _ = json.Marshal(info)
	return resp
}

func (s *Server) topicList(req *rm.Command) *rm.Command {
	set := map[string]bool{}
	if !s.opts.DisableAutoCreateTopics {
		set[rm.DefaultTopic] = true
	}
	for _, b := range s.brokers {
		b.mu.Lock()
		for name := range b.topics {
			set[name] = true
		}
		b.mu.Unlock()
	}
	list := make([]string, 0, len(set))
	for name := range set {
		list = append(list, name)
	}
	sort.Strings(list)
	resp := rm.NewResponse(req, rm.Success, "")
	resp.Body, _ = json.Marshal(map[string][]string{"topicList": list})
	return resp
}

// ---- topics ----

func (b *broker) createTopic(req *rm.Command) *rm.Command {
	p := &extParser{req: req}
	topic := p.required("topic")
	readQ := p.int("readQueueNums", int64(b.srv.opts.DefaultQueues))
	writeQ := p.int("writeQueueNums", int64(b.srv.opts.DefaultQueues))
	perm := p.int("perm", rm.PermRead|rm.PermWrite)
	if p.err != nil {
		return errResp(req, rm.SystemError, "%v", p.err)
	}
	if !validTopic(topic) || topic == rm.DefaultTopic || topic == scheduleTopic || topic == b.srv.opts.Cluster {
		return errResp(req, rm.SystemError, "the topic[%s] is invalid or conflicts with a system name", topic)
	}
	if readQ <= 0 || writeQ <= 0 || readQ > maxQueues || writeQ > maxQueues || perm < 0 || perm > 7 {
		return errResp(req, rm.SystemError, "bad queue numbers %d/%d or perm %d", readQ, writeQ, perm)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.createTopicLocked(topic, int(readQ), int(writeQ), int(perm)); err != nil {
		return errResp(req, rm.SystemError, "create topic: %v", err)
	}
	b.log.Info("topic created", zap.String("topic", topic), zap.Int64("readQueues", readQ), zap.Int64("writeQueues", writeQ))
	return rm.NewResponse(req, rm.Success, "")
}

// ---- send ----

func (b *broker) send(c *conn, req *rm.Command) *rm.Command {
	short := req.Code != rm.SendMessage // 310 and 320 use one-letter keys
	key := func(long, s string) string {
		if short {
			return s
		}
		return long
	}
	p := &extParser{req: req}
	topic := p.required(key("topic", "b"))
	queueID := p.int(key("queueId", "e"), -1)
	sysFlag := p.int(key("sysFlag", "f"), 0)
	bornTS := p.int(key("bornTimestamp", "g"), 0)
	flag := p.int(key("flag", "h"), 0)
	reconsume := p.int(key("reconsumeTimes", "j"), 0)
	maxReconsume := p.int(key("maxReconsumeTimes", "l"), 16)
	defQueues := p.int(key("defaultTopicQueueNums", "d"), int64(b.srv.opts.DefaultQueues))
	props := req.Ext(key("properties", "i"))
	if p.err != nil {
		return errResp(req, rm.SystemError, "%v", p.err)
	}
	if !validTopic(topic) {
		return errResp(req, rm.SystemError, "the topic[%s] is invalid", topic)
	}
	if topic == rm.DefaultTopic || topic == scheduleTopic {
		return errResp(req, rm.NoPermission, "sending message to system topic %s is forbidden", topic)
	}

	type one struct {
		flag  int32
		body  []byte
		props string
	}
	var msgs []one
	if req.Code == rm.SendBatchMessage {
		batch, err := rm.DecodeBatch(req.Body)
		if err != nil || len(batch) == 0 {
			return errResp(req, rm.MessageIllegal, "bad batch body: %v", err)
		}
		for _, m := range batch {
			msgs = append(msgs, one{m.Flag, m.Body, m.Properties})
		}
	} else {
		msgs = []one{{int32(flag), req.Body, props}}
	}
	for _, m := range msgs {
		if len(m.body) == 0 || len(m.body) > b.srv.opts.MaxMessageSize {
			return errResp(req, rm.MessageIllegal, "the message body size %d is 0 or exceeds %d", len(m.body), b.srv.opts.MaxMessageSize)
		}
		if len(m.props) > rm.MaxPropertiesLen {
			return errResp(req, rm.MessageIllegal, "the message properties length %d exceeds %d", len(m.props), rm.MaxPropertiesLen)
		}
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.flushWakesLocked() // held pulls see the whole batch
	if b.closed {
		return errResp(req, rm.ServiceNotAvailable, "broker %s is shutting down", b.name)
	}
	// A retry-topic message that was retried too often goes to the DLQ.
	if group, ok := strings.CutPrefix(topic, rm.RetryTopicPrefix); ok && reconsume >= maxReconsume {
		topic = rm.DLQTopicPrefix + group
		queueID = 0
		b.ensureTopicLocked(topic, 1)
	}
	t := b.topics[topic]
	if t == nil {
		switch {
		case strings.HasPrefix(topic, rm.RetryTopicPrefix) || strings.HasPrefix(topic, rm.DLQTopicPrefix):
			t = b.ensureTopicLocked(topic, 1)
		case b.srv.opts.DisableAutoCreateTopics:
			return errResp(req, rm.TopicNotExist, "topic[%s] not exist, apply first please!", topic)
		default:
			n := int(min(max(defQueues, 1), int64(b.srv.opts.DefaultQueues)))
			if err := b.createTopicLocked(topic, n, n, rm.PermRead|rm.PermWrite); err != nil {
				return errResp(req, rm.SystemError, "auto-create topic: %v", err)
			}
			b.log.Info("topic auto-created", zap.String("topic", topic), zap.Int("queues", n))
			t = b.topics[topic]
		}
	}
	if t.conf.Perm&rm.PermWrite == 0 {
		return errResp(req, rm.NoPermission, "the topic[%s] sending message is forbidden", topic)
	}
	if queueID < 0 {
		queueID = int64(rand.IntN(t.conf.WriteQueueNums))
	}
	if queueID >= int64(t.conf.WriteQueueNums) {
		return errResp(req, rm.SystemError, "request queueId[%d] is illegal, topic %s writeQueueNums %d", queueID, topic, t.conf.WriteQueueNums)
	}
	ids := make([]string, 0, len(msgs))
	var first *rm.StoredMessage
	for _, m := range msgs {
		sm := &rm.StoredMessage{
			Flag: m.flag, SysFlag: int32(sysFlag), BornTimestamp: bornTS, BornHost: c.remote,
			ReconsumeTimes: int32(reconsume), Body: m.body, Properties: m.props,
		}
		stored, err := b.storeMessageLocked(topic, int(queueID), sm)
		if err != nil {
			b.log.Error("store failed", zap.String("topic", topic), zap.Error(err))
			return errResp(req, rm.SystemError, "store: %v", err)
		}
		if first == nil {
			first = stored
		}
		ids = append(ids, rm.OffsetMsgID(b.addr, stored.CommitLogOffset))
	}
	resp := rm.NewResponse(req, rm.Success, "")
	resp.ExtFields["msgId"] = strings.Join(ids, ",")
	resp.ExtFields["queueId"] = strconv.Itoa(int(first.QueueID))
	resp.ExtFields["queueOffset"] = strconv.FormatInt(first.QueueOffset, 10)
	resp.ExtFields["MSG_REGION"] = "DefaultRegion"
	resp.ExtFields["TRACE_ON"] = "true"
	return resp
}

// ensureTopicLocked returns topic, creating it with n queues (read and
// write) when missing.
func (b *broker) ensureTopicLocked(name string, n int) *topic {
	if t := b.topics[name]; t != nil {
		return t
	}
	if err := b.createTopicLocked(name, n, n, rm.PermRead|rm.PermWrite); err != nil {
		b.log.Error("create topic failed", zap.String("topic", name), zap.Error(err))
	}
	return b.topics[name]
}

// ---- offsets ----

func (b *broker) setOffsetLocked(group, topic string, queueID int, off int64) {
	byTopic := b.offsets[group]
	if byTopic == nil {
		byTopic = map[string]map[int]int64{}
		b.offsets[group] = byTopic
	}
	byQueue := byTopic[topic]
	if byQueue == nil {
		byQueue = map[int]int64{}
		byTopic[topic] = byQueue
	}
	if old, ok := byQueue[queueID]; !ok || old != off {
		byQueue[queueID] = off
		b.offsetDirty = true
	}
}

func (b *broker) queryOffset(req *rm.Command) *rm.Command {
	p := &extParser{req: req}
	group, topic := p.required("consumerGroup"), p.required("topic")
	qid := p.int("queueId", -1)
	if p.err != nil {
		return errResp(req, rm.SystemError, "%v", p.err)
	}
	b.mu.Lock()
	off, ok := b.offsets[group][topic][int(qid)]
	b.mu.Unlock()
	if !ok {
		return errResp(req, rm.QueryNotFound, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first")
	}
	return offsetResp(req, off)
}

// offsetResp is a success answer carrying ext offset=off.
func offsetResp(req *rm.Command, off int64) *rm.Command {
	resp := rm.NewResponse(req, rm.Success, "")
	resp.ExtFields["offset"] = strconv.FormatInt(off, 10)
	return resp
}

func (b *broker) updateOffset(req *rm.Command) *rm.Command {
	p := &extParser{req: req}
	group, topic := p.required("consumerGroup"), p.required("topic")
	qid := p.int("queueId", -1)
	off := p.int("commitOffset", -1)
	if p.err == nil && (qid < 0 || qid >= maxQueues || off < 0) {
		p.err = fmt.Errorf("bad queueId %d or commitOffset %d", qid, off)
	}
	if p.err != nil {
		return errResp(req, rm.SystemError, "%v", p.err)
	}
	b.mu.Lock()
	b.setOffsetLocked(group, topic, int(qid), off)
	b.mu.Unlock()
	return rm.NewResponse(req, rm.Success, "")
}

// queueOffset answers a request naming topic and queueId (and whatever more
// parse reads, if not nil) with offset = at(queue), computed under b.mu; 0
// when the broker has no such queue.
func (b *broker) queueOffset(req *rm.Command, parse func(*extParser), at func(*queue) int64) *rm.Command {
	p := &extParser{req: req}
	topic := p.required("topic")
	qid := p.int("queueId", -1)
	if parse != nil {
		parse(p)
	}
	if p.err != nil {
		return errResp(req, rm.SystemError, "%v", p.err)
	}
	var off int64
	b.mu.Lock()
	if q := b.queueLocked(topic, int(qid)); q != nil {
		off = at(q)
	}
	b.mu.Unlock()
	return offsetResp(req, off)
}

// maxMinOffset answers GET_MAX_OFFSET (the next offset to be written) or
// GET_MIN_OFFSET (the oldest message kept).
func (b *broker) maxMinOffset(req *rm.Command) *rm.Command {
	isMax := req.Code == rm.GetMaxOffset
	return b.queueOffset(req, nil, func(q *queue) int64 {
		if isMax {
			return q.maxOffset()
		}
		return q.minOff // advanced only by retention
	})
}

// searchOffset answers the offset of the first message kept that was
// stored at or after timestamp (ms), or the max offset when there is none.
func (b *broker) searchOffset(req *rm.Command) *rm.Command {
	var ts int64
	return b.queueOffset(req, func(p *extParser) { ts = p.int("timestamp", 0) }, func(q *queue) int64 {
		return q.search(func(d []byte) bool { return storeTimestampOf(d) >= ts })
	})
}

// ---- send back (retry) ----

func (b *broker) sendBack(req *rm.Command) *rm.Command {
	p := &extParser{req: req}
	group := p.required("group")
	clo := p.int("offset", -1)
	delayLevel := p.int("delayLevel", 0)
	maxReconsume := p.int("maxReconsumeTimes", 16)
	if p.err != nil {
		return errResp(req, rm.SystemError, "%v", p.err)
	}
	if maxReconsume < 0 {
		maxReconsume = 16
	}
	retryTopic := rm.RetryTopicPrefix + group
	if !validTopic(retryTopic) {
		return errResp(req, rm.SystemError, "bad group %q", group)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.flushWakesLocked()
	q, off, ok := b.findByCLOLocked(clo)
	if !ok {
		return errResp(req, rm.SystemError, "look message by offset failed, %d", clo)
	}
	msgs, err := rm.DecodeStoredMessages(q.data(off))
	if err != nil || len(msgs) != 1 {
		return errResp(req, rm.SystemError, "stored message %d unreadable: %v", clo, err)
	}
	orig := msgs[0]
	props := rm.DecodeProperties(orig.Properties)
	if props[rm.PropertyRetryTopic] == "" {
		props[rm.PropertyRetryTopic] = orig.Topic
	}
	if id := req.Ext("originMsgId"); id != "" {
		props[rm.PropertyOriginMessageID] = id
	} else {
		props[rm.PropertyOriginMessageID] = rm.OffsetMsgID(orig.StoreHost, orig.CommitLogOffset)
	}
	delete(props, rm.PropertyDelayTimeLevel)
	newTopic := retryTopic
	if int64(orig.ReconsumeTimes) >= maxReconsume || delayLevel < 0 {
		newTopic = rm.DLQTopicPrefix + group
	} else {
		if delayLevel == 0 {
			delayLevel = 3 + int64(orig.ReconsumeTimes)
		}
		props[rm.PropertyDelayTimeLevel] = strconv.FormatInt(delayLevel, 10)
	}
	b.ensureTopicLocked(newTopic, 1)
	m := &rm.StoredMessage{
		Flag: orig.Flag, SysFlag: orig.SysFlag, BornTimestamp: orig.BornTimestamp, BornHost: orig.BornHost,
		ReconsumeTimes: orig.ReconsumeTimes + 1, Body: orig.Body, Properties: rm.EncodeProperties(props),
	}
	if _, err := b.storeMessageLocked(newTopic, 0, m); err != nil {
		return errResp(req, rm.SystemError, "store: %v", err)
	}
	return rm.NewResponse(req, rm.Success, "")
}

// scheduleLoop moves delayed messages (send-back retries and producer
// messages with a DELAY level) to their real topic when due. Each level
// has its own FIFO queue in scheduleTopic, so only queue heads are checked.
func (b *broker) scheduleLoop() {
	defer b.srv.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := b.deliverDue()
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-b.srv.stop:
			return
		case <-b.kick:
		case <-timer.C:
		}
	}
}

// deliverDue delivers every due delayed message and returns the time until
// the next one is due (-1: none pending).
func (b *broker) deliverDue() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.flushWakesLocked()
	t := b.topics[scheduleTopic]
	if t == nil || b.closed {
		return -1
	}
	now := time.Now().UnixMilli()
	wait := int64(-1)
	levels := b.srv.opts.DelayLevels
	for lvl := 0; lvl < len(levels) && lvl < len(t.qs); lvl++ {
		q := t.qs[lvl]
		off := b.offsets[scheduleGroup][scheduleTopic][lvl]
		start := off
		off = max(off, q.minOff)
		for off < q.maxOffset() {
			data := q.data(off)
			due := storeTimestampOf(data) + levels[lvl].Milliseconds()
			if due > now {
				if wait < 0 || due-now < wait {
					wait = due - now
				}
				break
			}
			b.deliverLocked(data)
			off++
		}
		if off != start {
			b.setOffsetLocked(scheduleGroup, scheduleTopic, lvl, off)
		}
	}
	if wait < 0 {
		return -1
	}
	return time.Duration(wait) * time.Millisecond
}

func (b *broker) deliverLocked(data []byte) {
	msgs, err := rm.DecodeStoredMessages(data)
	if err != nil || len(msgs) != 1 {
		b.log.Error("unreadable delayed message dropped", zap.Error(err))
		return
	}
	m := msgs[0]
	props := rm.DecodeProperties(m.Properties)
	realTopic := props[rm.PropertyRealTopic]
	qid, _ := strconv.Atoi(props[rm.PropertyRealQueueID])
	delete(props, rm.PropertyDelayTimeLevel)
	if strings.HasPrefix(realTopic, rm.RetryTopicPrefix) || strings.HasPrefix(realTopic, rm.DLQTopicPrefix) {
		b.ensureTopicLocked(realTopic, 1)
	}
	t := b.topics[realTopic]
	if t == nil {
		b.log.Warn("delayed message for a deleted topic dropped", zap.String("topic", realTopic))
		return
	}
	if qid < 0 || qid >= len(t.qs) {
		qid = 0
	}
	out := &rm.StoredMessage{
		Flag: m.Flag, SysFlag: m.SysFlag, BornTimestamp: m.BornTimestamp, BornHost: m.BornHost,
		ReconsumeTimes: m.ReconsumeTimes, Body: m.Body, Properties: rm.EncodeProperties(props),
	}
	if _, err := b.appendLocked(t.qs[qid], out); err != nil {
		b.log.Error("deliver delayed message failed", zap.Error(err))
	}
}

// ---- subscription groups, locks ----

func (b *broker) subscriptionGroups(req *rm.Command) *rm.Command {
	type cfg struct {
		GroupName                      string `json:"groupName"`
		ConsumeEnable                  bool   `json:"consumeEnable"`
		ConsumeFromMinEnable           bool   `json:"consumeFromMinEnable"`
		ConsumeBroadcastEnable         bool   `json:"consumeBroadcastEnable"`
		RetryMaxTimes                  int    `json:"retryMaxTimes"`
		RetryQueueNums                 int    `json:"retryQueueNums"`
		BrokerID                       int    `json:"brokerId"`
		WhichBrokerWhenConsumeSlowly   int    `json:"whichBrokerWhenConsumeSlowly"`
		NotifyConsumerIdsChangedEnable bool   `json:"notifyConsumerIdsChangedEnable"`
	}
	table := map[string]cfg{}
	b.mu.Lock()
	names := make([]string, 0, len(b.groups)+len(b.offsets))
	for g := range b.groups {
		names = append(names, g)
	}
	for g := range b.offsets {
		if g != scheduleGroup {
			names = append(names, g)
		}
	}
	b.mu.Unlock()
	for _, g := range names {
		table[g] = cfg{GroupName: g, ConsumeEnable: true, ConsumeFromMinEnable: true, ConsumeBroadcastEnable: true,
			RetryMaxTimes: 16, RetryQueueNums: 1, WhichBrokerWhenConsumeSlowly: 1, NotifyConsumerIdsChangedEnable: true}
	}
	body := map[string]any{
		"subscriptionGroupTable": table,
		"dataVersion":            map[string]int64{"timestamp": time.Now().UnixMilli(), "counter": 0},
	}
	resp := rm.NewResponse(req, rm.Success, "")
	resp.Body, _ = json.Marshal(body)
	return resp
}

type lockKey struct {
	group, topic string
	queueID      int
}

type lockEntry struct {
	clientID string
	at       time.Time
}

// lockExpiry is RocketMQ's rebalance lock lifetime.
const lockExpiry = 60 * time.Second

type mqJSON struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int    `json:"queueId"`
}

type lockBody struct {
	ConsumerGroup string   `json:"consumerGroup"`
	ClientID      string   `json:"clientId"`
	MQSet         []mqJSON `json:"mqSet"`
}

func (b *broker) lockBatch(req *rm.Command) *rm.Command {
	var lb lockBody
	if err := json.Unmarshal(req.Body, &lb); err != nil || lb.ClientID == "" || lb.ConsumerGroup == "" {
		return errResp(req, rm.SystemError, "bad lock body: %v", err)
	}
	now := time.Now()
	ok := []mqJSON{}
	b.mu.Lock()
	for _, mq := range lb.MQSet {
		k := lockKey{lb.ConsumerGroup, mq.Topic, mq.QueueID}
		if cur, held := b.locks[k]; !held || cur.clientID == lb.ClientID || now.Sub(cur.at) > lockExpiry {
			b.locks[k] = lockEntry{clientID: lb.ClientID, at: now}
			ok = append(ok, mq)
		}
	}
	b.mu.Unlock()
	resp := rm.NewResponse(req, rm.Success, "")
	resp.Body, _ = json.Marshal(map[string][]mqJSON{"lockOKMQSet": ok})
	return resp
}

func (b *broker) unlockBatch(req *rm.Command) *rm.Command {
	var lb lockBody
	if err := json.Unmarshal(req.Body, &lb); err != nil {
		return errResp(req, rm.SystemError, "bad unlock body: %v", err)
	}
	b.mu.Lock()
	for _, mq := range lb.MQSet {
		k := lockKey{lb.ConsumerGroup, mq.Topic, mq.QueueID}
		if cur, held := b.locks[k]; held && cur.clientID == lb.ClientID {
			delete(b.locks, k)
		}
	}
	b.mu.Unlock()
	return rm.NewResponse(req, rm.Success, "")
}

// memberIDsLocked returns group's client ids, sorted.
func (b *broker) memberIDsLocked(group string) []string {
	g := b.groups[group]
	if g == nil {
		return nil
	}
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
