package cproxy

import (
	"context"
	"sort"
	"strconv"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/mq"
)

// QID returns the Kafka queue id "<cluster>_<partition>" (wire-contract.md §5).
func QID(cluster string, partition int32) string {
	return cluster + "_" + strconv.FormatInt(int64(partition), 10)
}

// ParseKafkaQID strips "<cluster>_" and reads the partition.
func ParseKafkaQID(cluster, qid string) (int32, bool) {
	if len(qid) <= len(cluster)+1 || qid[:len(cluster)] != cluster || qid[len(cluster)] != '_' {
		return 0, false
	}
	p, err := strconv.ParseInt(qid[len(cluster)+1:], 10, 32)
	if err != nil || p < 0 {
		return 0, false
	}
	return int32(p), true
}

// offsetStats answers getConsumeStats from the brokers: per served
// (topic, cluster) of the group, committed and log-end offsets per qid.
type offsetStats struct {
	snapshot func() *config.CProxySnapshot
	reader   func(cluster string) mq.OffsetReader
	// qid names a partition (default: the Kafka QID).
	qid func(cluster string, partition int32) string
	// offsetGroup is the group whose offsets a unit stores (default: the
	// group; RocketMQ broadcasting: a per-instance group).
	offsetGroup func(u *config.UnitView) string
}

// ConsumeStats implements StatsSource. Unknown group or topic → empty list.
func (s *offsetStats) ConsumeStats(ctx context.Context, group, topic string) ([]*consumer.ConsumeStats, error) {
	snap := s.snapshot()
	out := []*consumer.ConsumeStats{}
	if snap == nil {
		return out, nil
	}
	for _, u := range snap.UnitsOf(group) {
		r := s.reader(u.Key.Cluster)
		if r == nil {
			continue
		}
		for _, t := range u.Topics() {
			if topic != "" && t != topic {
				continue
			}
			hw, err := r.HighWatermarks(ctx, t)
			if err != nil {
				return nil, err
			}
			og := group
			if s.offsetGroup != nil {
				og = s.offsetGroup(u)
			}
			committed, err := r.Committed(ctx, og, t)
			if err != nil {
				return nil, err
			}
			st := &consumer.ConsumeStats{Group: group, Topic: t,
				ConsumeOffsets: map[string]int64{}, ProduceOffsets: map[string]int64{}}
			parts := make([]int32, 0, len(hw))
			for p := range hw {
				parts = append(parts, p)
			}
			sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
			for _, p := range parts {
				q := QID(u.Key.Cluster, p)
				if s.qid != nil {
					q = s.qid(u.Key.Cluster, p)
				}
				st.ProduceOffsets[q] = hw[p]
				if c, ok := committed[p]; ok && c.Offset >= 0 {
					st.ConsumeOffsets[q] = c.Offset
				}
			}
			out = append(out, st)
		}
	}
	return out, nil
}
