package engine

import (
	"slices"
	"time"

	"github.com/ddmq-go/carrera/internal/config"
)

// UnitTopic names one subscription unit of the group: a topic on one broker
// cluster.
type UnitTopic struct {
	Cluster string
	Topic   string
}

func (u UnitTopic) String() string { return u.Topic + "@" + u.Cluster }

// Settings are the per-unit limits and retry rules the engine applies,
// derived from a subscription (SettingsFor). The zero value of a field means
// its config default, except where noted; Configure normalises.
type Settings struct {
	// Timeout: a handed-out message not acknowledged within it is
	// redelivered (UpstreamTopic.timeout; default 5 s).
	Timeout time.Duration
	// MaxRetry bounds timeout redeliveries per message; -1 = unlimited
	// (UpstreamTopic.maxRetry). Unlike the other fields, 0 is a value: a
	// message that times out once is exhausted. Use SettingsFor or set it
	// explicitly.
	MaxRetry int
	// RetryIntervals are the nack redelivery delays in ms; a -1 element
	// repeats the previous delay forever; past the end (or a leading -1)
	// the message is exhausted. nil means config.DefaultRetryIntervals; an
	// empty non-nil slice gives up on the first nack.
	RetryIntervals []int
	// Concurrency bounds the unfinished messages of the unit on this engine
	// (default 1024).
	Concurrency int
	// MaxConsumeLag blocks reading a partition while
	// maxStartedOffset − committableOffset >= MaxConsumeLag. Negative = off;
	// 0 = Concurrency × 3 (config.UpstreamTopic.EffectiveMaxConsumeLag).
	MaxConsumeLag int64
	// MaxPullBatchSize caps the messages of one pull response (default 8).
	MaxPullBatchSize int
	// MaxTps and TotalMaxTps drive the consume rate: TotalMaxTps ×
	// ownedPartitions / allPartitions when TotalMaxTps > 0 and the shares
	// are known, else MaxTps when > 0, else TotalMaxTps when > 0, else
	// unlimited.
	MaxTps      float64
	TotalMaxTps float64
	// Order is the ordering mode: OrderNone, OrderQID (one in-flight batch
	// per partition) or OrderKey (one in-flight message per key).
	// OrderJSONPath is not supported by the pull engine and acts as
	// OrderNone (logged by Configure).
	Order config.OrderKind
	// DeadLetterTopic, when not empty, makes exhausted messages go to this
	// topic (through Options.DeadLetter) before their offset is released;
	// empty = the drop policy.
	DeadLetterTopic string
	// PressureTraffic delivers messages flagged isPressureTraffic=true; when
	// false (the default, as UpstreamTopic.pressureTraffic) they finish as
	// filtered without being handed out.
	PressureTraffic bool
}

// SettingsFor derives the engine settings of a subscription unit.
func SettingsFor(u *config.UpstreamTopic) Settings {
	s := Settings{
		Timeout:          time.Duration(u.Timeout) * time.Millisecond,
		MaxRetry:         u.MaxRetry,
		RetryIntervals:   slices.Clone(u.RetryIntervals),
		Concurrency:      u.Concurrency,
		MaxConsumeLag:    u.EffectiveMaxConsumeLag(),
		MaxPullBatchSize: u.MaxPullBatchSize,
		MaxTps:           u.MaxTps,
		TotalMaxTps:      u.TotalMaxTps,
		Order:            u.OrderKind(),
		PressureTraffic:  u.PressureTraffic,
	}
	if u.DLQEnabled() {
		s.DeadLetterTopic = u.DeadLetterTopic
	}
	return s
}

// SettingsForUnits returns the settings of every high-level pull
// subscription (PullServer without LowLevel) of the given served units of
// one group, ready for Engine.Configure.
func SettingsForUnits(units ...*config.UnitView) map[UnitTopic]Settings {
	out := map[UnitTopic]Settings{}
	for _, u := range units {
		if u == nil {
			continue
		}
		for _, sub := range u.Subscriptions {
			if sub.Config == nil || !sub.Config.IsHighLevelPull() {
				continue
			}
			s := SettingsFor(sub.Config)
			s.MaxConsumeLag = sub.MaxConsumeLag
			out[UnitTopic{Cluster: u.Key.Cluster, Topic: sub.Topic}] = s
		}
	}
	return out
}

// DefaultSettings returns the settings of a subscription with every key
// at its default (used for a claimed topic that Configure never named).
func DefaultSettings() Settings {
	return Settings{
		Timeout:          config.DefaultTimeout * time.Millisecond,
		MaxRetry:         config.DefaultMaxRetry,
		RetryIntervals:   slices.Clone(config.DefaultRetryIntervals),
		Concurrency:      config.DefaultConcurrency,
		MaxConsumeLag:    config.DefaultMaxConsumeLag,
		MaxPullBatchSize: config.DefaultMaxPullBatchSize,
	}
}

// normalized fills defaults and resolves derived values.
func (s Settings) normalized() Settings {
	if s.Timeout <= 0 {
		s.Timeout = config.DefaultTimeout * time.Millisecond
	}
	if s.MaxRetry < -1 {
		s.MaxRetry = -1
	}
	if s.RetryIntervals == nil {
		s.RetryIntervals = slices.Clone(config.DefaultRetryIntervals)
	} else {
		s.RetryIntervals = slices.Clone(s.RetryIntervals)
	}
	if s.Concurrency <= 0 {
		s.Concurrency = config.DefaultConcurrency
	}
	if s.MaxConsumeLag == 0 {
		s.MaxConsumeLag = int64(s.Concurrency) * 3
	}
	if s.MaxPullBatchSize <= 0 {
		s.MaxPullBatchSize = config.DefaultMaxPullBatchSize
	}
	return s
}

// nextRetryDelay advances a job's retryIntervals index (which starts at
// -1) and returns the delay before the next delivery, or a negative value
// to give up (behaviour.md §2.6).
func nextRetryDelay(intervals []int, idx *int) time.Duration {
	*idx++
	if *idx >= len(intervals) {
		return -1
	}
	v := intervals[*idx]
	if v < 0 { // -1: repeat the previous element forever
		*idx--
		if *idx < 0 {
			return -1
		}
		v = intervals[*idx]
		if v < 0 {
			return -1
		}
	}
	return time.Duration(v) * time.Millisecond
}
