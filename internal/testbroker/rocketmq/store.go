package rocketmq

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

const (
	maxQueues = 1024
	// scheduleTopic holds delayed messages, one queue per delay level
	// (RocketMQ's SCHEDULE_TOPIC_XXXX).
	scheduleTopic = "SCHEDULE_TOPIC_XXXX"
	// scheduleGroup is the consumer-offset group recording the
	// scheduler's progress per level queue.
	scheduleGroup = "%SCHEDULE_PROGRESS%"
)

var topicRE = regexp.MustCompile(`^[%|a-zA-Z0-9_-]+$`)

// validTopic applies RocketMQ's topic rule: [%|a-zA-Z0-9_-]{1,127}.
func validTopic(t string) bool { return len(t) <= 127 && topicRE.MatchString(t) }

type topicConf struct {
	ReadQueueNums  int `json:"readQueueNums"`
	WriteQueueNums int `json:"writeQueueNums"`
	Perm           int `json:"perm"`
}

type topic struct {
	name string
	conf topicConf
	qs   []*queue
}

// broker is one broker name: its listener, store, offsets and consumer
// groups. mu guards all of its state.
type broker struct {
	srv        *Server
	name       string
	ln         net.Listener
	addr       netip.AddrPort
	addrString string
	dir        string
	log        *zap.Logger

	mu          sync.Mutex
	closed      bool
	topics      map[string]*topic
	nextCLO     int64    // next commit-log offset
	storedBytes int64    // segment bytes of every queue (retention bounds it)
	segSeq      uint64   // segments created so far
	woken       []*queue // queues appended to since flushWakesLocked
	offsets     map[string]map[string]map[int]int64
	offsetDirty bool
	topicDirty  bool
	groups      map[string]*group
	locks       map[lockKey]lockEntry
	kick        chan struct{} // wakes the scheduler
}

func newBroker(s *Server, name string, ln net.Listener, ap netip.AddrPort, dir string) *broker {
	return &broker{
		srv: s, name: name, ln: ln, addr: ap, addrString: ap.String(), dir: dir,
		log:     s.log.With(zap.String("broker", name)),
		topics:  map[string]*topic{},
		offsets: map[string]map[string]map[int]int64{}, groups: map[string]*group{},
		locks: map[lockKey]lockEntry{}, kick: make(chan struct{}, 1),
	}
}

func (b *broker) queueLocked(topicName string, id int) *queue {
	t := b.topics[topicName]
	if t == nil || id < 0 || id >= len(t.qs) {
		return nil
	}
	return t.qs[id]
}

// createTopicLocked creates topic or changes its queue counts and
// permission (queues are never removed: a shrink only hides them).
func (b *broker) createTopicLocked(name string, readQ, writeQ, perm int) error {
	t := b.topics[name]
	if t == nil {
		t = &topic{name: name}
		b.topics[name] = t
	}
	t.conf = topicConf{ReadQueueNums: readQ, WriteQueueNums: writeQ, Perm: perm}
	for len(t.qs) < max(readQ, writeQ) {
		q := &queue{topic: name, id: len(t.qs)}
		if err := b.openQueueFile(q); err != nil {
			return err
		}
		t.qs = append(t.qs, q)
	}
	b.topicDirty = true
	if err := b.saveTopicsLocked(); err != nil {
		b.log.Error("persist topics failed", zap.Error(err))
	}
	return nil
}

// deleteTopicLocked removes topic, its messages and its consumer offsets.
// Held pulls on it are answered.
func (b *broker) deleteTopicLocked(name string) {
	t := b.topics[name]
	if t == nil {
		return
	}
	delete(b.topics, name)
	for _, q := range t.qs {
		b.storedBytes -= q.bytes
		b.answerWaitersLocked(q, true)
		if q.file != nil {
			q.file.Close()
		}
	}
	for _, byTopic := range b.offsets {
		delete(byTopic, name)
	}
	b.offsetDirty = true
	b.topicDirty = true
	if b.dir != "" {
		if err := os.RemoveAll(filepath.Join(b.dir, "store", name)); err != nil {
			b.log.Error("remove topic files failed", zap.String("topic", name), zap.Error(err))
		}
	}
	if err := b.saveTopicsLocked(); err != nil {
		b.log.Error("persist topics failed", zap.Error(err))
	}
}

