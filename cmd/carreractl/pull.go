package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/ddmq-go/carrera/gen-go/carrera/consumer"
)

// dialConsumer opens a framed + compact Thrift connection to a cproxy.
func dialConsumer(addr string, ioTimeout time.Duration) (*consumer.ConsumerServiceClient, func(), error) {
	conf := &thrift.TConfiguration{ConnectTimeout: ioTimeout, SocketTimeout: ioTimeout}
	trans := thrift.NewTFramedTransportConf(thrift.NewTSocketConf(addr, conf), conf)
	if err := trans.Open(); err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	client := consumer.NewConsumerServiceClientFactory(trans, thrift.NewTCompactProtocolFactoryConf(conf))
	return client, func() { trans.Close() }, nil
}

// pullError describes a PullException (or any other error) of a call.
func pullError(call string, err error) error {
	var pe *consumer.PullException
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: PullException code=%d: %s", call, pe.Code, pe.Message)
	}
	return fmt.Errorf("%s: %w", call, err)
}

func cmdPull(e *env, args []string) error {
	fs := e.flags()
	addr := fs.String("addr", "127.0.0.1:9713", "cproxy Thrift address")
	group := fs.String("group", "", "consumer group")
	topic := fs.String("topic", "", "topic (default: any topic of the group)")
	n := fs.Int("n", 1, "stop after N messages; 0: pull until idle (starts an idle group)")
	batch := fs.Int("batch", 8, "maxBatchSize of each pull")
	linger := fs.Int("linger", 200, "maxLingerTime of each pull in ms")
	nackFirst := fs.Bool("nack-first", false, "fail every message the first time it arrives (it is redelivered), acknowledge it the second time")
	idle := fs.Duration("idle", 5*time.Second, "stop after this long without a message")
	ioTimeout := fs.Duration("io-timeout", 10*time.Second, "connect and socket timeout")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if err := required(fs, "addr", "group"); err != nil {
		return err
	}
	switch {
	case *n < 0:
		return usageErr(fs, "-n must be >= 0")
	case *batch < 1:
		return usageErr(fs, "-batch must be >= 1")
	case *linger < 0:
		return usageErr(fs, "-linger must be >= 0")
	case *idle <= 0:
		return usageErr(fs, "-idle must be > 0")
	case time.Duration(*linger)*time.Millisecond >= *ioTimeout:
		return usageErr(fs, "-linger must be shorter than -io-timeout")
	}

	client, closeConn, err := dialConsumer(*addr, *ioTimeout)
	if err != nil {
		return err
	}
	defer closeConn()

	var (
		ack      *consumer.ConsumeResult_ // acknowledgement of the last batch, sent with the next call
		got      int
		nacked   = map[string]bool{} // qid/offset failed once (-nack-first)
		lastMsg  = time.Now()
		ml       = int32(*linger)
		finalErr error
		idled    bool
	)
	for (*n == 0 || got < *n) && e.ctx.Err() == nil {
		if time.Since(lastMsg) >= *idle {
			fmt.Fprintf(e.stderr, "%d message(s); idle for %v, stopping\n", got, *idle)
			idled = true
			if *n > 0 && got < *n {
				finalErr = fmt.Errorf("fewer messages than -n (%d of %d)", got, *n)
			}
			break
		}
		bs := int32(*batch)
		if *n > 0 && !*nackFirst {
			// Never take more than still wanted: extra messages would stay
			// in flight unacknowledged until the proxy redelivers them.
			bs = int32(min(*batch, *n-got))
		}
		req := &consumer.PullRequest{GroupId: *group, MaxBatchSize: &bs, MaxLingerTime: &ml, Result_: ack}
		if *topic != "" {
			req.Topic = topic
		}
		resp, err := client.Pull(e.ctx, req)
		if err != nil {
			if e.ctx.Err() != nil {
				break
			}
			return pullError("pull", err)
		}
		ack = nil
		if len(resp.GetMessages()) == 0 {
			continue
		}
		lastMsg = time.Now()
		c := resp.GetContext()
		fmt.Fprintf(e.stdout, "context group=%s topic=%s qid=%s messages=%d\n",
			c.GetGroupId(), c.GetTopic(), c.GetQid(), len(resp.Messages))
		ack = &consumer.ConsumeResult_{Context: c, SuccessOffsets: []int64{}, FailOffsets: []int64{}}
		for _, m := range resp.Messages {
			id := fmt.Sprintf("%s/%d", c.GetQid(), m.Offset)
			if *nackFirst && !nacked[id] {
				nacked[id] = true
				ack.FailOffsets = append(ack.FailOffsets, m.Offset)
				fmt.Fprintf(e.stdout, "  nack %s\n", formatMessage(m))
				continue
			}
			if *n > 0 && got >= *n {
				// Only with -nack-first can a batch exceed what is wanted:
				// hand the rest back.
				ack.FailOffsets = append(ack.FailOffsets, m.Offset)
				continue
			}
			got++
			ack.SuccessOffsets = append(ack.SuccessOffsets, m.Offset)
			fmt.Fprintf(e.stdout, "  %s\n", formatMessage(m))
		}
	}
	if ack != nil {
		// The last batch's acknowledgement: no further pull carries it.
		ctx, cancel := context.WithTimeout(context.Background(), *ioTimeout)
		ok, err := client.Submit(ctx, ack)
		cancel()
		if err != nil {
			return pullError("submit", err)
		}
		if !ok {
			return errors.New("submit: cproxy answered false")
		}
	}
	if !idled {
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		fmt.Fprintf(e.stderr, "%d message(s)\n", got)
	}
	return finalErr
}

