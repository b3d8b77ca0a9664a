package main

import (
	"fmt"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/producer"
)

func cmdSend(e *env, args []string) error {
	fs := e.flags()
	addr := fs.String("addr", "127.0.0.1:9613", "pproxy Thrift address")
	topic := fs.String("topic", "", "topic")
	key := fs.String("key", "", "message key")
	tag := fs.String("tag", "", "message tags")
	n := fs.Int("n", 1, "number of messages")
	body := fs.String("body", "", `message body (default "message <i> from carreractl")`)
	timeout := fs.Int64("timeout", 50, "proxy-side timeout in ms, as the SDKs send it (<= 0: none)")
	ioTimeout := fs.Duration("io-timeout", 10*time.Second, "connect and socket timeout")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if err := required(fs, "addr", "topic"); err != nil {
		return err
	}
	if *n < 1 {
		return usageErr(fs, "-n must be >= 1")
	}

	conf := &thrift.TConfiguration{ConnectTimeout: *ioTimeout, SocketTimeout: *ioTimeout}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(*addr, conf), conf)
	if err := trans.Open(); err != nil {
		return fmt.Errorf("connect to %s: %w", *addr, err)
	}
	defer trans.Close()
	client := producer.NewProducerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(conf))

	failed := 0
	for i := 1; i <= *n; i++ {
		msg := producer.NewMessage()
		msg.Topic, msg.Key, msg.Tags = *topic, *key, *tag
		if *body != "" {
			msg.Body = []byte(*body)
		} else {
			msg.Body = fmt.Appendf(nil, "message %d from carreractl", i)
		}
		start := time.Now()
		res, err := client.SendSync(e.ctx, msg, *timeout)
		if err != nil {
			return fmt.Errorf("message %d/%d: %w", i, *n, err)
		}
		fmt.Fprintf(e.stdout, "%d/%d code=%d msg=%q (%v)\n", i, *n, res.Code, res.Msg,
			time.Since(start).Round(time.Microsecond))
		if res.Code != 0 {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d messages not OK", failed, *n)
	}
	return nil
}
