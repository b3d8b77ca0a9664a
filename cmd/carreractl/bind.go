package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"
)

// binding is one "serve topic T on cluster C from pproxy I" request.
type binding struct {
	Topic        string
	Cluster      string // brokerCluster of the unit
	ProxyCluster string // key of the unit's proxies map
	Instance     string // ip:port
	// MaxTps > 0 sets the unit's per-pproxy maxTps (and totalMaxTps of a
	// newly created unit); 0 leaves the rate alone.
	MaxTps int
}

// The functions below are pure: JSON node data in, JSON node data out, plus
// whether anything changed. They edit only the keys they are about and keep
// everything else byte-for-byte (see object).

// bindTopicJSON lists b.Instance in proxies[b.ProxyCluster] of the unit of
// b.Cluster in a /topic/<T> node, appending the unit when the topic has none
// for that cluster.
func bindTopicJSON(data []byte, b binding) ([]byte, bool, error) {
	o, units, err := parseTopicUnits(data)
	if err != nil {
		return nil, false, err
	}
	changed, found := false, false
	for i, u := range units {
		var cluster string
		if err := u.decode("brokerCluster", &cluster); err != nil {
			return nil, false, fmt.Errorf("topicUnits[%d]: %w", i, err)
		}
		if cluster != b.Cluster {
			continue
		}
		found = true
		added, err := addProxy(u, b.ProxyCluster, b.Instance)
		if err != nil {
			return nil, false, fmt.Errorf("topicUnits[%d]: %w", i, err)
		}
		changed = changed || added
		if b.MaxTps > 0 {
			set, err := setNumber(u, "maxTps", b.MaxTps)
			if err != nil {
				return nil, false, fmt.Errorf("topicUnits[%d]: %w", i, err)
			}
			changed = changed || set
		}
		break
	}
	if !found {
		u := &object{}
		proxies := &object{exactKeys: true}
		if err := proxies.set(b.ProxyCluster, []string{b.Instance}); err != nil {
			return nil, false, err
		}
		if err := u.set("brokerCluster", b.Cluster); err != nil {
			return nil, false, err
		}
		if err := u.set("proxies", proxies); err != nil {
			return nil, false, err
		}
		if b.MaxTps > 0 {
			if err := u.set("totalMaxTps", b.MaxTps); err != nil {
				return nil, false, err
			}
			if err := u.set("maxTps", b.MaxTps); err != nil {
				return nil, false, err
			}
		}
		units = append(units, u)
		changed = true
	}
	if !changed {
		return data, false, nil
	}
	return encodeTopicUnits(o, units)
}

// unbindTopicJSON removes instance from every proxies list of every unit of
// a /topic/<T> node. A proxy cluster whose list becomes empty is removed;
// units are kept (their rates and cluster stay configured).
func unbindTopicJSON(data []byte, instance string) ([]byte, bool, error) {
	o, units, err := parseTopicUnits(data)
	if err != nil {
		return nil, false, err
	}
	changed := false
	for i, u := range units {
		proxies, err := u.object("proxies")
		if err != nil {
			return nil, false, fmt.Errorf("topicUnits[%d]: %w", i, err)
		}
		proxies.exactKeys = true
		unitChanged := false
		for _, pc := range proxies.keys() {
			var list []string
			if err := proxies.decode(pc, &list); err != nil {
				return nil, false, fmt.Errorf("topicUnits[%d].proxies: %w", i, err)
			}
			kept := slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == instance })
			if len(kept) == len(list) {
				continue
			}
			unitChanged = true
			if len(kept) == 0 {
				proxies.delete(pc)
			} else if err := proxies.set(pc, kept); err != nil {
				return nil, false, err
			}
		}
		if unitChanged {
			if err := u.set("proxies", proxies); err != nil {
				return nil, false, err
			}
			changed = true
		}
	}
	if !changed {
		return data, false, nil
	}
	return encodeTopicUnits(o, units)
}

// addWhitelistJSON adds topic to the "topics" white list of a /pproxy/<I>
// node.
func addWhitelistJSON(data []byte, topic string) ([]byte, bool, error) {
	return editWhitelist(data, func(list []string) ([]string, bool) {
		if slices.Contains(list, topic) {
			return list, false
		}
		return append(list, topic), true
	})
}

