package main

import (
	"maps"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"
)

// fakeStore is an in-memory store with ZooKeeper's semantics for the calls
// carreractl makes (parents must exist, versioned sets).
type fakeStore struct {
	mu    sync.Mutex
	nodes map[string]*fakeNode
	// beforeSet, when set, runs before every Set (outside the lock); tests
	// use it to simulate a concurrent writer.
	beforeSet func(path string)
	closed    bool
}

type fakeNode struct {
	data    []byte
	version int32
}

func newFakeStore() *fakeStore {
	return &fakeStore{nodes: map[string]*fakeNode{"/": {}}}
}

func (f *fakeStore) Get(p string) ([]byte, int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[p]
	if !ok {
		return nil, 0, zk.ErrNoNode
	}
	return slices.Clone(n.data), n.version, nil
}

func (f *fakeStore) Children(p string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nodes[p]; !ok {
		return nil, zk.ErrNoNode
	}
	var out []string
	for k := range maps.Keys(f.nodes) {
		if k != "/" && path.Dir(k) == p {
			out = append(out, strings.TrimPrefix(k[len(p):], "/"))
		}
	}
	return out, nil
}

func (f *fakeStore) Create(p string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.nodes[p]; ok {
		return zk.ErrNodeExists
	}
	if _, ok := f.nodes[path.Dir(p)]; !ok {
		return zk.ErrNoNode
	}
	f.nodes[p] = &fakeNode{data: slices.Clone(data)}
	return nil
}

func (f *fakeStore) Set(p string, data []byte, version int32) error {
	if f.beforeSet != nil {
		f.beforeSet(p)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[p]
	if !ok {
		return zk.ErrNoNode
	}
	if version != -1 && version != n.version {
		return zk.ErrBadVersion
	}
	n.data, n.version = slices.Clone(data), n.version+1
	return nil
}

func (f *fakeStore) Close() { f.closed = true }

func (f *fakeStore) data(p string) string {
	d, _, err := f.Get(p)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(d)
}
