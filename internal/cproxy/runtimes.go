package cproxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/cproxy/engine"
	"github.com/ddmq-go/carrera/internal/mq"
	"github.com/ddmq-go/carrera/internal/mq/rocketmq"
)

// Backend builds the broker-side parts of a unit.
type Backend interface {
	// GroupConsumer returns a consumer of the unit's topics in the group.
	GroupConsumer(u *config.UnitView) (mq.GroupConsumer, error)
	// Producer returns the dead-letter producer of a cluster (nil if none).
	Producer(cluster string) mq.Producer
	// Partitions returns a topic's partition count on a cluster.
	Partitions(ctx context.Context, cluster, topic string) (int, error)
	// QID names a partition of a cluster for clients (wire-contract.md §5).
	QID(cluster string, partition int32) string
	// SendBack returns an exhausted message to the broker's own retry path
	// of group when the cluster has one (RocketMQ: handled = true, err =
	// the outcome); handled = false sends it to the dead-letter topic.
	SendBack(ctx context.Context, cluster, group string, d *mq.Delivery) (handled bool, err error)
}

// groupRuntime is one running high-level pull group: one engine, one broker
// consumer goroutine per served unit.
type groupRuntime struct {
	name   string
	eng    *engine.Engine
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (g *groupRuntime) Pull(ctx context.Context, topic string, max int, linger time.Duration) (Batch, error) {
	b, err := g.eng.Pull(ctx, topic, max, linger)
	return Batch{Topic: b.Topic, QID: b.QID, Messages: b.Messages}, err
}

func (g *groupRuntime) Submit(topic, qid string, success, fail []int64) {
	g.eng.Submit(topic, qid, success, fail)
}

// stop cancels the unit consumers (each flushes its commits and leaves the
// group), waits for them, then closes the engine.
func (g *groupRuntime) stop() {
	g.cancel()
	g.wg.Wait()
	g.eng.Close()
}

// Manager owns the group runtimes: pull groups start on their first pull and
// stop after IdleTimeout without a pull; configuration changes restart only
// the groups whose units changed (rate-only changes apply live).
type Manager struct {
	log         *zap.Logger
	reg         prometheus.Registerer
	backend     Backend
	idleTimeout time.Duration

	snap atomic.Pointer[config.CProxySnapshot]

	mu     sync.Mutex
	groups map[string]*groupRuntime
	closed bool
}

// NewManager returns a manager serving snap.
func NewManager(log *zap.Logger, reg prometheus.Registerer, b Backend, snap *config.CProxySnapshot, idle time.Duration) *Manager {
	m := &Manager{log: log, reg: reg, backend: b, idleTimeout: idle, groups: map[string]*groupRuntime{}}
	m.snap.Store(snap)
	return m
}

// Snapshot returns the configuration in force.
func (m *Manager) Snapshot() *config.CProxySnapshot { return m.snap.Load() }

// ForPull implements Runtimes.
func (m *Manager) ForPull(group string) (Runtime, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g, ok := m.groups[group]; ok {
		return g, true
	}
	if m.closed {
		return nil, false
	}
	snap := m.snap.Load()
	gv, ok := snap.Group(group)
	if !ok || gv.Kind != config.KindPull || len(snap.UnitsOf(group)) == 0 {
		return nil, false
	}
	g := m.startLocked(snap, group)
	return g, g != nil
}

// ForSubmit implements Runtimes.
func (m *Manager) ForSubmit(group string) (Runtime, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.groups[group]
	return g, ok
}

// settingsOf derives the engine settings of a group's units. A RocketMQ
// clustering unit also consumes the group's retry topic %RETRY%<group>
// (messages sent back by the exhausted-message policy); its messages are
// handled with the settings of the unit's first subscription.
func settingsOf(snap *config.CProxySnapshot, group string) map[engine.UnitTopic]engine.Settings {
	out := map[engine.UnitTopic]engine.Settings{}
	for _, u := range snap.UnitsOf(group) {
		for _, s := range u.Subscriptions {
			out[engine.UnitTopic{Cluster: u.Key.Cluster, Topic: s.Topic}] = engine.SettingsFor(s.Config)
		}
		if u.ClusterKind == config.ClusterRocketMQ && u.RocketMQ != nil && !u.Broadcasting() && len(u.Subscriptions) > 0 {
			out[engine.UnitTopic{Cluster: u.Key.Cluster, Topic: rocketmq.RetryTopic(group)}] = engine.SettingsFor(u.Subscriptions[0].Config)
		}
	}
	return out
}

func (m *Manager) startLocked(snap *config.CProxySnapshot, group string) *groupRuntime {
	units := snap.UnitsOf(group)
	eng := engine.New(engine.Options{
		Group: group, Log: m.log.Named("engine"), Registerer: m.reg,
		DeadLetterOn: func(ctx context.Context, cluster, topic string, d *mq.Delivery) error {
			// RocketMQ: back to the broker's retry topic instead of a
			// dead-letter topic (behaviour.md §2.4, §4 #7).
			if handled, err := m.backend.SendBack(ctx, cluster, group, d); handled {
				return err
			}
			return m.deadLetter(ctx, cluster, topic, d)
		},
		Partitions: m.backend.Partitions,
		QID:        func(cluster, _ string, p int32) string { return m.backend.QID(cluster, p) },
		MaxRecvMsgsLength: func() int64 {
			if ts := snap.Node.ThriftServer; ts != nil && ts.MaxRecvMsgsLength > 0 {
				return int64(ts.MaxRecvMsgsLength)
			}
			return 0
		}(),
	})
	eng.Configure(settingsOf(snap, group))
	ctx, cancel := context.WithCancel(context.Background())
	g := &groupRuntime{name: group, eng: eng, cancel: cancel}
	started := 0
	for _, u := range units {
		c, err := m.backend.GroupConsumer(u)
		if err != nil {
			m.log.Error("cannot create group consumer", zap.String("unit", u.Key.String()), zap.Error(err))
			continue
		}
		started++
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := c.Run(ctx, eng.Handler(u.Key.Cluster)); err != nil && !errors.Is(err, context.Canceled) {
				m.log.Error("group consumer stopped", zap.String("unit", u.Key.String()), zap.Error(err))
			}
		}()
	}
	if started == 0 {
		cancel()
		eng.Close()
		return nil
	}
	m.log.Info("group started", zap.String("group", group), zap.Int("units", started))
	m.groups[group] = g
	return g
}