// removeWhitelistJSON removes topic from the "topics" white list of a
// /pproxy/<I> node.
func removeWhitelistJSON(data []byte, topic string) ([]byte, bool, error) {
	return editWhitelist(data, func(list []string) ([]string, bool) {
		kept := slices.DeleteFunc(slices.Clone(list), func(s string) bool { return s == topic })
		return kept, len(kept) != len(list)
	})
}

func editWhitelist(data []byte, edit func([]string) ([]string, bool)) ([]byte, bool, error) {
	o, err := parseObject(data)
	if err != nil {
		return nil, false, err
	}
	list := []string{}
	if err := o.decode("topics", &list); err != nil {
		return nil, false, err
	}
	list, changed := edit(list)
	if !changed {
		return data, false, nil
	}
	if list == nil {
		list = []string{}
	}
	if err := o.set("topics", list); err != nil {
		return nil, false, err
	}
	out, err := o.MarshalJSON()
	return out, err == nil, err
}

// pproxyInfo is what bind needs to know about a /pproxy/<I> node.
type pproxyInfo struct {
	ProxyCluster string
	// Clusters are the keys of kafkaConfigurationMap and
	// rocketmqConfigurationMap: the clusters this pproxy has producers for.
	Clusters []string
}

func parsePProxyInfo(data []byte) (pproxyInfo, error) {
	var info pproxyInfo
	o, err := parseObject(data)
	if err != nil {
		return info, err
	}
	if err := o.decode("proxyCluster", &info.ProxyCluster); err != nil {
		return info, err
	}
	cc, err := o.object("carreraConfiguration")
	if err != nil {
		return info, err
	}
	for _, key := range []string{"kafkaConfigurationMap", "rocketmqConfigurationMap"} {
		m, err := cc.object(key)
		if err != nil {
			return info, err
		}
		info.Clusters = append(info.Clusters, m.keys()...)
	}
	return info, nil
}

func parseTopicUnits(data []byte) (*object, []*object, error) {
	o, err := parseObject(data)
	if err != nil {
		return nil, nil, err
	}
	var raws []json.RawMessage
	if err := o.decode("topicUnits", &raws); err != nil {
		return nil, nil, err
	}
	units := make([]*object, len(raws))
	for i, raw := range raws {
		if units[i], err = parseObject(raw); err != nil {
			return nil, nil, fmt.Errorf("topicUnits[%d]: %w", i, err)
		}
	}
	return o, units, nil
}

func encodeTopicUnits(o *object, units []*object) ([]byte, bool, error) {
	if err := o.set("topicUnits", units); err != nil {
		return nil, false, err
	}
	out, err := o.MarshalJSON()
	return out, err == nil, err
}

// addProxy lists instance under proxies[proxyCluster] of unit u.
func addProxy(u *object, proxyCluster, instance string) (bool, error) {
	proxies, err := u.object("proxies")
	if err != nil {
		return false, err
	}
	proxies.exactKeys = true
	var list []string
	if err := proxies.decode(proxyCluster, &list); err != nil {
		return false, fmt.Errorf("proxies: %w", err)
	}
	if slices.Contains(list, instance) {
		return false, nil
	}
	if err := proxies.set(proxyCluster, append(list, instance)); err != nil {
		return false, err
	}
	return true, u.set("proxies", proxies)
}

// setNumber sets key to n unless it already holds that value (in any
// spelling, e.g. 500.0).
func setNumber(o *object, key string, n int) (bool, error) {
	var cur *float64
	if err := o.decode(key, &cur); err != nil {
		return false, err
	}
	if cur != nil && *cur == float64(n) {
		return false, nil
	}
	return true, o.set(key, n)
}

// checkInstance validates an "ip:port" instance name.
func checkInstance(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("bad instance %q: want ip:port", s)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("bad instance %q: bad port", s)
	}
	return nil
}

// checkName validates a node name (a topic name, a cluster name).
func checkName(what, s string) error {
	if s == "" || strings.ContainsAny(s, "/ \t\n") {
		return fmt.Errorf("bad %s %q", what, s)
	}
	return nil
}

