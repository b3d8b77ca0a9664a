package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	rm "github.com/ddmq-go/carrera/internal/rocketmq/remoting"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestRunServesAndStops starts two brokers on free ports, routes a topic
// created through one of them and stops on context cancellation.
func TestRunServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-listen", "127.0.0.1:0", "-brokers", "broker-a,broker-b", "-data", t.TempDir(), "-log", "error"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr) //nolint:errcheck // drains until the pipe closes
	if err != nil {
		cancel()
		t.Fatalf("no ready line: %v (run: %v)", err, <-errc)
	}
	fields := map[string]string{}
	for _, f := range strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "rmqbroker listening ")) {
		k, v, _ := strings.Cut(f, "=")
		fields[k] = v
	}
	if fields["nameserver"] == "" || fields["broker-a"] == "" || fields["broker-b"] == "" {
		cancel()
		t.Fatalf("ready line %q", line)
	}

	call := func(addr string, code int16, ext map[string]string) *rm.Command {
		t.Helper()
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		c, err := rm.Dial(cctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		resp, err := c.Invoke(cctx, rm.NewRequest(code, ext, nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := call(fields["broker-b"], rm.CreateTopic, map[string]string{"topic": "t", "readQueueNums": "2", "writeQueueNums": "2"}); r.Code != rm.Success {
		t.Fatalf("create topic: %d %s", r.Code, r.Remark)
	}
	r := call(fields["nameserver"], rm.GetRouteInfoByTopic, map[string]string{"topic": "t"})
	if r.Code != rm.Success || !strings.Contains(string(r.Body), fields["broker-b"]) || strings.Contains(string(r.Body), fields["broker-a"]) {
		t.Fatalf("route: %d %s", r.Code, r.Body)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestBrokerAddrs(t *testing.T) {
	got, err := brokerAddrs("127.0.0.1:9876", "", 2)
	if err != nil || strings.Join(got, ",") != "127.0.0.1:9877,127.0.0.1:9878" {
		t.Fatalf("%v %v", got, err)
	}
	got, err = brokerAddrs("127.0.0.1:0", "", 1)
	if err != nil || got[0] != "127.0.0.1:0" {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := brokerAddrs("127.0.0.1:0", "a:1", 2); err == nil {
		t.Fatal("mismatched -broker-listen accepted")
	}
}

// TestRetentionFlag: with -retention-bytes the broker drops the oldest
// messages and GET_MIN_OFFSET moves; a negative value is refused.
func TestRetentionFlag(t *testing.T) {
	if err := run(context.Background(), []string{"-retention-bytes", "-1"}, io.Discard); err == nil {
		t.Fatal("negative -retention-bytes accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-listen", "127.0.0.1:0", "-retention-bytes", "65536", "-log", "error"}, pw)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	go io.Copy(io.Discard, pr) //nolint:errcheck // drains until the pipe closes
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	if err != nil {
		t.Fatalf("no ready line: %v", err)
	}
	_, addr, _ := strings.Cut(strings.Fields(line)[3], "=")
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	c, err := rm.Dial(cctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := make([]byte, 1024)
	for range 300 {
		resp, err := c.Invoke(cctx, rm.NewRequest(rm.SendMessage, map[string]string{"topic": "r", "queueId": "0"}, body))
		if err != nil || resp.Code != rm.Success {
			t.Fatalf("send: %v %v", resp, err)
		}
	}
	resp, err := c.Invoke(cctx, rm.NewRequest(rm.GetMinOffset, map[string]string{"topic": "r", "queueId": "0"}, nil))
	if err != nil || resp.Code != rm.Success || resp.Ext("offset") == "0" {
		t.Fatalf("min offset after 300 KiB with a 64 KiB limit: %v %v", resp, err)
	}
}