func formatMessage(m *consumer.Message) string {
	keys := make([]string, 0, len(m.Properties))
	for k := range m.Properties {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ps := make([]string, len(keys))
	for i, k := range keys {
		ps[i] = fmt.Sprintf("%s=%q", k, m.Properties[k])
	}
	return fmt.Sprintf("offset=%d key=%q tag=%q properties={%s} value=%q",
		m.Offset, m.Key, m.Tag, strings.Join(ps, " "), m.Value)
}

func cmdStats(e *env, args []string) error {
	fs := e.flags()
	addr := fs.String("addr", "127.0.0.1:9713", "cproxy Thrift address")
	group := fs.String("group", "", "consumer group")
	topic := fs.String("topic", "", "topic (default: every topic of the group)")
	ioTimeout := fs.Duration("io-timeout", 10*time.Second, "connect and socket timeout")
	if err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if err := required(fs, "addr", "group"); err != nil {
		return err
	}
	client, closeConn, err := dialConsumer(*addr, *ioTimeout)
	if err != nil {
		return err
	}
	defer closeConn()
	req := &consumer.ConsumeStatsRequest{Group: *group}
	if *topic != "" {
		req.Topic = topic
	}
	stats, err := client.GetConsumeStats(e.ctx, req)
	if err != nil {
		return pullError("getConsumeStats", err)
	}
	if len(stats) == 0 {
		return fmt.Errorf("no consume stats for group %q (not served by %s, or no such topic)", *group, *addr)
	}
	sort.SliceStable(stats, func(i, j int) bool { return stats[i].GetTopic() < stats[j].GetTopic() })
	var total int64
	uncommitted := 0 // qids with messages but no committed offset: lag unknown
	for _, st := range stats {
		qids := map[string]bool{}
		for q := range st.ProduceOffsets {
			qids[q] = true
		}
		for q := range st.ConsumeOffsets {
			qids[q] = true
		}
		sorted := make([]string, 0, len(qids))
		for q := range qids {
			sorted = append(sorted, q)
		}
		sort.Slice(sorted, func(i, j int) bool { return qidLess(sorted[i], sorted[j]) })
		for _, q := range sorted {
			consumed, cok := st.ConsumeOffsets[q]
			produced, pok := st.ProduceOffsets[q]
			cs, ps, lag := "-", "-", "-"
			if cok {
				cs = fmt.Sprint(consumed)
			}
			if pok {
				ps = fmt.Sprint(produced)
			}
			if cok && pok {
				l := max(produced-consumed, 0)
				total += l
				lag = fmt.Sprint(l)
			} else if pok && produced > 0 {
				uncommitted++
			}
			fmt.Fprintf(e.stdout, "group=%s topic=%s qid=%s consumed=%s produced=%s lag=%s\n",
				st.GetGroup(), st.GetTopic(), q, cs, ps, lag)
		}
	}
	if uncommitted > 0 {
		fmt.Fprintf(e.stdout, "total lag=? (%d qid(s) with messages have no committed offset yet)\n", uncommitted)
	} else {
		fmt.Fprintf(e.stdout, "total lag=%d\n", total)
	}
	return nil
}

// qidLess orders "<cluster>_<n>" qids by cluster, then numerically.
func qidLess(a, b string) bool {
	ia, ib := strings.LastIndexByte(a, '_'), strings.LastIndexByte(b, '_')
	if ia >= 0 && ib >= 0 && a[:ia] == b[:ib] && len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func cmdGroupPut(e *env, args []string) error {
	return putNamed(e, args, "group", "/group/")
}

func cmdCProxyPut(e *env, args []string) error {
	return putNamed(e, args, "instance", "/cproxy/")
}