// appendLocked stores m in q: it assigns the queue offset, commit-log
// offset, store time and store host, writes it and marks q for
// flushWakesLocked (which answers held pulls). It returns the stored
// message.
func (b *broker) appendLocked(q *queue, m *remoting.StoredMessage) (*remoting.StoredMessage, error) {
	m.QueueID = int32(q.id)
	m.QueueOffset = q.maxOffset()
	m.CommitLogOffset = b.nextCLO
	m.StoreTimestamp = time.Now().UnixMilli()
	m.StoreHost = b.addr
	m.Topic = q.topic
	m.BodyCRC = remoting.BodyCRC(m.Body)
	if len(m.Properties) > remoting.MaxPropertiesLen {
		return nil, fmt.Errorf("properties of %d bytes exceed %d", len(m.Properties), remoting.MaxPropertiesLen)
	}
	size := m.EncodedLen()
	seg, added := q.reserve(size, &b.segSeq)
	b.storedBytes += added
	start := len(seg.buf)
	buf, err := remoting.AppendStoredMessage(seg.buf, m)
	if err != nil {
		return nil, err
	}
	if len(buf)-start != size || cap(buf) != cap(seg.buf) {
		return nil, fmt.Errorf("stored message of %d bytes, expected %d in place", len(buf)-start, size) // cannot happen
	}
	if q.file != nil {
		if _, err := q.file.Write(buf[start:]); err != nil {
			return nil, fmt.Errorf("write %s: %w", q.file.Name(), err)
		}
		if b.srv.opts.SyncWrites {
			if err := q.file.Sync(); err != nil {
				return nil, fmt.Errorf("sync %s: %w", q.file.Name(), err)
			}
		}
	}
	seg.buf = buf
	tags, _ := propValue(m.Properties, remoting.PropertyTags)
	q.commit(start, tagHash(tags))
	b.nextCLO += int64(size)
	b.markWakeLocked(q)
	if added > 0 {
		b.retainLocked() // the stored bytes grow by whole segments
	}
	return m, nil
}

// markWakeLocked notes that q has new messages for its held pulls.
func (b *broker) markWakeLocked(q *queue) {
	if len(q.waiters) > 0 && !q.wake {
		q.wake = true
		b.woken = append(b.woken, q)
	}
}

// flushWakesLocked answers the held pulls of the queues appended to since
// the last call: once per request, so a batch reaches them whole.
func (b *broker) flushWakesLocked() {
	for _, q := range b.woken {
		q.wake = false
		b.wakeWaitersLocked(q)
	}
	clear(b.woken)
	b.woken = b.woken[:0]
}

// retainLocked drops the oldest segments (of every queue but the schedule
// topic's, and never a queue's last segment) while the broker holds more
// than Options.RetentionBytes.
func (b *broker) retainLocked() {
	limit := b.srv.opts.RetentionBytes
	for limit > 0 && b.storedBytes > limit {
		var oldest *queue
		for name, t := range b.topics {
			if name == scheduleTopic {
				continue
			}
			for _, q := range t.qs {
				if len(q.segs) > 1 && (oldest == nil || q.segs[0].seq < oldest.segs[0].seq) {
					oldest = q
				}
			}
		}
		if oldest == nil {
			return
		}
		b.storedBytes -= oldest.dropHead()
	}
}

// findByCLOLocked finds the message stored at commit-log offset clo:
// every queue's commit-log offsets increase with its queue offsets.
func (b *broker) findByCLOLocked(clo int64) (*queue, int64, bool) {
	for _, t := range b.topics {
		for _, q := range t.qs {
			if len(q.index) == 0 || clo < commitLogOffsetOf(q.data(q.minOff)) || clo > commitLogOffsetOf(q.data(q.maxOffset()-1)) {
				continue
			}
			off := q.search(func(d []byte) bool { return commitLogOffsetOf(d) >= clo })
			if off < q.maxOffset() && commitLogOffsetOf(q.data(off)) == clo {
				return q, off, true
			}
		}
	}
	return nil, 0, false
}

// storeMessageLocked stores a producer or send-back message in
// (topic, queueID), diverting delayed messages (property DELAY > 0) to the
// schedule topic as RocketMQ does.
func (b *broker) storeMessageLocked(topicName string, queueID int, m *remoting.StoredMessage) (*remoting.StoredMessage, error) {
	delay, _ := propValue(m.Properties, remoting.PropertyDelayTimeLevel)
	if lvl, err := strconv.Atoi(delay); err == nil && lvl > 0 && topicName != scheduleTopic {
		lvl = min(lvl, len(b.srv.opts.DelayLevels))
		props := remoting.DecodeProperties(m.Properties)
		props[remoting.PropertyRealTopic] = topicName
		props[remoting.PropertyRealQueueID] = strconv.Itoa(queueID)
		m.Properties = remoting.EncodeProperties(props)
		b.ensureScheduleTopicLocked()
		stored, err := b.appendLocked(b.topics[scheduleTopic].qs[lvl-1], m)
		if err == nil {
			select {
			case b.kick <- struct{}{}:
			default:
			}
		}
		return stored, err
	}
	q := b.queueLocked(topicName, queueID)
	if q == nil {
		return nil, fmt.Errorf("no queue %s/%d", topicName, queueID)
	}
	return b.appendLocked(q, m)
}

