package protocoltest

import (
	"context"
	"strconv"
	"testing"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
	rmqtb "github.com/ddmq-go/carrera/internal/testbroker/rocketmq"
)

// BenchmarkSendParallel measures SEND_MESSAGE round trips of 1 KiB messages
// over one connection per goroutine.
func BenchmarkSendParallel(b *testing.B) {
	s, err := rmqtb.Start(rmqtb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic("bench", 8); err != nil {
		b.Fatal(err)
	}
	addr := s.BrokerAddrs()["broker-a"]
	body := make([]byte, 1024)
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		c, err := rm.Dial(context.Background(), addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		i := 0
		for pb.Next() {
			i++
			resp, err := c.Invoke(context.Background(), rm.NewRequest(rm.SendMessage, map[string]string{
				"topic": "bench", "queueId": strconv.Itoa(i % 8), "properties": "TAGS\x01x\x02",
			}, body))
			if err != nil || resp.Code != rm.Success {
				b.Errorf("send: %v %v", resp, err)
				return
			}
		}
	})
}
