package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/ddmq-go/carrera/internal/config"
)

// store is the part of ZooKeeper carreractl uses. Paths are inside the
// chroot ("/topic/x"). Errors are zk's sentinels (zk.ErrNoNode,
// zk.ErrNodeExists, zk.ErrBadVersion) so that a fake can produce them too.
type store interface {
	// Get returns the node's data and data version.
	Get(path string) ([]byte, int32, error)
	Children(path string) ([]string, error)
	// Create makes a persistent node; its parent must exist.
	Create(path string, data []byte) error
	// Set replaces the data if the node's version is still version
	// (-1 = any version).
	Set(path string, data []byte, version int32) error
	Close()
}

// parentData is what missing parent nodes are created with (the console's
// convention, zookeeper-layout.md §2).
const parentData = "default"

// maxCASAttempts bounds the read-modify-write retries on version conflicts.
const maxCASAttempts = 10

// checkPath rejects paths ZooKeeper would refuse, with a clearer message.
func checkPath(p string) error {
	if p == "/" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return fmt.Errorf("bad node path %q: want /a/b (absolute, inside the chroot, no trailing slash)", p)
	}
	return nil
}

// ancestors returns the proper ancestors of p, outermost first:
// "/a/b/c" → ["/a", "/a/b"].
func ancestors(p string) []string {
	var out []string
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}

// writeNode creates p's missing ancestors with parentData, then creates p
// with data or overwrites it. It reports whether p was created.
func writeNode(s store, p string, data []byte) (created bool, err error) {
	if err := checkPath(p); err != nil {
		return false, err
	}
	for _, a := range ancestors(p) {
		if err := s.Create(a, []byte(parentData)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return false, fmt.Errorf("create parent %s: %w", a, err)
		}
	}
	for range maxCASAttempts {
		err := s.Set(p, data, -1)
		if !errors.Is(err, zk.ErrNoNode) {
			return false, err
		}
		err = s.Create(p, data)
		if !errors.Is(err, zk.ErrNodeExists) {
			return err == nil, err
		}
		// Created concurrently between Set and Create: set again.
	}
	return false, fmt.Errorf("write %s: node keeps appearing and disappearing", p)
}

// updateNode applies fn to p's data and writes the result with the read
// version (compare-and-set), retrying when another writer got in between.
// fn must be pure: it may run several times. Unchanged data is not written.
func updateNode(s store, p string, fn func([]byte) ([]byte, bool, error)) (changed bool, err error) {
	for range maxCASAttempts {
		data, ver, err := s.Get(p)
		if err != nil {
			return false, err
		}
		out, changed, err := fn(data)
		if err != nil || !changed {
			return false, err
		}
		err = s.Set(p, out, ver)
		if errors.Is(err, zk.ErrBadVersion) {
			continue
		}
		return err == nil, err
	}
	return false, fmt.Errorf("update %s: gave up after %d version conflicts", p, maxCASAttempts)
}

// zkStore is the store over a real ZooKeeper ensemble.
type zkStore struct {
	conn   *zk.Conn
	chroot string // "" or "/carrera/v4/config"
	// chrootReady is set once the chroot's own nodes are known to exist.
	chrootReady bool
}

// openZK connects to the ensemble of addr ("h1:2181,h2:2181/chroot") and
// waits up to timeout for a session.
func openZK(addr string, timeout time.Duration) (store, error) {
	servers, chroot := config.ParseZKAddr(addr)
	if len(servers) == 0 {
		return nil, fmt.Errorf("bad ZooKeeper address %q", addr)
	}
	chroot = strings.TrimSuffix(chroot, "/")
	conn, events, err := zk.Connect(servers, 30*time.Second, zk.WithLogger(nopLogger{}))
	if err != nil {
		return nil, fmt.Errorf("connect to ZooKeeper %s: %w", addr, err)
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return &zkStore{conn: conn, chroot: chroot}, nil
			}
			if ev.State == zk.StateAuthFailed {
				conn.Close()
				return nil, fmt.Errorf("ZooKeeper %s: authentication failed", addr)
			}
		case <-deadline.C:
			conn.Close()
			return nil, fmt.Errorf("no ZooKeeper session with %s within %v", strings.Join(servers, ","), timeout)
		}
	}
}

func (s *zkStore) full(p string) string {
	if p == "/" && s.chroot != "" {
		return s.chroot
	}
	return s.chroot + p
}

func (s *zkStore) Get(p string) ([]byte, int32, error) {
	data, stat, err := s.conn.Get(s.full(p))
	if err != nil {
		return nil, 0, err
	}
	return data, stat.Version, nil
}

func (s *zkStore) Children(p string) ([]string, error) {
	children, _, err := s.conn.Children(s.full(p))
	return children, err
}

func (s *zkStore) Create(p string, data []byte) error {
	if !s.chrootReady && s.chroot != "" {
		// A fresh ensemble has no chroot yet: create it like any parent.
		for _, a := range append(ancestors(s.chroot), s.chroot) {
			_, err := s.conn.Create(a, []byte(parentData), 0, zk.WorldACL(zk.PermAll))
			if err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return fmt.Errorf("create chroot node %s: %w", a, err)
			}
		}
		s.chrootReady = true
	}
	_, err := s.conn.Create(s.full(p), data, 0, zk.WorldACL(zk.PermAll))
	return err
}

func (s *zkStore) Set(p string, data []byte, version int32) error {
	_, err := s.conn.Set(s.full(p), data, version)
	return err
}

func (s *zkStore) Close() { s.conn.Close() }

// nopLogger silences go-zookeeper's connection chatter.
type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