func (b *broker) ensureScheduleTopicLocked() {
	if t := b.topics[scheduleTopic]; t == nil || len(t.qs) < len(b.srv.opts.DelayLevels) {
		n := len(b.srv.opts.DelayLevels)
		if err := b.createTopicLocked(scheduleTopic, n, n, remoting.PermRead|remoting.PermWrite); err != nil {
			b.log.Error("create schedule topic failed", zap.Error(err))
		}
	}
}

// ---- persistence ----

func (b *broker) queuePath(q *queue) string {
	return filepath.Join(b.dir, "store", q.topic, strconv.Itoa(q.id)+".log")
}

func (b *broker) openQueueFile(q *queue) error {
	if b.dir == "" {
		return nil
	}
	p := b.queuePath(q)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	q.file = f
	return nil
}

type topicsFile struct {
	Topics map[string]topicConf `json:"topics"`
}

func (b *broker) saveTopicsLocked() error {
	if b.dir == "" || !b.topicDirty {
		return nil
	}
	tf := topicsFile{Topics: map[string]topicConf{}}
	for name, t := range b.topics {
		tf.Topics[name] = t.conf
	}
	if err := writeJSON(filepath.Join(b.dir, "topics.json"), tf); err != nil {
		return err
	}
	b.topicDirty = false
	return nil
}

func (b *broker) saveOffsetsLocked() error {
	if b.dir == "" || !b.offsetDirty {
		return nil
	}
	if err := writeJSON(filepath.Join(b.dir, "offsets.json"), b.offsets); err != nil {
		return err
	}
	b.offsetDirty = false
	return nil
}

// persistAll writes topics and offsets (Close, and the housekeeping loop
// for offsets every second).
func (b *broker) persistAll() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return errors.Join(b.saveTopicsLocked(), b.saveOffsetsLocked())
}

// writeJSON replaces path atomically (temp file + rename).
func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(data, v)
}

// load restores topics, messages and offsets from b.dir. A queue file
// whose tail is incomplete or corrupt (a crash mid-append) is truncated
// after its last good message.
func (b *broker) load() error {
	if b.dir == "" {
		return nil
	}
	var tf topicsFile
	if _, err := readJSON(filepath.Join(b.dir, "topics.json"), &tf); err != nil {
		return err
	}
	if _, err := readJSON(filepath.Join(b.dir, "offsets.json"), &b.offsets); err != nil {
		return err
	}
	if b.offsets == nil {
		b.offsets = map[string]map[string]map[int]int64{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, conf := range tf.Topics {
		if !validTopic(name) {
			continue
		}
		if err := b.createTopicLocked(name, conf.ReadQueueNums, conf.WriteQueueNums, conf.Perm); err != nil {
			return err
		}
		for _, q := range b.topics[name].qs {
			if err := b.loadQueue(q); err != nil {
				return err
			}
		}
	}
	b.topicDirty = false
	return nil
}

func (b *broker) loadQueue(q *queue) error {
	data, err := os.ReadFile(b.queuePath(q))
	if err != nil {
		return err
	}
	pos := 0
	for pos < len(data) {
		size := 0
		if len(data)-pos >= 4 {
			size = int(int32(uint32(data[pos])<<24 | uint32(data[pos+1])<<16 | uint32(data[pos+2])<<8 | uint32(data[pos+3])))
		}
		if size <= 0 || pos+size > len(data) {
			break
		}
		msgs, err := remoting.DecodeStoredMessages(data[pos : pos+size])
		if err != nil || len(msgs) != 1 || msgs[0].QueueOffset != q.maxOffset() {
			break
		}
		m := msgs[0]
		seg, added := q.reserve(size, &b.segSeq)
		b.storedBytes += added
		start := len(seg.buf)
		seg.buf = append(seg.buf, data[pos:pos+size]...)
		tags, _ := propValue(m.Properties, remoting.PropertyTags)
		q.commit(start, tagHash(tags))
		b.nextCLO = max(b.nextCLO, m.CommitLogOffset+int64(size))
		if added > 0 {
			b.retainLocked()
		}
		pos += size
	}
	if pos < len(data) {
		b.log.Warn("queue file has a bad tail; truncating", zap.String("file", b.queuePath(q)),
			zap.Int("keep", pos), zap.Int("size", len(data)))
		if err := q.file.Truncate(int64(pos)); err != nil {
			return err
		}
	}
	return nil
}

func (b *broker) closeFiles() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range b.topics {
		for _, q := range t.qs {
			if q.file != nil {
				q.file.Close()
				q.file = nil
			}
		}
	}
}