// deadLetter publishes an exhausted message to the dead-letter topic on
// the subscription's cluster, keeping key, tags, body and properties and
// recording the original topic.
func (m *Manager) deadLetter(ctx context.Context, cluster, topic string, d *mq.Delivery) error {
	p := m.backend.Producer(cluster)
	if p == nil {
		return errors.New("cproxy: no dead-letter producer for cluster " + cluster)
	}
	target, err := p.Resolve(ctx, topic, mq.Selector{PartitionID: -2})
	if err != nil {
		return err
	}
	props := make(map[string]string, len(d.Properties)+1)
	for k, v := range d.Properties {
		props[k] = v
	}
	props["carrera_dlq_origin_topic"] = d.Topic
	return mq.ProduceSync(ctx, p, &mq.Record{Topic: topic, Target: target, Key: d.Key, Tags: d.Tags, Body: d.Body, Properties: props})
}

// Apply installs a new snapshot: removed or changed groups stop (pull
// groups restart on their next pull), rate-only changes apply live.
func (m *Manager) Apply(old, next *config.CProxySnapshot) {
	diff := config.DiffCProxySnapshots(old, next)
	m.snap.Store(next)
	m.mu.Lock()
	var stop []*groupRuntime
	restart := map[string]bool{}
	for _, k := range append(append(append([]config.UnitKey{}, diff.Added...), diff.Removed...), diff.Changed...) {
		restart[k.Group] = true
	}
	for _, g := range diff.GroupsRemoved {
		restart[g] = true
	}
	for name, g := range m.groups {
		if restart[name] {
			stop = append(stop, g)
			delete(m.groups, name)
			continue
		}
		g.eng.Configure(settingsOf(next, name))
	}
	m.mu.Unlock()
	for _, g := range stop {
		m.log.Info("configuration changed: restarting group", zap.String("group", g.name))
		g.stop()
	}
}

// RunIdle stops pull groups that had no pull for the idle timeout, checking
// every interval, until ctx is done.
func (m *Manager) RunIdle(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			m.mu.Lock()
			var stop []*groupRuntime
			for name, g := range m.groups {
				if now.Sub(g.eng.LastPull()) >= m.idleTimeout {
					stop = append(stop, g)
					delete(m.groups, name)
				}
			}
			m.mu.Unlock()
			for _, g := range stop {
				m.log.Info("stopping idle pull group", zap.String("group", g.name))
				g.stop()
			}
		}
	}
}

// Close stops every group (each commits what is committable). Idempotent.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	groups := m.groups
	m.groups = map[string]*groupRuntime{}
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Add(1)
		go func() { defer wg.Done(); g.stop() }()
	}
	wg.Wait()
}

// RunningGroupTopics lists (group, topic) of every running group, for the
// lag gauges.
func (m *Manager) RunningGroupTopics() []GroupTopic {
	snap := m.snap.Load()
	m.mu.Lock()
	names := make([]string, 0, len(m.groups))
	for name := range m.groups {
		names = append(names, name)
	}
	m.mu.Unlock()
	var out []GroupTopic
	for _, g := range names {
		for _, u := range snap.UnitsOf(g) {
			for _, t := range u.Topics() {
				out = append(out, GroupTopic{Group: g, Topic: t})
			}
		}
	}
	return out
}
