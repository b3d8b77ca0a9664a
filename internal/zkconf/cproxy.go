package zkconf

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/ddmq-go/carrera/internal/config"
)

// Node path prefixes of the cproxy (zookeeper-layout.md §2).
const (
	CProxyPathPrefix = "/cproxy/"
	GroupPathPrefix  = "/group/"
)

// ReasonInvalidGroup is the "reason" label of
// carrera_config_reload_failures_total for a /group/<g> that does not parse
// or validate.
const ReasonInvalidGroup = "invalid_group"

// CProxySourceConfig configures a CProxySource.
type CProxySourceConfig struct {
	// Watcher holds the ZooKeeper and cache settings (see
	// WatcherConfigFromBootstrap). Its Logger defaults to Logger.
	Watcher Config
	// Instance is the cproxy's instance name "<host>:<port>"
	// (config.Bootstrap.InstanceName).
	Instance string
	// OnNodeDeleted is called when /cproxy/<instance> is observed deleted
	// after Start: DDMQ's cproxy then shuts down (zookeeper-layout.md §7.2;
	// an operator's way to drain an instance). It runs on the watcher
	// goroutine, once per observed deletion; it must not block and must not
	// call Close (typically it cancels the daemon's context). nil = the
	// deletion is only logged.
	OnNodeDeleted func()
	// Logger; nil = no logging.
	Logger *zap.Logger
	// Registerer receives the metrics; nil = not registered. The counters
	// are shared with PProxySource (same names); registering on a registry
	// that already has them reuses the existing collectors.
	Registerer prometheus.Registerer
}

// CProxySource is the cproxy's configuration: /cproxy/<instance> plus the
// /group/<g> node of every white-listed group, assembled into an immutable
// config.CProxySnapshot (zookeeper-layout.md §5.11, §7.2).
//
// On every change it rebuilds a complete snapshot, swaps it atomically and
// calls the subscribers with the old and new snapshot (use
// config.DiffCProxySnapshots to find the G@B consumers to start, stop or
// restart). Invalid data is logged (warn) and counted in
// carrera_config_reload_failures_total{reason} and the previous snapshot
// stays. When the group white list changes, group watches are added and
// removed; a removed or deleted group disappears from the snapshot. A
// deleted /cproxy node calls OnNodeDeleted and keeps the snapshot.
type CProxySource struct {
	sourceBase[config.CProxySnapshot]

	instance      string
	nodePath      string
	onNodeDeleted func()

	// Owned by Start, then by the watcher loop (the Handler).
	node   *config.CProxyConfig
	groups children[config.GroupConfig] // valid groups by node name, and their watches
}

// NewCProxySource validates cfg and returns a source; it starts nothing.
func NewCProxySource(cfg CProxySourceConfig) (*CProxySource, error) {
	if cfg.Instance == "" {
		return nil, errors.New("zkconf: empty cproxy instance name")
	}
	if err := validPath(CProxyPathPrefix + cfg.Instance); err != nil {
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
	metrics.failures.WithLabelValues(ReasonInvalidGroup) // export a zero
	s := &CProxySource{
		instance:      cfg.Instance,
		nodePath:      CProxyPathPrefix + cfg.Instance,
		sourceBase:    sourceBase[config.CProxySnapshot]{log: cfg.Logger, metrics: metrics},
		onNodeDeleted: cfg.OnNodeDeleted,
	}
	s.w, err = NewWatcher(cfg.Watcher, s.onEvent)
	if err != nil {
		return nil, err
	}
	s.groups = children[config.GroupConfig]{w: s.w, log: s.log, prefix: GroupPathPrefix, kind: "group",
		reason: ReasonInvalidGroup, parse: config.ParseGroupConfig, check: s.checkGroup, fail: s.fail,
		cur: map[string]*config.GroupConfig{}, watched: map[string]bool{}}
	return s, nil
}

// Start connects (waiting at most the watcher's StartTimeout for a
// session), reads /cproxy/<instance> — from ZooKeeper, or from the cache
// when ZooKeeper is unreachable — and the white-listed groups, builds the
// first snapshot and sets the watches. The node must exist and be valid,
// else Start returns an error (and has released everything). A missing or
// invalid group is logged and left out. Subscribers are not called for the
// first snapshot. Call Close in every case.
func (s *CProxySource) Start(ctx context.Context) (err error) {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("zkconf: cproxy source already started")
	}
	defer func() {
		if err != nil {
			_ = s.w.Close()
		}
	}()
	ev, err := startOwnNode(ctx, s.w, s.log, "cproxy", s.nodePath)
	if err != nil {
		return err
	}
	node, err := config.ParseCProxyConfig(ev.Data)
	if err != nil {
		return fmt.Errorf("zkconf: cproxy node %s%s: %w", s.w.Chroot(), s.nodePath, err)
	}
	s.checkNode(node)

	names := config.WatchGroupNames(node)
	groups, added := s.groups.plan(names)
	snap, err := config.BuildCProxySnapshot(s.instance, node, groups)
	if err != nil {
		return fmt.Errorf("zkconf: %w", err)
	}
	s.node = node
	s.cur.Store(snap)
	s.log.Info("cproxy configuration loaded", zap.String("instance", s.instance),
		zap.Int32("version", ev.Version), zap.Bool("fromCache", ev.FromCache),
		zap.Int("servedUnits", len(snap.Units)), zap.Int("loadedGroups", len(snap.Groups)),
		zap.Int("watchedGroups", len(names)))
	s.checkSnapshot(snap)

	// Watches last: the handler may run as soon as one is set.
	if err := s.w.Watch(s.nodePath); err != nil {
		return err
	}
	s.groups.accept(names, added, groups)
	return nil
}

