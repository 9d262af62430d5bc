package lifecycle_test

import (
	"fmt"
	"github.com/vxn-runtime/vxn/tests/testutil"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netns"
)

// inNetns runs f on a thread in the namespace at path (its sockets stay
// there).
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		ns, err := netns.GetFromPath(path)
		if err == nil {
			err = netns.Set(ns)
			ns.Close()
		}
		if err == nil {
			err = f()
		}
		errc <- err
	}()
	return <-errc
}

// TestNetworkDockerHook is Docker's networking against the fake (whose
// NICs are veths): the config's network namespace has no path, and a
// prestart hook puts eth0 into the namespace of the state's pid. The
// container then talks to the outside both ways at eth0's address, with
// eth0's MTU and routes.
func TestNetworkDockerHook(t *testing.T) {
	h := newHarness(t)
	outside := testutil.NamedNetns(t, "outside")
	hook := h.path("netns-hook.sh")
	script := fmt.Sprintf(`#!/bin/sh
set -e
pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
nsenter --net=%s ip link add name out0 mtu 1400 type veth peer name eth0 mtu 1400 netns "$pid"
nsenter --net=%[1]s ip addr add 10.89.3.1/24 dev out0
nsenter --net=%[1]s ip link set out0 up
nsenter --net=/proc/$pid/ns/net sh -ec 'ip addr add 10.89.3.2/24 dev eth0; ip link set eth0 up; ip route add default via 10.89.3.1'
`, outside)
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b := h.bundle(withArgs("sh", "-c", `ip addr show dev eth0; ip route; echo hello-outside | nc 10.89.3.1 9000; echo from-guest | nc -l -p 8080`),
		func(s *specs.Spec) {
			s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: hook, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}}}
		})
	for _, a := range []string{"ip", "nc"} {
		if err := os.Symlink("busybox", filepath.Join(b, "rootfs", "bin", a)); err != nil {
			t.Fatal(err)
		}
	}

	c := h.mustCreate("net", b, nil)
	var ln net.Listener
	if err := inNetns(outside, func() (err error) { ln, err = net.Listen("tcp4", "10.89.3.1:9000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hello := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			hello <- err.Error()
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		buf := make([]byte, len("hello-outside\n"))
		_, _ = io.ReadFull(conn, buf)
		hello <- string(buf)
	}()
	h.mustVxn("start", "net")
	select {
	case got := <-hello:
		if got != "hello-outside\n" {
			t.Fatalf("the outside got %q from the container", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the container did not reach the outside; its output: %q %q", c.output(), c.errOutput())
	}
	var reply []byte
	ok := eventually(20*time.Second, func() bool {
		err := inNetns(outside, func() error {
			conn, err := net.DialTimeout("tcp4", "10.89.3.2:8080", time.Second)
			if err != nil {
				return err
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			reply, err = io.ReadAll(conn)
			return err
		})
		return err == nil && len(reply) > 0
	})
	if !ok || string(reply) != "from-guest\n" {
		t.Fatalf("outside -> container: %q; container output %q %q", reply, c.output(), c.errOutput())
	}
	h.waitStatus("net", specs.StateStopped, 10*time.Second)
	out := c.output()
	for _, want := range []string{"mtu 1400", "inet 10.89.3.2/24", "default via 10.89.3.1 dev eth0"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q:\n%s", want, out)
		}
	}
	h.mustVxn("delete", "net")
	h.assertGone("net")
}
