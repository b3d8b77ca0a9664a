package rocketmq

import (
	"slices"
	"strings"
)

// allocateAveragely returns the queues of all that the consumer me gets,
// exactly as RocketMQ's AllocateMessageQueueAveragely (Java) and
// rocketmq-client-go's AllocateByAveragely: both lists sorted (queues by
// topic, broker name, queue id; client ids as strings), the first
// len(all) % len(cids) consumers get one queue more, consecutive ranges in
// order. Java and Go members of one group therefore compute the same split.
// A consumer id not in cids gets nothing.
func allocateAveragely(me string, cids []string, all []mqueue) []mqueue {
	if me == "" || len(cids) == 0 || len(all) == 0 {
		return nil
	}
	cids = slices.Clone(cids)
	slices.Sort(cids)
	cids = slices.Compact(cids)
	all = slices.Clone(all)
	slices.SortFunc(all, compareQueues)
	index := slices.Index(cids, me)
	if index < 0 {
		return nil
	}
	n, c := len(all), len(cids)
	mod := n % c
	size := n / c
	switch {
	case n <= c:
		size = 1
	case mod > 0 && index < mod:
		size++
	}
	start := index*size + mod
	if mod > 0 && index < mod {
		start = index * size
	}
	num := min(size, n-start)
	out := make([]mqueue, 0, max(num, 0))
	for i := 0; i < num; i++ {
		out = append(out, all[(start+i)%n])
	}
	return out
}

// groupRetryTopic returns the group's retry topic "%RETRY%<group>".
func groupRetryTopic(group string) string { return "%RETRY%" + group }

// isRetryTopic reports whether topic is a retry topic.
func isRetryTopic(topic string) bool { return strings.HasPrefix(topic, "%RETRY%") }
