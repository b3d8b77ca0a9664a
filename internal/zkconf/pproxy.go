package zkconf

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
	"github.com/ddmq-go/carrera/internal/promx"
)

// Node path prefixes inside the chroot (zookeeper-layout.md §2).
const (
	PProxyPathPrefix = "/pproxy/"
	TopicPathPrefix  = "/topic/"
)

// Reload failure reasons, the values of the "reason" label of
// carrera_config_reload_failures_total.
const (
	ReasonInvalidNode     = "invalid_node"     // /pproxy/<I> does not parse or validate
	ReasonInvalidTopic    = "invalid_topic"    // a /topic/<t> does not parse or validate
	ReasonInvalidSnapshot = "invalid_snapshot" // the assembled snapshot is rejected
)

// PProxySourceConfig configures a PProxySource.
type PProxySourceConfig struct {
	// Watcher holds the ZooKeeper and cache settings (see
	// WatcherConfigFromBootstrap). Its Logger defaults to Logger.
	Watcher Config
	// Instance is the pproxy's instance name "<host>:<port>"
	// (config.Bootstrap.InstanceName).
	Instance string
	// Static are the bootstrap file's static topics (lowest priority).
	Static []*config.TopicConfig
	// Logger; nil = no logging.
	Logger *zap.Logger
	// Registerer receives the metrics; nil = not registered. Registering
	// on a registry that already has them reuses the existing collectors.
	Registerer prometheus.Registerer
}

// PProxySource is the pproxy's configuration: /pproxy/<instance> plus the
// /topic/<t> node of every white-listed or static topic, assembled into an
// immutable config.PProxySnapshot (zookeeper-layout.md §4.5, §7.1).
//
// On every change it rebuilds a complete snapshot, swaps it atomically and
// calls the subscribers with the old and new snapshot. Invalid data is
// logged (warn) and counted in carrera_config_reload_failures_total{reason}
// and the previous snapshot stays; a deleted node is only logged. When the
// white list changes, topic watches are added and removed.
type PProxySource struct {
	sourceBase[config.PProxySnapshot]

	instance string
	nodePath string
	static   []*config.TopicConfig

	// Owned by Start, then by the watcher loop (the Handler).
	node   *config.PProxyConfig
	topics children[config.TopicConfig] // valid ZooKeeper topics by node name, and their watches
}

