package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ddmq-go/carrera/internal/chronos"
	"github.com/ddmq-go/carrera/internal/chronos/bodyext"
	"github.com/ddmq-go/carrera/internal/chronos/delayid"
	"github.com/ddmq-go/carrera/internal/daemon"
	"github.com/ddmq-go/carrera/internal/logx"
)

// directEnv names the environment variable that turns this program into
// the direct-ingestion child: a delay service (chronos.Run, pullOn false)
// whose engine is fed synthetic inner messages in this process, so the
// parent measures the store + seek loop without pproxy and cproxy on the
// ingest path (deliveries still go through pproxy to the broker).
const directEnv = "BENCHDELAY_DIRECT"

// directParams is the child's job, passed as JSON in directEnv.
type directParams struct {
	Conf    string `json:"conf"`    // chronos YAML
	GoFile  string `json:"goFile"`  // ingestion starts when this file exists; it holds the first fire second
	N       int    `json:"n"`       // messages
	Phase   uint32 `json:"phase"`   // uuid prefix
	Topic   string `json:"topic"`   // user topic
	Spread  int64  `json:"spread"`  // seconds
	Body    int    `json:"body"`    // body bytes
	Workers int    `json:"workers"` // concurrent Ingest callers
	Batch   int    `json:"batch"`   // messages per Ingest
}

// directDone is the line the child logs when ingestion is complete.
const directDone = "DIRECT-INGESTED"

// runDirectChild runs the child if directEnv is set; it reports whether it
// did and the exit code.
func runDirectChild() (bool, int) {
	spec := os.Getenv(directEnv)
	if spec == "" {
		return false, 0
	}
	var p directParams
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		fmt.Fprintln(os.Stderr, "benchdelay direct child:", err)
		return true, 1
	}
	cfg, err := chronos.LoadConfig(p.Conf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdelay direct child:", err)
		return true, 1
	}
	log, _, err := logx.New("info", "", "chronos")
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchdelay direct child:", err)
		return true, 1
	}
	ctx, stop := daemon.SignalContext(context.Background())
	defer stop()
	engines := make(chan *chronos.Engine, 1)
	go generate(ctx, p, engines)
	if err := chronos.Run(ctx, chronos.Options{Config: cfg, Logger: log, OnEngine: func(e *chronos.Engine) { engines <- e }}); err != nil {
		fmt.Fprintln(os.Stderr, "benchdelay direct child:", err)
		return true, 1
	}
	return true, 0
}

// generate waits for the engine and the go file, then ingests p.N
// messages from p.Workers goroutines and logs directDone with the time
// it took.
func generate(ctx context.Context, p directParams, engines <-chan *chronos.Engine) {
	var e *chronos.Engine
	select {
	case e = <-engines:
	case <-ctx.Done():
		return
	}
	var first int64
	for {
		if b, err := os.ReadFile(p.GoFile); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				first = v
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	body := make([]byte, p.Body)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range p.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msgs := make([]chronos.InnerMessage, 0, p.Batch)
			for ctx.Err() == nil {
				lo := int(next.Add(int64(p.Batch))) - p.Batch
				if lo >= p.N {
					return
				}
				hi := min(lo+p.Batch, p.N)
				msgs = msgs[:0]
				for i := lo; i < hi; i++ {
					ts := first + fireOffset(i, p.Spread)
					id := delayid.ID{Timestamp: ts, Type: delayid.Delay, Expire: ts + 172800, UUID: uuidOf(p.Phase, i)}.String()
					msgs = append(msgs, chronos.InnerMessage{Offset: int64(i),
						Value: bodyext.Encode(p.Topic, id, bodyext.ActionAdd, body, "", nil)})
				}
				for ctx.Err() == nil {
					if _, err := e.Ingest(msgs); err == nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "%s %d %.6f\n", directDone, p.N, time.Since(start).Seconds())
	}
}
