package mq

import (
	"bytes"
	"context"
	"testing"
)

// window returns a shared delivery whose body is buf[off:off+n].
func window(buf []byte, off, n int) *Delivery {
	return &Delivery{Body: buf[off : off+n : off+n], Shared: true}
}

func aliases(a, b []byte) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }

// TestOwnedCopiesOnlySharedBodies: Owned leaves d alone and copies a shared
// body; an owned delivery is returned as it is.
func TestOwnedCopiesOnlySharedBodies(t *testing.T) {
	buf := []byte("0123456789")
	d := window(buf, 2, 4)
	o := d.Owned()
	if o == d || o.Shared || !bytes.Equal(o.Body, []byte("2345")) || aliases(o.Body, d.Body) {
		t.Fatalf("Owned() = %+v", o)
	}
	if !d.Shared || !aliases(d.Body, buf[2:]) {
		t.Fatal("Owned changed its receiver")
	}
	if o.Owned() != o {
		t.Fatal("an owned delivery was copied again")
	}
}

// TestShareGateSharesWhileChannelsDrain: a reader that keeps up lets every
// delivery through as a window, however much passes in total.
func TestShareGateSharesWhileChannelsDrain(t *testing.T) {
	copies := 0
	g := NewShareGate(func() { copies++ })
	ch := make(chan *Delivery, ClaimBuffer)
	s := g.Sender(ch)
	defer s.Close()
	buf := make([]byte, 64<<10)
	total := 0
	for total <= 3*ShareWindow {
		if !s.Send(context.Background(), window(buf, 0, len(buf))) {
			t.Fatal("refused")
		}
		d := <-ch
		if !d.Shared || !aliases(d.Body, buf) {
			t.Fatalf("copied after %d bytes although nothing was queued", total)
		}
		total += len(buf)
	}
	if copies != 0 {
		t.Fatalf("%d copies counted", copies)
	}
}

// TestShareGateCopiesBehindAStalledChannel: one claim channel of the member
// holding a shared delivery that nobody reads stops the sharing on every
// channel of the member once ShareWindow more bytes went through (not
// before, and at most one scan interval late); when that channel drains,
// sharing resumes within a scan interval.
func TestShareGateCopiesBehindAStalledChannel(t *testing.T) {
	var metric int
	g := NewShareGate(func() { metric++ })
	stalled := make(chan *Delivery, ClaimBuffer)
	s1 := g.Sender(stalled)
	defer s1.Close()
	src := []byte("pinned")
	if !s1.Send(context.Background(), window(src, 0, len(src))) {
		t.Fatal("refused")
	}

	live := make(chan *Delivery, ClaimBuffer)
	s2 := g.Sender(live)
	defer s2.Close()
	const size = 32 << 10
	buf := bytes.Repeat([]byte{'x'}, size)
	send := func() *Delivery {
		t.Helper()
		if !s2.Send(context.Background(), window(buf, 0, size)) {
			t.Fatal("refused")
		}
		return <-live
	}
	passed := 0 // bytes sent after the stalled delivery
	for {
		d := send()
		passed += int(ShareCost(size))
		if !d.Shared {
			if aliases(d.Body, buf) || !bytes.Equal(d.Body, buf) {
				t.Fatal("a gated delivery's body is not a copy of the window")
			}
			break
		}
		if passed > ShareWindow+2*shareScanEvery {
			t.Fatalf("still shared %d bytes after a delivery was queued (window %d)", passed, ShareWindow)
		}
	}
	if passed <= ShareWindow-len(src) {
		t.Fatalf("copying started %d bytes after the stalled delivery, inside the window %d", passed, ShareWindow)
	}
	for range 10 {
		if send().Shared {
			t.Fatal("shared again while the stalled delivery is still queued")
		}
	}
	if metric != 11 {
		t.Fatalf("onCopy called %d times; want 11", metric)
	}

	<-stalled // its reader takes it
	resumed := 0
	for !send().Shared {
		resumed += int(ShareCost(size))
		if resumed > 2*shareScanEvery {
			t.Fatalf("still copying %d bytes after the stalled channel drained", resumed)
		}
	}
}

// TestShareGateClosedSenderIsForgotten: a closed sender's queued
// deliveries no longer hold the gate (its claim ended; its reader is gone).
func TestShareGateClosedSenderIsForgotten(t *testing.T) {
	g := NewShareGate(nil)
	s1 := g.Sender(make(chan *Delivery, 4))
	src := []byte("pinned")
	s1.Send(context.Background(), window(src, 0, len(src)))
	s1.Close()

	live := make(chan *Delivery, 4)
	s2 := g.Sender(live)
	defer s2.Close()
	buf := make([]byte, 64<<10)
	for total := 0; total <= 2*ShareWindow; total += len(buf) {
		s2.Send(context.Background(), window(buf, 0, len(buf)))
		if !(<-live).Shared {
			t.Fatalf("copied after %d bytes: the closed sender still counts", total)
		}
	}
}