// onEvent is the watcher Handler.
func (s *CProxySource) onEvent(ev Event) {
	switch {
	case ev.Path == s.nodePath:
		s.onNode(ev)
	case strings.HasPrefix(ev.Path, GroupPathPrefix):
		s.onGroup(strings.TrimPrefix(ev.Path, GroupPathPrefix), ev)
	}
}

func (s *CProxySource) onNode(ev Event) {
	if !ev.Exists {
		s.log.Error("cproxy node deleted; the cproxy shuts down (zookeeper-layout.md §7.2)",
			zap.String("path", ev.Path), zap.Bool("shutdownCallback", s.onNodeDeleted != nil))
		if s.onNodeDeleted != nil {
			s.onNodeDeleted()
		}
		return
	}
	node, err := config.ParseCProxyConfig(ev.Data)
	if err != nil {
		s.fail(ReasonInvalidNode, ev, err)
		return
	}
	s.checkNode(node)

	// White-list diff: read the added groups now so that the new snapshot
	// is complete; watches change only if the snapshot is accepted.
	names := config.WatchGroupNames(node)
	groups, added := s.groups.plan(names)
	snap, err := config.BuildCProxySnapshot(s.instance, node, groups)
	if err != nil {
		s.fail(ReasonInvalidSnapshot, ev, err)
		return
	}
	s.groups.accept(names, added, groups)
	s.node = node
	s.swap(snap, ev)
}

func (s *CProxySource) onGroup(name string, ev Event) {
	if !s.groups.watched[name] {
		return // removed from the white list meanwhile
	}
	var gc *config.GroupConfig
	if ev.Exists {
		var ok bool
		if gc, ok = s.groups.parseEvent(name, ev); !ok {
			return
		}
	} else {
		if _, had := s.groups.cur[name]; !had {
			s.log.Info("group node does not exist; the group is not served until it is created", zap.String("path", ev.Path))
			return
		}
		s.log.Warn("group node deleted; its consumers stop", zap.String("path", ev.Path))
	}
	groups := s.groups.with(name, gc)
	snap, err := config.BuildCProxySnapshot(s.instance, s.node, groups)
	if err != nil {
		s.fail(ReasonInvalidSnapshot, ev, err)
		return
	}
	s.groups.cur = groups
	s.swap(snap, ev)
}

// swap installs a new snapshot and notifies the subscribers.
func (s *CProxySource) swap(snap *config.CProxySnapshot, ev Event) {
	s.log.Info("cproxy configuration reloaded", zap.String("path", ev.Path),
		zap.Int32("version", ev.Version), zap.Bool("fromCache", ev.FromCache),
		zap.Int("servedUnits", len(snap.Units)), zap.Int("loadedGroups", len(snap.Groups)))
	s.checkSnapshot(snap)
	s.swapIn(snap)
}

// checkNode logs non-fatal remarks about a valid node.
func (s *CProxySource) checkNode(node *config.CProxyConfig) {
	if node.Instance != s.instance {
		s.log.Warn("cproxy node's instance differs from its node name",
			zap.String("node", s.nodePath), zap.String("instance", node.Instance))
	}
	for _, w := range node.Warnings() {
		s.log.Warn("cproxy node: "+w, zap.String("node", s.nodePath))
	}
}

func (s *CProxySource) checkGroup(name string, gc *config.GroupConfig) {
	path := GroupPathPrefix + name
	if gc.Group != name {
		s.log.Warn("group node's group differs from its node name; the node name is used",
			zap.String("node", path), zap.String("group", gc.Group))
	}
	for _, w := range gc.Warnings() {
		s.log.Warn("group node: "+w, zap.String("node", path))
	}
}

func (s *CProxySource) checkSnapshot(snap *config.CProxySnapshot) {
	for _, k := range snap.Unconfigured {
		s.log.Warn("unit bound to this cproxy but its broker cluster has no rocketmqConfigs/kafkaConfigs entry; not served",
			zap.String("unit", k.String()))
	}
}
