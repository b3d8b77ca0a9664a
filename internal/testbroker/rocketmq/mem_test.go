package rocketmq

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

// heapAfterGC returns the live heap after two full collections.
func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// fillBroker stores n messages of size bytes (tagged "fill", property
// WAIT=true, as the benchmarks send them) in topic's queues round-robin
// with SEND_BATCH_MESSAGE of 64 messages, 4 batches in flight, over one
// remoting connection.
func fillBroker(tb testing.TB, addr, topic string, queues, n, size int) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := rm.Dial(ctx, addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	props := rm.EncodeProperties(map[string]string{"WAIT": "true", rm.PropertyTags: "fill"})
	const batch = 64
	msgs := make([]rm.BatchMessage, batch)
	for i := range msgs {
		msgs[i] = rm.BatchMessage{Body: body, Properties: props}
	}
	enc, err := rm.EncodeBatch(msgs)
	if err != nil {
		tb.Fatal(err)
	}
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 4 {
		wg.Go(func() {
			for k := range work {
				ext := map[string]string{"a": "pg", "b": topic, "e": strconv.Itoa(k % queues), "f": "0",
					"g": strconv.FormatInt(time.Now().UnixMilli(), 10), "h": "0", "j": "0", "m": "true"}
				resp, err := c.Invoke(ctx, rm.NewRequest(rm.SendBatchMessage, ext, enc))
				if err == nil {
					err = rm.CheckCode(resp)
				}
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}
		})
	}
	for k := 0; k < n/batch; k++ {
		work <- k
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
}

// drainBroker pulls every message of topic's queues (32 per PULL) and
// returns how many it got.
func drainBroker(tb testing.TB, addr, topic string, queues int) int {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := rm.Dial(ctx, addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	total := 0
	for q := range queues {
		off := int64(0)
		for {
			resp, err := c.Invoke(ctx, rm.NewRequest(rm.PullMessage, map[string]string{
				"consumerGroup": "drain", "topic": topic, "queueId": strconv.Itoa(q),
				"queueOffset": strconv.FormatInt(off, 10), "maxMsgNums": "32", "sysFlag": "0",
			}, nil))
			if err != nil {
				tb.Fatal(err)
			}
			if resp.Code != rm.Success {
				break
			}
			msgs, err := rm.DecodeStoredMessages(resp.Body)
			if err != nil || len(msgs) == 0 {
				tb.Fatalf("pull %s/%d@%d: %d messages, %v", topic, q, off, len(msgs), err)
			}
			total += len(msgs)
			off, _ = strconv.ParseInt(resp.Ext("nextBeginOffset"), 10, 64)
		}
	}
	return total
}

// TestStoreHeapPerMessage stores 200k messages of 1 KiB and checks that
// the broker's live heap stays within 1.5× the payload, and reports the
// allocation churn of pulling them all.
func TestStoreHeapPerMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 200 MB")
	}
	const (
		n      = 200_000
		size   = 1024
		queues = 16
	)
	s, err := Start(Options{DisableAutoCreateTopics: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic("mem", queues); err != nil {
		t.Fatal(err)
	}
	addr := s.BrokerAddrs()["broker-a"]
	base := heapAfterGC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	fillBroker(t, addr, "mem", queues, n, size)
	fillTook := time.Since(start)
	runtime.ReadMemStats(&after)
	stored := heapAfterGC()
	perMsg := float64(stored-base) / n
	t.Logf("stored %d × %d B in %v: live heap %.1f MiB, %.0f B/message (%.2f× payload); %.0f B allocated/message (client included)",
		n, size, fillTook.Round(time.Millisecond), float64(stored-base)/(1<<20), perMsg, perMsg/size,
		float64(after.TotalAlloc-before.TotalAlloc)/n)

	runtime.ReadMemStats(&before)
	start = time.Now()
	got := drainBroker(t, addr, "mem", queues)
	runtime.ReadMemStats(&after)
	if got != n {
		t.Fatalf("pulled %d messages, want %d", got, n)
	}
	t.Logf("pulled %d in %v: %.0f B allocated/message (client included), %d GCs",
		got, time.Since(start).Round(time.Millisecond), float64(after.TotalAlloc-before.TotalAlloc)/n, after.NumGC-before.NumGC)
	if perMsg > 1.5*size {
		t.Errorf("live heap %.0f B per %d B message: want ≤ 1.5× payload", perMsg, size)
	}
}
