package remoting

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// fakeServer accepts one connection and hands every frame it reads to
// serve, which may write to the connection (under mu).
type fakeServer struct {
	ln   net.Listener
	mu   sync.Mutex
	conn net.Conn
	wg   sync.WaitGroup
}

func startFake(t *testing.T, serve func(s *fakeServer, cmd *Command)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conn = conn
		s.mu.Unlock()
		br := bufio.NewReader(conn)
		for {
			cmd, err := ReadCommand(br, 0)
			if err != nil {
				return
			}
			serve(s, cmd)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.closeConn()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) send(cmd *Command) error {
	b, err := cmd.Encode()
	if err != nil {
		return err
	}
	return s.sendRaw(b)
}

func (s *fakeServer) sendRaw(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return errors.New("no connection")
	}
	_, err := s.conn.Write(b)
	return err
}

func (s *fakeServer) closeConn() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
	}
}

func dial(t *testing.T, s *fakeServer, opts ...Option) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.ln.Addr().String(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestInvokeConcurrentOutOfOrder answers requests in reverse arrival order
// (batches of 10); every caller must get its own answer.
func TestInvokeConcurrentOutOfOrder(t *testing.T) {
	var mu sync.Mutex
	var held []*Command
	s := startFake(t, func(s *fakeServer, cmd *Command) {
		mu.Lock()
		held = append(held, cmd)
		batch := held
		if len(held) == 10 {
			held = nil
		}
		mu.Unlock()
		if len(batch) == 10 {
			for i := len(batch) - 1; i >= 0; i-- {
				r := NewResponse(batch[i], Success, "")
				r.ExtFields["echo"] = batch[i].Ext("n")
				r.Body = batch[i].Body
				s.send(r)
			}
		}
	})
	c := dial(t, s)
	const n = 100
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req := NewRequest(QueryConsumerOffset, map[string]string{"n": strconv.Itoa(i)}, []byte{byte(i)})
			resp, err := c.Invoke(ctx, req)
			switch {
			case err != nil:
				errs <- err
			case resp.Ext("echo") != strconv.Itoa(i) || len(resp.Body) != 1 || resp.Body[0] != byte(i) || !resp.IsResponse():
				errs <- fmt.Errorf("call %d got %v", i, resp)
			case req.Opaque != 0:
				errs <- fmt.Errorf("caller's request was modified: opaque %d", req.Opaque)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServerRequestHandler(t *testing.T) {
	answers := make(chan *Command, 1)
	s := startFake(t, func(s *fakeServer, cmd *Command) {
		if cmd.IsResponse() {
			answers <- cmd
		}
	})
	got := make(chan *Command, 1)
	c := dial(t, s, WithRequestHandler(func(req *Command) *Command {
		got <- req
		r := NewResponse(req, Success, "rebalanced")
		r.Opaque = 0 // the client sets it
		r.Flag = 0
		return r
	}))
	_ = c
	waitConn(t, s)
	req := NewRequest(NotifyConsumerIDsChanged, map[string]string{"consumerGroup": "g"}, nil)
	req.Opaque = 99
	if err := s.send(req); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.Code != NotifyConsumerIDsChanged || r.Ext("consumerGroup") != "g" {
			t.Fatalf("handler got %v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler not called")
	}
	select {
	case a := <-answers:
		if a.Opaque != 99 || !a.IsResponse() || a.Remark != "rebalanced" {
			t.Fatalf("answer %v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no answer")
	}
}

func waitConn(t *testing.T, s *fakeServer) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s.mu.Lock()
		ok := s.conn != nil
		s.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("server saw no connection")
}

func TestInvokeContextDeadline(t *testing.T) {
	s := startFake(t, func(*fakeServer, *Command) {}) // never answers
	c := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Invoke(ctx, NewRequest(GetMaxOffset, nil, nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %v", d)
	}
	c.mu.Lock()
	left := len(c.pending)
	c.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d pending entries left", left)
	}
}

func TestConnectionLossFailsCalls(t *testing.T) {
	arrived := make(chan struct{})
	s := startFake(t, func(s *fakeServer, cmd *Command) { close(arrived) })
	c := dial(t, s)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Invoke(context.Background(), NewRequest(GetMaxOffset, nil, nil))
		errc <- err
	}()
	<-arrived
	s.closeConn()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call not failed after connection loss")
	}
	<-c.Done()
	if !errors.Is(c.Err(), ErrClosed) {
		t.Fatalf("Err %v", c.Err())
	}
	if _, err := c.Invoke(context.Background(), NewRequest(GetMaxOffset, nil, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("after loss: %v", err)
	}
}

func TestOversizeFrameClosesClient(t *testing.T) {
	s := startFake(t, func(s *fakeServer, cmd *Command) {
		r := NewResponse(cmd, Success, "")
		r.Body = make([]byte, 2048)
		s.send(r)
	})
	c := dial(t, s, WithMaxFrame(1024))
	_, err := c.Invoke(context.Background(), NewRequest(PullMessage, nil, nil))
	if !errors.Is(err, ErrClosed) || !errors.Is(c.Err(), ErrFrame) {
		t.Fatalf("err %v, Err %v", err, c.Err())
	}
}

func TestOnewayAndClose(t *testing.T) {
	got := make(chan *Command, 1)
	s := startFake(t, func(s *fakeServer, cmd *Command) { got <- cmd })
	c := dial(t, s)
	if err := c.InvokeOneway(context.Background(), NewRequest(UpdateConsumerOffset, map[string]string{"commitOffset": "7"}, nil)); err != nil {
		t.Fatal(err)
	}
	select {
	case cmd := <-got:
		if cmd.Code != UpdateConsumerOffset || cmd.Ext("commitOffset") != "7" || cmd.Opaque == 0 {
			t.Fatalf("server got %v", cmd)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("oneway not received")
	}
	c.Close()
	c.Close() // idempotent
	if err := c.InvokeOneway(context.Background(), NewRequest(HeartBeat, nil, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("oneway after close: %v", err)
	}
	if _, err := c.Invoke(context.Background(), NewRequest(HeartBeat, nil, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("invoke after close: %v", err)
	}
}
