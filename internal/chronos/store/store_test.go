package store

import (
	"bytes"
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/ddmq-go/carrera/internal/chronos/delayid"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const uuid = "9e7952e0-b709-11e8-a709-aafb4bfc0bc5"

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func id(ts int64, typ delayid.Type, n int) delayid.ID {
	u := fmt.Sprintf("%08x", n) + uuid[8:]
	return delayid.ID{Timestamp: ts, Type: typ, Expire: ts + 100, Times: 3, Interval: 5, UUID: u}
}

func commit(t *testing.T, s *Store, fill func(b *Batch)) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	fill(b)
	if err := s.Commit(b, true); err != nil {
		t.Fatal(err)
	}
}

func scan(t *testing.T, s *Store, sec int64) []*Entry {
	t.Helper()
	var out []*Entry
	if err := s.ScanSecond(sec, func(e *Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestScanSecondOrderAndTombstonesFirst(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	const T = 1_700_000_000
	bin := []byte{0, 0xff, 0x80, 'x'}
	commit(t, s, func(b *Batch) {
		// Written in scrambled order, across three seconds.
		_ = b.PutMessage(id(T+1, delayid.Delay, 1), &Message{Topic: "a", Body: []byte("next second")})
		_ = b.PutMessage(id(T, delayid.Loop, 2), &Message{Topic: "a", Body: bin, Tags: "tg", Properties: map[string]string{"k": "v"}, CreateTime: 42})
		_ = b.PutMessage(id(T, delayid.Delay, 3), &Message{Topic: "a", Body: []byte("d")})
		_ = b.PutCancel(id(T, delayid.Delay, 3), "a")
		_ = b.PutMessage(id(T-1, delayid.Delay, 4), &Message{Topic: "a", Body: []byte("previous second")})
		_ = b.PutCancel(id(T, delayid.Loop, 9), "b")
	})
	got := scan(t, s, T)
	if len(got) != 4 {
		t.Fatalf("second T has %d keys, want 4", len(got))
	}
	// Tombstones (type 0) first, in key order, then data keys in key order.
	if got[0].Cancel == nil || got[1].Cancel == nil || got[2].Message == nil || got[3].Message == nil {
		t.Fatalf("kinds %+v", got)
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].Key >= got[i].Key {
			t.Fatalf("keys out of order: %q then %q", got[i-1].Key, got[i].Key)
		}
	}
	if got[0].Cancel.UniqDelayMsgID != id(T, delayid.Delay, 3).String() || got[0].Cancel.Topic != "a" || got[0].ID.Type != delayid.Tombstone {
		t.Fatalf("tombstone %+v", got[0])
	}
	var loop *Entry
	for _, e := range got {
		if e.ID.Type == delayid.Loop && e.Message != nil {
			loop = e
		}
	}
	if loop == nil || !bytes.Equal(loop.Message.Body, bin) || loop.Message.Tags != "tg" || loop.Message.Properties["k"] != "v" || loop.Message.CreateTime != 42 {
		t.Fatalf("binary loop message %+v", loop)
	}
	if n := len(scan(t, s, T+1)); n != 1 {
		t.Fatalf("second T+1 has %d keys", n)
	}
	if n := len(scan(t, s, T+2)); n != 0 {
		t.Fatalf("second T+2 has %d keys", n)
	}
	// Pending from T: 3 data keys at T and T+1 (tombstones do not count).
	if n, err := s.CountFrom(T); err != nil || n != 3 {
		t.Fatalf("CountFrom = %d, %v", n, err)
	}
}

func TestReopenKeepsDataAndSeek(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	if _, ok, err := s.Seek(); ok || err != nil {
		t.Fatalf("fresh store has a seek (%v)", err)
	}
	const T = 1_700_000_000
	commit(t, s, func(b *Batch) {
		_ = b.PutMessage(id(T, delayid.Delay, 1), &Message{Topic: "a", Body: []byte("x")})
		_ = b.SetSeek(T - 5)
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if sec, ok, err := s.Seek(); !ok || err != nil || sec != T-5 {
		t.Fatalf("seek after reopen %d %v %v", sec, ok, err)
	}
	if got := scan(t, s, T); len(got) != 1 || string(got[0].Message.Body) != "x" {
		t.Fatalf("data after reopen %+v", got)
	}
	if ok, err := s.Has(id(T, delayid.Delay, 1).String()); !ok || err != nil {
		t.Fatalf("Has = %v %v", ok, err)
	}
	if ok, err := s.Has(id(T, delayid.Delay, 2).String()); ok || err != nil {
		t.Fatalf("Has(absent) = %v %v", ok, err)
	}
	// The seek key never shows up in a second or a count.
	if n, _ := s.CountFrom(0); n != 1 {
		t.Fatalf("CountFrom(0) = %d", n)
	}
}

func TestDeleteBeforeRetention(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	const T = 1_700_000_000
	commit(t, s, func(b *Batch) {
		for i := range 10 {
			_ = b.PutMessage(id(T+int64(i), delayid.Delay, i), &Message{Topic: "a", Body: []byte("x")})
			_ = b.PutCancel(id(T+int64(i), delayid.Delay, 100+i), "a")
		}
		_ = b.SetSeek(T + 3)
	})
	if err := s.DeleteBefore(T + 4); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		n := len(scan(t, s, T+int64(i)))
		if i < 4 && n != 0 || i >= 4 && n != 2 {
			t.Fatalf("second %d has %d keys after DeleteBefore(T+4)", i, n)
		}
	}
	if sec, ok, _ := s.Seek(); !ok || sec != T+3 {
		t.Fatal("retention deleted the seek position")
	}
	if err := s.Compact(); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountFrom(0); n != 6 {
		t.Fatalf("CountFrom(0) after retention = %d", n)
	}
}

func TestUndecodableEntryIsReported(t *testing.T) {
	s := open(t, t.TempDir())
	defer s.Close()
	const T = 1_700_000_000
	k := id(T, delayid.Delay, 1).String()
	if err := s.db.Set([]byte(k), []byte("not json"), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Set([]byte(delayid.SecondPrefix(T)+"garbage"), []byte("{}"), nil); err != nil {
		t.Fatal(err)
	}
	got := scan(t, s, T)
	if len(got) != 2 || got[0].Err == nil || got[1].Err == nil {
		t.Fatalf("corrupt entries not reported: %+v", got)
	}
}

func BenchmarkCommitSync200(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	body := bytes.Repeat([]byte("x"), 100)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		bt := s.NewBatch()
		for range 200 {
			n++
			_ = bt.PutMessage(id(1_700_000_000+int64(n%600), delayid.Delay, n), &Message{Topic: "t", Body: body})
		}
		if err := s.Commit(bt, true); err != nil {
			b.Fatal(err)
		}
		bt.Close()
	}
	b.ReportMetric(float64(200*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
