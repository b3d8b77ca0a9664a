package main

import (
	"fmt"
	"strings"

	"github.com/ddmq-go/carrera/internal/config"
)

// validateNode checks data the way the proxies will read it: /topic/<t>,
// /pproxy/<ip:port>, /group/<g> and /cproxy/<ip:port> nodes with the config
// package's parsers (which apply defaults and validate), plus the rule that
// the node name equals the name inside the JSON. /broker nodes must at least
// be JSON objects; anything else is written as given.
func validateNode(p string, data []byte) error {
	dir, name, nested := splitNodePath(p)
	if nested {
		return nil
	}
	switch dir {
	case "/topic":
		tc, err := config.ParseTopicConfig(data)
		if err != nil {
			return fmt.Errorf("invalid TopicConfig: %w", err)
		}
		if tc.Topic != name {
			return fmt.Errorf("topic %q in the JSON differs from the node name %q", tc.Topic, name)
		}
	case "/pproxy":
		pc, err := config.ParsePProxyConfig(data)
		if err != nil {
			return fmt.Errorf("invalid PProxyConfig: %w", err)
		}
		if pc.Instance != name {
			return fmt.Errorf("instance %q in the JSON differs from the node name %q", pc.Instance, name)
		}
	case "/group":
		if _, err := parseObject(data); err != nil {
			return err
		}
		gc, err := config.ParseGroupConfig(data)
		if err != nil {
			return fmt.Errorf("invalid GroupConfig: %w", err)
		}
		if gc.Group != name {
			return fmt.Errorf("group %q in the JSON differs from the node name %q", gc.Group, name)
		}
	case "/cproxy":
		if _, err := parseObject(data); err != nil {
			return err
		}
		cc, err := config.ParseCProxyConfig(data)
		if err != nil {
			return fmt.Errorf("invalid CProxyConfig: %w", err)
		}
		if cc.Instance != name {
			return fmt.Errorf("instance %q in the JSON differs from the node name %q", cc.Instance, name)
		}
	case "/broker":
		if _, err := parseObject(data); err != nil {
			return err
		}
	}
	return nil
}

// splitNodePath splits "/topic/x" into ("/topic", "x"). nested is true for
// paths that are not exactly one level below a top-level node.
func splitNodePath(p string) (dir, name string, nested bool) {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(parts) != 2 {
		return "", "", true
	}
	return "/" + parts[0], parts[1], false
}
