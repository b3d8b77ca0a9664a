package engine

import (
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ddmq-go/carrera/internal/offset"
)

// FuzzSubmit drives an engine with a script of pulls, acks and nacks (with
// garbage offsets, qids and topics), time steps and revocations, and checks
// that nothing panics and that no commit ever records an offset as finished
// that was not acknowledged: with unlimited retries nothing is dropped, so
// the committed offset and the finished offsets in its metadata must all
// have been in a success list of their partition.
func FuzzSubmit(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 0, 1, 1, 0, 3, 3, 0, 2, 1})
	f.Add([]byte{0, 0, 1, 4, 0, 1, 2, 3, 4, 5, 6, 7, 3, 2, 0, 4, 1, 0})
	f.Add([]byte{0, 2, 1, 200, 201, 202, 3, 1, 0, 2, 5, 1, 3, 3, 4, 3, 0})
	f.Add([]byte{6, 0, 1, 1, 2, 3, 7, 0, 0, 1, 4, 1, 0, 5, 6, 7, 3, 3, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 400 {
			data = data[:400]
		}
		synctest.Test(t, func(t *testing.T) { runSubmitScript(t, data) })
	})
}

func runSubmitScript(t *testing.T, data []byte) {
	s := settings()
	s.MaxRetry = -1
	s.RetryIntervals = []int{10, -1}
	s.MaxPullBatchSize = 4
	s.MaxConsumeLag = 6
	h := newHarness(t, map[string]int{"t": 2}, s)
	const perPartition = 12
	for p := range int32(2) {
		h.appendN("t", p, perPartition)
	}
	acked := [2]map[int64]bool{{}, {}} // offsets that appeared in a success list
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	offsetsOf := func() []int64 {
		n := int(next() % 5)
		out := make([]int64, 0, n)
		for range n {
			b := next()
			switch {
			case b < 200:
				out = append(out, int64(b%(perPartition+2)))
			case b < 210:
				out = append(out, -1)
			case b < 220:
				out = append(out, math.MaxInt64)
			case b < 230:
				out = append(out, math.MinInt64)
			default:
				out = append(out, 1<<40)
			}
		}
		return out
	}
	qids := []string{"K_0", "K_1", "K_9", "", "0"}
	topics := []string{"t", "t", "t", "x", ""}
	for len(data) > 0 {
		switch next() % 8 {
		case 0, 1:
			topic := ""
			if next()%2 == 0 {
				topic = "t"
			}
			b := h.pull(topic, int(next()%6))
			for _, d := range b.Messages {
				if d.Topic != "t" || b.QID != qids[d.Partition] {
					t.Fatalf("batch %s carries %s/%d", b.QID, d.Topic, d.Partition)
				}
			}
		case 2, 3:
			qi, ti := int(next())%len(qids), int(next())%len(topics)
			succ, fail := offsetsOf(), offsetsOf()
			if topics[ti] == "t" && qi < 2 {
				for _, o := range succ {
					acked[qi][o] = true
				}
			}
			h.e.Submit(topics[ti], qids[qi], succ, fail)
		case 4, 5:
			advance(time.Duration(next()%8) * 150 * time.Millisecond)
		case 6:
			h.c.Revoke("t", int32(next()%2))
		case 7:
			h.c.Rebalance(nil)
		}
		synctest.Wait()
		check(t, h, acked)
	}
	advance(time.Second)
	check(t, h, acked)
	h.stop()
	check(t, h, acked)
	for _, g := range []string{"cproxy_pull_in_flight", "cproxy_pull_buffered", "cproxy_pull_buffered_bytes"} {
		if v := h.metric(g, nil); v != 0 {
			t.Fatalf("%s = %v after stop", g, v)
		}
	}
}

// check verifies every commit made so far against the acknowledged sets.
func check(t *testing.T, h *harness, acked [2]map[int64]bool) {
	t.Helper()
	if st := h.e.Stats(); st.InFlight > st.Unfinished || st.Unfinished < 0 || st.BufferedBytes < 0 {
		t.Fatalf("stats %+v", st)
	}
	for p := range int32(2) {
		for _, co := range h.c.Commits("t", p) {
			tr, err := offset.Decode(co.Offset, co.Metadata)
			if err != nil {
				t.Fatalf("partition %d: undecodable commit %+v: %v", p, co, err)
			}
			for o := int64(0); o < co.Offset+20; o++ {
				fin := o < co.Offset || !tr.Start(o)
				if fin && !acked[p][o] {
					t.Fatalf("partition %d: commit %+v records offset %d as finished, never acknowledged (acked %v)",
						p, co, o, acked[p])
				}
			}
		}
	}
}
