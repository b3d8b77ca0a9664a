package daemon

import (
	"context"
	"errors"
	"net"
	"testing"

	"go.uber.org/zap"
)

type fakeServer struct {
	startErr error
	started  bool
	stopped  bool
}

func (f *fakeServer) Start() error                   { f.started = f.startErr == nil; return f.startErr }
func (f *fakeServer) Addr() net.Addr                 { return nil }
func (f *fakeServer) Shutdown(context.Context) error { f.stopped = true; return nil }

func TestStartAllRollsBack(t *testing.T) {
	a, b, c := &fakeServer{}, &fakeServer{startErr: errors.New("port in use")}, &fakeServer{}
	if err := StartAll(a, b, c); err == nil || err.Error() != "port in use" {
		t.Fatalf("err %v", err)
	}
	if !a.stopped || b.stopped || c.started {
		t.Fatalf("a stopped %v, b stopped %v, c started %v", a.stopped, b.stopped, c.started)
	}
	if err := StartAll(a, c); err != nil || !c.started {
		t.Fatalf("all start: %v", err)
	}
}

func TestListenAddr(t *testing.T) {
	log := zap.NewNop()
	if got := ListenAddr("", 9613, 0, log); got != ":9613" {
		t.Fatal(got)
	}
	if got := ListenAddr("127.0.0.1:0", 9613, 9999, log); got != "127.0.0.1:0" {
		t.Fatal(got)
	}
}
