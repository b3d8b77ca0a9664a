package chronos_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
	"github.com/ddmq-go/carrera/internal/testenv"
)

// schedule sends n DELAY messages due from first to last (spread evenly)
// and returns their ids.
func schedule(t *testing.T, p *producer.ProducerServiceClient, n int, first, last int64, tag string) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ts := first + int64(i)*(last-first)/int64(max(n-1, 1))
		ids[i] = addDelay(t, p, ts, []byte(fmt.Sprintf("%s-%d", tag, i)), "", nil)
	}
	return ids
}

func pending(c *child) float64 {
	v, _ := metric(c.Admin, "chronos_pending_messages")
	return v
}

// checkAll asserts every id was delivered at least once, never before its
// second, the first delivery late by at most limit; it returns the number
// of duplicates and the maximum lateness.
func checkAll(t *testing.T, got map[string][]delivered, ids []string, limit time.Duration) (dups int, maxLate time.Duration) {
	t.Helper()
	for _, id := range ids {
		ds := got[id]
		if len(ds) == 0 {
			t.Fatalf("%s (due %s) never delivered", id, fireSecond(t, id).Format("15:04:05"))
		}
		for _, d := range ds {
			checkLateness(t, d, time.Minute) // duplicates too: never early
		}
		maxLate = max(maxLate, checkLateness(t, earliest(ds), limit))
		dups += len(ds) - 1
	}
	return dups, maxLate
}

// TestE2EKillLeaderReplicaTakesOver: two delay-service processes with their
// own inner groups; kill -9 of the master; the replica is elected, resumes
// from the published seek and delivers every due message, late by at most
// 5 s (duplicates of the last second(s) are allowed).
func TestE2EKillLeaderReplicaTakesOver(t *testing.T) {
	bin := testenv.BuildCmd(t, "chronos")
	s := startStack(t, "cg_inner_a", "cg_inner_b")
	a := newChild(t, bin, s.chronosConfig("cg_inner_a", false))
	b := newChild(t, bin, s.chronosConfig("cg_inner_b", false))
	a.Start()
	testenv.Eventually(t, 15*time.Second, "first node elected master", a.master)
	b.Start()
	s.awaitGroupReady("cg_inner_a")
	s.awaitGroupReady("cg_inner_b")
	if b.master() {
		t.Fatal("two masters")
	}
	p := s.producer()
	now := time.Now().Unix()
	ids := schedule(t, p, 40, now+3, now+14, "ha")
	loop := addLoop(t, p, 3, now+4, 3, 4, now+100, "ha-loop") // now+4, +7, +10, +13
	want := append(append([]string{}, ids...), occurrences(t, loop)...)
	// Both replicas hold every pending message (the backup ingests up to
	// the master's published offsets).
	testenv.Eventually(t, 10*time.Second, "both replicas ingested", func() bool {
		return pending(a) >= 38 && pending(b) >= 38 // a few may have fired already
	})

	time.Sleep(time.Until(time.Unix(now+7, 0)))
	a.Kill()
	killed := time.Now()
	testenv.Eventually(t, 15*time.Second, "replica takes over", b.master)
	t.Logf("replica master %v after the kill", time.Since(killed).Round(time.Millisecond))

	time.Sleep(time.Until(time.Unix(now+14, 0).Add(6 * time.Second)))
	got := byKey(s.readUser())
	dups, maxLate := checkAll(t, got, want, 5*time.Second)
	t.Logf("%d occurrences delivered; %d duplicates; max lateness %v", len(want), dups, maxLate)
	if len(got) != len(want) {
		t.Fatalf("%d distinct keys delivered, want %d", len(got), len(want))
	}
	if t.Failed() {
		t.Logf("replica log:\n%s", b.LogTail())
	}
}

// TestE2ERestartLosesNothing: a single delay service is killed with -9 and
// restarted; messages due while it was down are delivered after the
// restart, messages sent while it was down are ingested after it, and
// nothing is lost or delivered early.
func TestE2ERestartLosesNothing(t *testing.T) {
	bin := testenv.BuildCmd(t, "chronos")
	s := startStack(t, "cg_inner_a")
	c := newChild(t, bin, s.chronosConfig("cg_inner_a", true))
	c.Start()
	s.awaitGroupReady("cg_inner_a")
	p := s.producer()
	now := time.Now().Unix()
	before := schedule(t, p, 30, now+3, now+12, "r")
	testenv.Eventually(t, 10*time.Second, "ingested", func() bool { return pending(c) == 30 })

	time.Sleep(time.Until(time.Unix(now+5, 0)))
	c.Kill()
	down := time.Now()
	during := schedule(t, p, 10, now+9, now+13, "d") // sent while it is down
	time.Sleep(3 * time.Second)
	c.Start()
	downtime := time.Since(down)

	time.Sleep(time.Until(time.Unix(now+13, 0).Add(3 * time.Second)))
	got := byKey(s.readUser())
	dups, maxLate := checkAll(t, got, append(before, during...), downtime+2*time.Second)
	t.Logf("down %v; %d delivered; %d duplicates; max lateness %v", downtime.Round(time.Millisecond),
		len(before)+len(during), dups, maxLate)
	// Messages due a moment after the restart are on time again.
	onTime := 0
	for _, id := range append(before, during...) {
		if fire := fireSecond(t, id); fire.After(down.Add(downtime + 2*time.Second)) {
			checkLateness(t, earliest(got[id]), 1500*time.Millisecond)
			onTime++
		}
	}
	if onTime == 0 {
		t.Fatal("no message was due after the restart: the test checks nothing on time")
	}
	if len(got) != len(before)+len(during) {
		t.Fatalf("%d distinct keys delivered, want %d", len(got), len(before)+len(during))
	}
}

func earliest(ds []delivered) delivered {
	first := ds[0]
	for _, d := range ds[1:] {
		if d.at.Before(first.at) {
			first = d
		}
	}
	return first
}