// NewPProxySource validates cfg and returns a source; it starts nothing.
func NewPProxySource(cfg PProxySourceConfig) (*PProxySource, error) {
	if cfg.Instance == "" {
		return nil, errors.New("zkconf: empty pproxy instance name")
	}
	if err := validPath(PProxyPathPrefix + cfg.Instance); err != nil {
		return nil, fmt.Errorf("zkconf: instance name %q: %w", cfg.Instance, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Watcher.Logger == nil {
		cfg.Watcher.Logger = cfg.Logger
	}
	metrics, err := newSourceMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &PProxySource{
		instance:   cfg.Instance,
		nodePath:   PProxyPathPrefix + cfg.Instance,
		static:     cfg.Static,
		sourceBase: sourceBase[config.PProxySnapshot]{log: cfg.Logger, metrics: metrics},
	}
	s.w, err = NewWatcher(cfg.Watcher, s.onEvent)
	if err != nil {
		return nil, err
	}
	s.topics = children[config.TopicConfig]{w: s.w, log: s.log, prefix: TopicPathPrefix, kind: "topic",
		reason: ReasonInvalidTopic, parse: config.ParseTopicConfig, check: s.checkTopic, fail: s.fail,
		cur: map[string]*config.TopicConfig{}, watched: map[string]bool{}}
	return s, nil
}

// Start connects (waiting at most the watcher's StartTimeout for a
// session), reads /pproxy/<instance> — from ZooKeeper, or from the cache
// when ZooKeeper is unreachable — and the topics, builds the first snapshot
// and sets the watches. The node must exist and be valid, else Start
// returns an error (and has released everything). Subscribers are not
// called for the first snapshot. Call Close in every case.
func (s *PProxySource) Start(ctx context.Context) (err error) {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("zkconf: pproxy source already started")
	}
	defer func() {
		if err != nil {
			_ = s.w.Close()
		}
	}()
	ev, err := startOwnNode(ctx, s.w, s.log, "pproxy", s.nodePath)
	if err != nil {
		return err
	}
	node, err := config.ParsePProxyConfig(ev.Data)
	if err != nil {
		return fmt.Errorf("zkconf: pproxy node %s%s: %w", s.w.Chroot(), s.nodePath, err)
	}
	s.checkNode(node)

	names := config.WatchTopicNames(node, s.static)
	topics, added := s.topics.plan(names)
	snap, err := config.BuildPProxySnapshot(s.instance, node, topics, s.static)
	if err != nil {
		return fmt.Errorf("zkconf: %w", err)
	}
	s.node = node
	s.cur.Store(snap)
	s.log.Info("pproxy configuration loaded", zap.String("instance", s.instance),
		zap.Int32("version", ev.Version), zap.Bool("fromCache", ev.FromCache),
		zap.Int("servedTopics", len(snap.Topics)), zap.Int("watchedTopics", len(names)))

	// Watches last: the handler may run as soon as one is set.
	if err := s.w.Watch(s.nodePath); err != nil {
		return err
	}
	s.topics.accept(names, added, topics)
	return nil
}

// onEvent is the watcher Handler.
func (s *PProxySource) onEvent(ev Event) {
	switch {
	case ev.Path == s.nodePath:
		s.onNode(ev)
	case strings.HasPrefix(ev.Path, TopicPathPrefix):
		s.onTopic(strings.TrimPrefix(ev.Path, TopicPathPrefix), ev)
	}
}

func (s *PProxySource) onNode(ev Event) {
	if !ev.Exists {
		s.log.Warn("pproxy node deleted or missing; keeping the last configuration", zap.String("path", ev.Path))
		return
	}
	node, err := config.ParsePProxyConfig(ev.Data)
	if err != nil {
		s.fail(ReasonInvalidNode, ev, err)
		return
	}
	s.checkNode(node)

	// White-list diff: read the added topics now so that the new snapshot
	// is complete; watches change only if the snapshot is accepted.
	names := config.WatchTopicNames(node, s.static)
	topics, added := s.topics.plan(names)
	snap, err := config.BuildPProxySnapshot(s.instance, node, topics, s.static)
	if err != nil {
		s.fail(ReasonInvalidSnapshot, ev, err)
		return
	}
	s.topics.accept(names, added, topics)
	s.node = node
	s.swap(snap, ev)
}

func (s *PProxySource) onTopic(name string, ev Event) {
	if !s.topics.watched[name] {
		return // removed from the white list meanwhile
	}
	if !ev.Exists {
		s.log.Warn("topic node deleted or missing; keeping the last topic state", zap.String("path", ev.Path))
		return
	}
	tc, ok := s.topics.parseEvent(name, ev)
	if !ok {
		return
	}
	topics := s.topics.with(name, tc)
	snap, err := config.BuildPProxySnapshot(s.instance, s.node, topics, s.static)
	if err != nil {
		s.fail(ReasonInvalidSnapshot, ev, err)
		return
	}
	s.topics.cur = topics
	s.swap(snap, ev)
}

// swap installs a new snapshot and notifies the subscribers.
func (s *PProxySource) swap(snap *config.PProxySnapshot, ev Event) {
	s.log.Info("pproxy configuration reloaded", zap.String("path", ev.Path),
		zap.Int32("version", ev.Version), zap.Bool("fromCache", ev.FromCache),
		zap.Int("servedTopics", len(snap.Topics)))
	s.swapIn(snap)
}

// checkNode logs non-fatal remarks about a valid node.
func (s *PProxySource) checkNode(node *config.PProxyConfig) {
	if node.Instance != s.instance {
		s.log.Warn("pproxy node's instance differs from its node name",
			zap.String("node", s.nodePath), zap.String("instance", node.Instance))
	}
	for _, w := range node.Warnings() {
		s.log.Warn("pproxy node: "+w, zap.String("node", s.nodePath))
	}
}

func (s *PProxySource) checkTopic(name string, tc *config.TopicConfig) {
	if tc.Topic != name {
		s.log.Warn("topic node's topic differs from its node name; the node name is used",
			zap.String("node", TopicPathPrefix+name), zap.String("topic", tc.Topic))
	}
}

// sourceMetrics are the reload counters.
type sourceMetrics struct {
	reloads  prometheus.Counter
	failures *prometheus.CounterVec
}

func newSourceMetrics(reg prometheus.Registerer) (*sourceMetrics, error) {
	m := &sourceMetrics{
		reloads: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "carrera_config_reloads_total",
			Help: "Configuration snapshots installed after a ZooKeeper (or cache) change.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "carrera_config_reload_failures_total",
			Help: "Configuration changes rejected (invalid data); the previous snapshot stayed in force.",
		}, []string{"reason"}),
	}
	var err error
	if m.reloads, err = promx.Register(reg, m.reloads); err != nil {
		return nil, fmt.Errorf("zkconf: register metrics: %w", err)
	}
	if m.failures, err = promx.Register(reg, m.failures); err != nil {
		return nil, fmt.Errorf("zkconf: register metrics: %w", err)
	}
	for _, r := range []string{ReasonInvalidNode, ReasonInvalidTopic, ReasonInvalidSnapshot} {
		m.failures.WithLabelValues(r) // export zeros
	}
	return m, nil
}
