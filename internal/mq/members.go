package mq

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
)

// Members runs several members of one consumer group in this process as
// one GroupConsumer: the broker spreads the group's partitions over them,
// and each member fetches its share on its own connection, so fetches of
// different partitions overlap instead of queueing behind one another
// (a Kafka client has one fetch in flight per broker connection).
//
// The handler sees one member: its Setup receives the union of the
// members' current assignments (each member's Setup replaces that
// member's part; its Cleanup removes it), serialised, so per-instance
// accounting such as rate shares stays right. Claims pass through as they
// are: a partition moving between two local members is released by one
// and claimed by the other, like a move between instances.
type Members []GroupConsumer

// Run runs every member until ctx is done or one of them fails; a failure
// stops the others. It returns after all members returned, with the
// failures joined (nil when ctx ended them).
func (ms Members) Run(ctx context.Context, h ClaimHandler) error {
	if len(ms) == 1 {
		return ms[0].Run(ctx, h)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	u := &union{h: h, parts: make(map[int]map[string][]int32, len(ms))}
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Go(func() {
			if errs[i] = m.Run(ctx, &memberHandler{u: u, i: i}); errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// union merges the members' assignments for the shared handler.
type union struct {
	mu    sync.Mutex
	h     ClaimHandler
	parts map[int]map[string][]int32 // member → its assignment
}

func (u *union) set(i int, assigned map[string][]int32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if assigned == nil {
		delete(u.parts, i)
	} else {
		u.parts[i] = assigned
	}
	all := map[string][]int32{}
	for _, m := range slices.Sorted(maps.Keys(u.parts)) {
		for topic, ps := range u.parts[m] {
			all[topic] = append(all[topic], ps...)
		}
	}
	for _, ps := range all {
		slices.Sort(ps)
	}
	u.h.Setup(all)
}

// memberHandler is the ClaimHandler of member i.
type memberHandler struct {
	u *union
	i int
}

func (m *memberHandler) Setup(assigned map[string][]int32) {
	m.u.set(m.i, maps.Clone(assigned))
}

func (m *memberHandler) Claim(c Claim) { m.u.h.Claim(c) }

// Cleanup drops this member's assignment (the next Setup of any member
// passes on the others' only); the handler's Cleanup runs once no member
// holds anything.
func (m *memberHandler) Cleanup() {
	m.u.mu.Lock()
	delete(m.u.parts, m.i)
	empty := len(m.u.parts) == 0
	m.u.mu.Unlock()
	if empty {
		m.u.h.Cleanup()
	}
}
