package main

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/IBM/sarama"
)

func main() {
	if os.Getenv("DBG") != "" {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Lmicroseconds)
		sarama.DebugLogger = sarama.Logger
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 0
	if os.Getenv("NOFULL") != "" {
		cfg.Metadata.Full = false
	}
	if os.Getenv("TMO") != "" {
		cfg.Producer.Timeout = 3 * time.Second
	}
	cfg.Producer.Partitioner = sarama.NewRandomPartitioner
	if os.Getenv("MANUAL") != "" {
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
	}
	ap, err := sarama.NewAsyncProducer([]string{os.Args[1]}, cfg)
	if err != nil {
		log.Fatal(err)
	}
	body := make([]byte, 1024)
	const window = 1600
	slots := make(chan struct{}, window)
	var n int
	var lat time.Duration
	go func() {
		for m := range ap.Successes() {
			lat += time.Since(m.Metadata.(time.Time))
			n++
			<-slots
		}
	}()
	go func() {
		for e := range ap.Errors() {
			fmt.Println("err", e.Err)
			<-slots
		}
	}()
	end := time.Now().Add(3 * time.Second)
	i := 0
	for time.Now().Before(end) {
		slots <- struct{}{}
		ap.Input() <- &sarama.ProducerMessage{Topic: "bench", Partition: int32(i % 16), Value: sarama.ByteEncoder(body), Metadata: time.Now()}
		i++
	}
	fmt.Println("sent", i, "acked", n, "avg lat", lat/time.Duration(max(n, 1)))
	ap.Close()
}