func cmdBind(e *env, args []string) error {
	fs := e.flags()
	var b binding
	fs.StringVar(&b.Topic, "topic", "", "topic name (node /topic/<topic> must exist)")
	fs.StringVar(&b.Cluster, "cluster", "", "broker cluster of the unit (created when the topic has none)")
	fs.StringVar(&b.Instance, "instance", "", "pproxy instance ip:port (node /pproxy/<instance> must exist)")
	fs.StringVar(&b.ProxyCluster, "proxy-cluster", "", "proxies key (default: the pproxy node's proxyCluster)")
	fs.IntVar(&b.MaxTps, "maxtps", 0, "set the unit's per-pproxy maxTps (0 = leave as is)")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if err := required(fs, "topic", "cluster", "instance"); err != nil {
		return err
	}
	if err := firstErr(checkName("topic", b.Topic), checkName("cluster", b.Cluster), checkInstance(b.Instance)); err != nil {
		return usageErr(fs, "%v", err)
	}
	if b.MaxTps < 0 {
		return usageErr(fs, "-maxtps must be >= 0")
	}
	s, err := e.store()
	if err != nil {
		return err
	}

	ppPath, topicPath := "/pproxy/"+b.Instance, "/topic/"+b.Topic
	ppData, _, err := s.Get(ppPath)
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("%s does not exist: write it first (carreractl pproxy put)", ppPath)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", ppPath, err)
	}
	info, err := parsePProxyInfo(ppData)
	if err != nil {
		return fmt.Errorf("%s: %w", ppPath, err)
	}
	if b.ProxyCluster == "" {
		if b.ProxyCluster = info.ProxyCluster; b.ProxyCluster == "" {
			return fmt.Errorf("%s has no proxyCluster: pass -proxy-cluster", ppPath)
		}
	}
	if !slices.Contains(info.Clusters, b.Cluster) {
		fmt.Fprintf(e.stderr, "warning: %s has no producer configuration for cluster %q; sends will fail with code 21\n", ppPath, b.Cluster)
	}

	// Topic first: when the pproxy starts watching the topic (white list
	// change below) the unit already lists it.
	changed, err := updateNode(s, topicPath, validated(topicPath, func(d []byte) ([]byte, bool, error) {
		return bindTopicJSON(d, b)
	}))
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("%s does not exist: write it first (carreractl topic put)", topicPath)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", topicPath, err)
	}
	report(e, topicPath, changed)

	changed, err = updateNode(s, ppPath, validated(ppPath, func(d []byte) ([]byte, bool, error) {
		return addWhitelistJSON(d, b.Topic)
	}))
	if err != nil {
		return fmt.Errorf("%s: %w", ppPath, err)
	}
	report(e, ppPath, changed)
	return nil
}

func cmdUnbind(e *env, args []string) error {
	fs := e.flags()
	topic := fs.String("topic", "", "topic name")
	instance := fs.String("instance", "", "pproxy instance ip:port")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if err := required(fs, "topic", "instance"); err != nil {
		return err
	}
	if err := firstErr(checkName("topic", *topic), checkInstance(*instance)); err != nil {
		return usageErr(fs, "%v", err)
	}
	s, err := e.store()
	if err != nil {
		return err
	}

	// Reverse order of bind: the pproxy stops serving the topic first.
	ppPath, topicPath := "/pproxy/"+*instance, "/topic/"+*topic
	for _, step := range []struct {
		path string
		fn   func([]byte) ([]byte, bool, error)
	}{
		{ppPath, func(d []byte) ([]byte, bool, error) { return removeWhitelistJSON(d, *topic) }},
		{topicPath, func(d []byte) ([]byte, bool, error) { return unbindTopicJSON(d, *instance) }},
	} {
		changed, err := updateNode(s, step.path, validated(step.path, step.fn))
		if errors.Is(err, zk.ErrNoNode) {
			fmt.Fprintf(e.stdout, "%s: does not exist, nothing to do\n", step.path)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", step.path, err)
		}
		report(e, step.path, changed)
	}
	return nil
}

// validated wraps an edit so that a changed node is validated before it is
// written.
func validated(path string, fn func([]byte) ([]byte, bool, error)) func([]byte) ([]byte, bool, error) {
	return func(d []byte) ([]byte, bool, error) {
		out, changed, err := fn(d)
		if err != nil || !changed {
			return out, changed, err
		}
		if err := validateNode(path, out); err != nil {
			return nil, false, fmt.Errorf("refusing to write an invalid node: %w", err)
		}
		return out, true, nil
	}
}

func report(e *env, path string, changed bool) {
	if changed {
		fmt.Fprintf(e.stdout, "%s: updated\n", path)
	} else {
		fmt.Fprintf(e.stdout, "%s: unchanged\n", path)
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
