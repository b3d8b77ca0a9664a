package testenv

import (
	"errors"
	"testing"

	"github.com/go-zookeeper/zk"
)

func TestZooKeeperLifecycle(t *testing.T) {
	z := StartZooKeeper(t, WithTickTime(500))
	if !z.Running() || !ZKServing(z.Addr) {
		t.Fatal("ZooKeeper not serving after StartZooKeeper")
	}
	if got := z.ConnectString("/carrera/v4/config"); got != z.Addr+"/carrera/v4/config" {
		t.Fatalf("ConnectString = %q", got)
	}

	const chroot = "/carrera/v4/config"
	SeedZK(t, z.Addr, chroot, map[string][]byte{
		"/topic/a":             []byte(`{"topic":"a"}`),
		"/pproxy/1.2.3.4:9613": []byte(`{}`),
	})
	SeedZK(t, z.Addr, chroot, map[string][]byte{"/topic/a": []byte(`{"topic":"a2"}`)}) // overwrite

	check := func(full, want string) {
		t.Helper()
		conn := zkDial(t, z.Addr)
		defer conn.Close()
		data, _, err := conn.Get(full)
		if err != nil || string(data) != want {
			t.Fatalf("Get(%s) = %q, %v; want %q", full, data, err, want)
		}
	}
	check("/carrera", "default")
	check(chroot+"/topic", "default")
	check(chroot+"/topic/a", `{"topic":"a2"}`)

	z.Stop()
	if z.Running() || ZKServing(z.Addr) {
		t.Fatal("ZooKeeper still serving after Stop")
	}
	z.Stop() // idempotent

	z.Restart()
	check(chroot+"/pproxy/1.2.3.4:9613", `{}`) // data directory kept

	DeleteZK(t, z.Addr, chroot, "/topic/a", "/topic/missing")
	conn := zkDial(t, z.Addr)
	defer conn.Close()
	if _, _, err := conn.Get(chroot + "/topic/a"); !errors.Is(err, zk.ErrNoNode) {
		t.Fatalf("after DeleteZK: %v", err)
	}
}
