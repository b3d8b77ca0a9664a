package mq

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fakeMember sets up its assignment, hands out one claim per partition,
// reports readiness, then runs until ctx ends (or returns fail at once).
type fakeMember struct {
	assign map[string][]int32
	fail   error
	ready  chan struct{}
	gotH   ClaimHandler
}

func (m *fakeMember) Run(ctx context.Context, h ClaimHandler) error {
	m.gotH = h
	h.Setup(m.assign)
	for topic, ps := range m.assign {
		for _, p := range ps {
			h.Claim(fakeClaim{topic: topic, partition: p})
		}
	}
	close(m.ready)
	if m.fail != nil {
		h.Cleanup()
		return m.fail
	}
	<-ctx.Done()
	h.Cleanup()
	return nil
}

type fakeClaim struct {
	Claim
	topic     string
	partition int32
}

func (c fakeClaim) Topic() string    { return c.topic }
func (c fakeClaim) Partition() int32 { return c.partition }

type recHandler struct {
	mu       sync.Mutex
	setups   []map[string][]int32
	claims   map[string]int
	cleanups int
}

func (h *recHandler) Setup(a map[string][]int32) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.setups = append(h.setups, a)
}

func (h *recHandler) Claim(c Claim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claims == nil {
		h.claims = map[string]int{}
	}
	h.claims[c.Topic()]++
}

func (h *recHandler) Cleanup() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cleanups++
}

func newFake(assign map[string][]int32, fail error) *fakeMember {
	return &fakeMember{assign: assign, fail: fail, ready: make(chan struct{})}
}

func TestMembersSetupSeesTheUnion(t *testing.T) {
	a := newFake(map[string][]int32{"t": {2, 0}}, nil)
	b := newFake(map[string][]int32{"t": {3, 1}, "u": {0}}, nil)
	h := &recHandler{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Members{a, b}.Run(ctx, h) }()
	<-a.ready
	<-b.ready

	h.mu.Lock()
	last := h.setups[len(h.setups)-1]
	n := len(h.setups)
	claims := h.claims
	cleanups := h.cleanups
	h.mu.Unlock()
	want := map[string][]int32{"t": {0, 1, 2, 3}, "u": {0}}
	if !reflect.DeepEqual(last, want) {
		t.Fatalf("last Setup = %v, want the union %v", last, want)
	}
	if n != 2 {
		t.Fatalf("Setup called %d times, want once per member", n)
	}
	if claims["t"] != 4 || claims["u"] != 1 {
		t.Fatalf("claims %v, want every member's claims passed through", claims)
	}
	if cleanups != 0 {
		t.Fatalf("Cleanup ran %d times while members still hold partitions", cleanups)
	}
	if a.gotH == ClaimHandler(h) {
		t.Fatalf("member got the shared handler directly; it must get its own")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if h.cleanups != 1 {
		t.Fatalf("Cleanup ran %d times, want once after the last member", h.cleanups)
	}
}

func TestMembersFailureStopsTheOthers(t *testing.T) {
	boom := errors.New("boom")
	a := newFake(map[string][]int32{"t": {0}}, boom)
	b := newFake(map[string][]int32{"t": {1}}, nil)
	done := make(chan error, 1)
	go func() { done <- Members{a, b}.Run(context.Background(), &recHandler{}) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("Run = %v, want the failing member's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a member's failure did not stop the others")
	}
}

func TestMembersDroppedAssignmentLeavesTheUnion(t *testing.T) {
	h := &recHandler{}
	u := &union{h: h, parts: map[int]map[string][]int32{}}
	m0, m1 := &memberHandler{u: u, i: 0}, &memberHandler{u: u, i: 1}
	m0.Setup(map[string][]int32{"t": {0, 1}})
	m1.Setup(map[string][]int32{"t": {2}})
	m0.Cleanup()
	if h.cleanups != 0 {
		t.Fatalf("Cleanup passed on while member 1 still holds partitions")
	}
	m1.Setup(map[string][]int32{"t": {2, 3}}) // member 1's next generation
	if got, want := h.setups[len(h.setups)-1], map[string][]int32{"t": {2, 3}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Setup after member 0's cleanup = %v, want %v", got, want)
	}
	m1.Cleanup()
	if h.cleanups != 1 {
		t.Fatalf("Cleanup ran %d times after the last member's, want 1", h.cleanups)
	}
}

func TestMembersSingleIsTheMemberItself(t *testing.T) {
	a := newFake(map[string][]int32{"t": {0}}, errors.New("stop"))
	h := &recHandler{}
	_ = Members{a}.Run(context.Background(), h)
	if a.gotH != ClaimHandler(h) {
		t.Fatal("a single member should get the handler unwrapped")
	}
}
