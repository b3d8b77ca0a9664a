package mq

import (
	"context"
	"testing"
	"time"
)

func body(n int) *Delivery { return &Delivery{Body: make([]byte, n)} }

// shortCtx is a context that ends soon: Send must give up on it only when
// the channel has no room.
func shortCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	t.Cleanup(cancel)
	return ctx
}

func queuedBytes(ch chan *Delivery) (n int) {
	for range len(ch) {
		d := <-ch
		n += len(d.Body)
		ch <- d
	}
	return n
}

// TestBoundedSenderBytes: the channel never holds more than
// ClaimBufferBytes of bodies; a sender over the budget waits until the
// reader takes enough, then goes on.
func TestBoundedSenderBytes(t *testing.T) {
	ch := make(chan *Delivery, ClaimBuffer)
	s := NewBoundedSender(ch)
	const size = 300 << 10
	fit := ClaimBufferBytes / size // 3
	for i := range fit {
		if !s.Send(context.Background(), body(size)) {
			t.Fatalf("send %d refused", i)
		}
	}
	if s.Send(shortCtx(t), body(size)) {
		t.Fatalf("a %d-byte body was queued on top of %d bytes (budget %d)", size, queuedBytes(ch), ClaimBufferBytes)
	}
	if got := queuedBytes(ch); got > ClaimBufferBytes {
		t.Fatalf("%d bytes queued", got)
	}
	<-ch // the reader takes one
	if !s.Send(shortCtx(t), body(size)) {
		t.Fatal("not sent after the reader made room")
	}
	// A small body still fits next to them? 3 × 300 KiB + 100 KiB ≤ 1 MiB.
	if !s.Send(shortCtx(t), body(100<<10)) {
		t.Fatal("a body that fits the budget was refused")
	}
	if got := queuedBytes(ch); got > ClaimBufferBytes {
		t.Fatalf("%d bytes queued", got)
	}
}

// TestBoundedSenderOversizedWhenEmpty: a body above the budget passes when
// nothing is queued (progress), and nothing passes while it is queued.
func TestBoundedSenderOversizedWhenEmpty(t *testing.T) {
	ch := make(chan *Delivery, ClaimBuffer)
	s := NewBoundedSender(ch)
	if !s.Send(shortCtx(t), body(2*ClaimBufferBytes)) {
		t.Fatal("an oversized body was refused on an empty channel")
	}
	if s.Send(shortCtx(t), body(1)) {
		t.Fatal("a body was queued behind an oversized one")
	}
	<-ch
	if !s.Send(shortCtx(t), body(1)) {
		t.Fatal("not sent once the channel was empty")
	}
}

// TestBoundedSenderCount: small bodies are bounded by the channel's
// capacity, and the ring of sizes stays exact across many wrap-arounds
// while a reader drains concurrently.
func TestBoundedSenderCount(t *testing.T) {
	ch := make(chan *Delivery, 8)
	s := NewBoundedSender(ch)
	for range 8 {
		if !s.Send(context.Background(), body(10)) {
			t.Fatal("refused below capacity")
		}
	}
	if s.Send(shortCtx(t), body(10)) {
		t.Fatal("sent into a full channel")
	}
	done := make(chan int)
	go func() {
		n := 0
		for d := range ch {
			n += len(d.Body)
		}
		done <- n
	}()
	want := 80
	for i := range 10_000 {
		size := (i*7919)%(ClaimBufferBytes/4) + 1
		if !s.Send(context.Background(), body(size)) {
			t.Fatal("refused")
		}
		want += size
		if s.bytes < 0 || s.n > cap(ch) {
			t.Fatalf("ring out of step: %d bytes, %d entries", s.bytes, s.n)
		}
	}
	close(ch)
	if got := <-done; got != want {
		t.Fatalf("reader got %d bytes, sent %d", got, want)
	}
}
