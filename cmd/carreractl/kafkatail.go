package main

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

func cmdKafkaTail(e *env, args []string) error {
	fs := e.flags()
	brokers := fs.String("brokers", "127.0.0.1:19092", "bootstrap brokers, comma separated")
	topic := fs.String("topic", "", "topic")
	n := fs.Int("n", 0, "stop after N records (0: only the idle timeout stops)")
	from := fs.String("from", "oldest", "start at the oldest or the newest offset of each partition")
	idle := fs.Duration("idle", 5*time.Second, "stop after this long without a record")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if err := required(fs, "brokers", "topic"); err != nil {
		return err
	}
	var offset int64
	switch *from {
	case "oldest":
		offset = sarama.OffsetOldest
	case "newest":
		offset = sarama.OffsetNewest
	default:
		return usageErr(fs, "-from must be oldest or newest")
	}
	if *n < 0 || *idle <= 0 {
		return usageErr(fs, "-n must be >= 0 and -idle > 0")
	}

	cfg := sarama.NewConfig()
	cfg.ClientID = "carreractl"
	cfg.Version = sarama.V2_8_0_0
	cfg.Consumer.Return.Errors = true
	client, err := sarama.NewClient(strings.Split(*brokers, ","), cfg)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *brokers, err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return err
	}
	defer consumer.Close()
	partitions, err := consumer.Partitions(*topic)
	if err != nil {
		return fmt.Errorf("topic %s: %w", *topic, err)
	}

	records := make(chan *sarama.ConsumerMessage)
	done := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(done)
	for _, p := range partitions {
		pc, err := consumer.ConsumePartition(*topic, p, offset)
		if err != nil {
			return fmt.Errorf("partition %d: %w", p, err)
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			for cerr := range pc.Errors() {
				fmt.Fprintf(e.stderr, "partition %d: %v\n", p, cerr.Err)
			}
		}()
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					select {
					case records <- m:
					case <-done:
						return
					}
				case <-done:
					return
				}
			}
		}()
	}

	count := 0
	timer := time.NewTimer(*idle)
	defer timer.Stop()
	for *n == 0 || count < *n {
		select {
		case m := <-records:
			count++
			printRecord(e, m)
			timer.Reset(*idle)
		case <-timer.C:
			fmt.Fprintf(e.stderr, "%d record(s); idle for %v, stopping\n", count, *idle)
			return idleResult(count, *n)
		case <-e.ctx.Done():
			return e.ctx.Err()
		}
	}
	fmt.Fprintf(e.stderr, "%d record(s)\n", count)
	return nil
}

// idleResult fails when fewer records than asked for arrived.
func idleResult(count, want int) error {
	if want > 0 && count < want {
		return errors.New("fewer records than -n")
	}
	return nil
}

func printRecord(e *env, m *sarama.ConsumerMessage) {
	var hs []string
	for _, h := range m.Headers {
		hs = append(hs, fmt.Sprintf("%s=%q", h.Key, h.Value))
	}
	fmt.Fprintf(e.stdout, "partition=%d offset=%d time=%s key=%q headers={%s} value=%q\n",
		m.Partition, m.Offset, m.Timestamp.Format(time.RFC3339Nano), m.Key, strings.Join(hs, " "), m.Value)
}
