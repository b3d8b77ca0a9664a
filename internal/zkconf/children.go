package zkconf

import (
	"maps"

	"go.uber.org/zap"
)

// children are the child nodes a source watches by name under one prefix —
// pproxy's /topic/<t>, cproxy's /group/<g> — with the last valid
// configuration of each. The source's own node names the wanted children;
// a new white list is planned (added children read at once), a snapshot is
// built from the plan, and only when it is accepted do the configurations
// and watches change. Owned by Start, then by the watcher loop.
type children[C any] struct {
	w      *Watcher
	log    *zap.Logger
	prefix string // e.g. TopicPathPrefix
	kind   string // "topic" or "group", for logs
	reason string // failure reason of a node that does not parse or validate
	parse  func([]byte) (*C, error)
	check  func(name string, c *C) // warnings about a valid node
	fail   func(reason string, ev Event, err error)

	cur     map[string]*C // valid children by node name
	watched map[string]bool
}

// plan returns the configurations for the white list names: those already
// watched come from cur, the others (added) are read now.
func (c *children[C]) plan(names []string) (next map[string]*C, added []string) {
	next = make(map[string]*C, len(names))
	for _, name := range names {
		if c.watched[name] {
			if v := c.cur[name]; v != nil {
				next[name] = v
			}
			continue
		}
		added = append(added, name)
		if v := c.read(name); v != nil {
			next[name] = v
		}
	}
	return next, added
}

// accept installs next (planned for names) and makes the watches match
// names: children no longer named are unwatched, added ones watched.
func (c *children[C]) accept(names, added []string, next map[string]*C) {
	want := make(map[string]bool, len(names))
	for _, name := range names {
		want[name] = true
	}
	for name := range c.watched {
		if !want[name] {
			c.w.Unwatch(c.prefix + name)
			delete(c.watched, name)
		}
	}
	for _, name := range added {
		if err := c.w.Watch(c.prefix + name); err != nil {
			c.log.Warn("cannot watch "+c.kind, zap.String(c.kind, name), zap.Error(err))
			continue
		}
		c.watched[name] = true
	}
	c.cur = next
}

// with returns a copy of cur with name set to v (deleted when v is nil).
func (c *children[C]) with(name string, v *C) map[string]*C {
	next := maps.Clone(c.cur)
	if v == nil {
		delete(next, name)
	} else {
		next[name] = v
	}
	return next
}

// parseEvent parses a change of a watched child; ok is false when it is
// invalid (counted and logged).
func (c *children[C]) parseEvent(name string, ev Event) (v *C, ok bool) {
	v, err := c.parse(ev.Data)
	if err != nil {
		c.fail(c.reason, ev, err)
		return nil, false
	}
	c.check(name, v)
	return v, true
}

// read reads and parses prefix+name synchronously; nil when it is missing,
// unreadable or invalid (logged; invalid is counted).
func (c *children[C]) read(name string) *C {
	path := c.prefix + name
	ev, err := c.w.Read(path)
	if err != nil {
		c.log.Warn(c.kind+" node unavailable", zap.String("path", path), zap.Error(err))
		return nil
	}
	if !ev.Exists {
		c.log.Info(c.kind+" node does not exist; the "+c.kind+" is not served until it is created", zap.String("path", path))
		return nil
	}
	v, _ := c.parseEvent(name, ev)
	return v
}
