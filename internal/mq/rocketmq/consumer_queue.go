package rocketmq

import (
	"strconv"
	"sync"
)

// The mq consumer contract names a queue by one int32 (mq.Delivery.Partition,
// mq.Claim.Partition, the keys of mq.OffsetReader's maps). A RocketMQ
// message queue is a (brokerName, queueId) pair, so the consumer side
// encodes it as
//
//	partition = brokerIndex<<16 | queueId
//
// where brokerIndex is the broker name's index in a process-wide table that
// only grows (broker names are few and long-lived). The number is stable
// for the life of the process and means nothing outside it: clients never
// see it — cproxy turns it into the QID "<cluster>_<brokerName>_<queueId>"
// with QueueName (wire-contract.md §5). It is unrelated to the producer's
// mq.Target.Partition, which indexes the sorted writable-queue list.
const (
	queueIDBits = 16
	maxQueueID  = 1<<queueIDBits - 1
	maxBrokers  = 1 << (31 - queueIDBits) // keeps the partition non-negative
)

var brokerTable struct {
	mu    sync.RWMutex
	index map[string]int32
	names []string
}

// QueuePartition returns the partition number that names queue queueID of
// broker in this process. ok is false when queueID is outside [0, 65535] or
// the broker table is full (32768 distinct broker names).
func QueuePartition(broker string, queueID int32) (p int32, ok bool) {
	if queueID < 0 || queueID > maxQueueID {
		return 0, false
	}
	brokerTable.mu.RLock()
	i, found := brokerTable.index[broker]
	brokerTable.mu.RUnlock()
	if !found {
		brokerTable.mu.Lock()
		if i, found = brokerTable.index[broker]; !found {
			if len(brokerTable.names) >= maxBrokers {
				brokerTable.mu.Unlock()
				return 0, false
			}
			if brokerTable.index == nil {
				brokerTable.index = map[string]int32{}
			}
			i = int32(len(brokerTable.names))
			brokerTable.index[broker] = i
			brokerTable.names = append(brokerTable.names, broker)
		}
		brokerTable.mu.Unlock()
	}
	return i<<queueIDBits | queueID, true
}

// PartitionQueue is the inverse of QueuePartition; ok is false for a
// number QueuePartition never returned.
func PartitionQueue(p int32) (broker string, queueID int32, ok bool) {
	if p < 0 {
		return "", 0, false
	}
	i := int(p >> queueIDBits)
	brokerTable.mu.RLock()
	defer brokerTable.mu.RUnlock()
	if i >= len(brokerTable.names) {
		return "", 0, false
	}
	return brokerTable.names[i], p & maxQueueID, true
}

// QueueName returns "<brokerName>_<queueId>" for a partition number made by
// QueuePartition (the RocketMQ QID is "<cluster>_" + QueueName), or the
// decimal number when p is unknown.
func QueueName(p int32) string {
	b, q, ok := PartitionQueue(p)
	if !ok {
		return strconv.FormatInt(int64(p), 10)
	}
	return b + "_" + strconv.FormatInt(int64(q), 10)
}

// mqueue is one RocketMQ message queue of a topic.
type mqueue struct {
	Topic   string
	Broker  string
	QueueID int32
}

// less orders queues as RocketMQ's MessageQueue.compareTo: topic, broker
// name, queue id.
func (a mqueue) less(b mqueue) bool {
	if a.Topic != b.Topic {
		return a.Topic < b.Topic
	}
	if a.Broker != b.Broker {
		return a.Broker < b.Broker
	}
	return a.QueueID < b.QueueID
}

// compareQueues is less as a three-way comparison (for slices.SortFunc).
func compareQueues(a, b mqueue) int {
	switch {
	case a.less(b):
		return -1
	case b.less(a):
		return 1
	}
	return 0
}

func (a mqueue) String() string {
	return a.Topic + "@" + a.Broker + "_" + strconv.FormatInt(int64(a.QueueID), 10)
}
