package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vxn-runtime/vxn/tests/testutil"
)

// The container's side of the network tests: it prints what it got, says
// hello to a server in dom0, sends it netBulk bytes, then serves one
// connection from dom0.
const (
	netMTU         = 1400
	netBulk        = 16 << 20
	netGuestScript = `set -e
echo "mtu=$(cat /sys/class/net/eth0/mtu)"
ip addr show dev eth0
ip route
echo hello-dom0 | nc %[1]s 9000
dd if=/dev/zero bs=65536 count=%[2]d 2>/dev/null | nc %[1]s 9001
echo from-guest | nc -l -p 8080
echo done`
)

// ip runs ip(8) in dom0.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// netBundle is a busybox bundle running netGuestScript against dom0 at
// hostIP.
func netBundle(t *testing.T, hostIP string) (string, *specs.Spec) {
	b, spec := testutil.Bundle(t, "sh", "-c", fmt.Sprintf(netGuestScript, hostIP, netBulk/65536))
	for _, a := range []string{"ip", "nc"} {
		if err := os.Symlink("busybox", filepath.Join(b, "rootfs", "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return b, spec
}

// hostVeth makes a veth pair in dom0: host (with hostCIDR, up) and peer,
// both with netMTU. The peer is what the engine would move into the
// container's namespace.
func hostVeth(t *testing.T, host, peer, hostCIDR string) {
	ip(t, "link", "add", "name", host, "mtu", fmt.Sprint(netMTU), "type", "veth", "peer", "name", peer, "mtu", fmt.Sprint(netMTU))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", host).Run() })
	ip(t, "addr", "add", hostCIDR, "dev", host)
	ip(t, "link", "set", host, "up")
}

// peerSetup is the shell commands that make peer the container's eth0 in
// the namespace file $ns, as an engine does.
func peerSetup(peer, cidr, gw string) string {
	return fmt.Sprintf(`nsenter --net="$ns" sh -ec 'ip link set %s name eth0 && ip addr add %s dev eth0 && ip link set eth0 up && ip route add default via %s'`, peer, cidr, gw)
}

// runNetContainer runs the container of bundle b and plays dom0's part:
// a server at hostIP that takes the container's hello and bulk data, then
// a client of the container's server at guestIP. It returns the
// container's output and the time the network attach took in create.
func runNetContainer(t *testing.T, c testutil.CLI, id, b, hostIP, guestIP string) (string, time.Duration) {
	hello, err := net.Listen("tcp4", hostIP+":9000")
	if err != nil {
		t.Fatal(err)
	}
	defer hello.Close()
	bulk, err := net.Listen("tcp4", hostIP+":9001")
	if err != nil {
		t.Fatal(err)
	}
	defer bulk.Close()
	type got struct {
		s   string
		n   int64
		dur time.Duration
		err error
	}
	helloCh, bulkCh := make(chan got, 1), make(chan got, 1)
	go func() {
		conn, err := hello.Accept()
		if err != nil {
			helloCh <- got{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(3 * time.Minute))
		buf := make([]byte, len("hello-dom0\n"))
		_, err = io.ReadFull(conn, buf)
		helloCh <- got{s: string(buf), err: err}
	}()
	go func() {
		conn, err := bulk.Accept()
		if err != nil {
			bulkCh <- got{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Minute))
		start := time.Now()
		n, err := io.CopyN(io.Discard, conn, netBulk)
		bulkCh <- got{n: n, dur: time.Since(start), err: err}
	}()

	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := c.Command("create", "--bundle", b, id)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		o, _ := os.ReadFile(out.Name())
		t.Fatalf("create: %v: %s", err, o)
	}
	t.Logf("TIMING create with network: %s", time.Since(start).Round(time.Millisecond))
	mlog, _ := os.ReadFile(filepath.Join(c.Root, id, "monitor.log"))
	m := regexp.MustCompile(`network: 1 interface\(s\) of .* attached in (\S+) \(host side (\S+)\)`).FindStringSubmatch(string(mlog))
	if m == nil {
		t.Fatalf("monitor log has no network attach line:\n%s", mlog)
	}
	attach, _ := time.ParseDuration(m[1])
	t.Logf("TIMING network attach: %s (host side %s)", m[1], m[2])
	c.MustRun(t, "start", id)

	if g := <-helloCh; g.err != nil || g.s != "hello-dom0\n" {
		t.Fatalf("dom0 server got %q, %v", g.s, g.err)
	}
	if g := <-bulkCh; g.err != nil || g.n != netBulk {
		t.Fatalf("bulk: %d bytes, %v", g.n, g.err)
	} else {
		t.Logf("THROUGHPUT guest -> dom0: %d MiB in %s: %.1f MB/s", netBulk>>20, g.dur.Round(time.Millisecond), float64(netBulk)/g.dur.Seconds()/1e6)
	}
	var reply []byte
	deadline := time.Now().Add(2 * time.Minute)
	for {
		conn, err := net.DialTimeout("tcp4", guestIP+":8080", 5*time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(time.Minute))
			reply, err = io.ReadAll(conn)
			conn.Close()
			if err == nil && len(reply) > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dom0 -> container %s:8080: %q, %v", guestIP, reply, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if string(reply) != "from-guest\n" {
		t.Errorf("dom0 -> container: %q", reply)
	}
	c.WaitStatus(t, id, specs.StateStopped, 2*time.Minute)
	o, _ := os.ReadFile(out.Name())
	return string(o), attach
}

// checkGuestNet checks what the container printed about its network.
func checkGuestNet(t *testing.T, out, cidr, gw string) {
	for _, want := range []string{fmt.Sprintf("mtu=%d\n", netMTU), "inet " + cidr, "default via " + gw + " dev eth0", "done\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q:\n%s", want, out)
		}
	}
}

// TestNetworkDockerHook is Docker's way: a network namespace without a
// path, and a prestart hook that moves the container's veth into the
// namespace of the state's pid (the monitor's).
func TestNetworkDockerHook(t *testing.T) {
	c := cli(t)
	hostVeth(t, "vxnh1", "vxnc1", "10.89.1.1/24")
	b, spec := netBundle(t, "10.89.1.1")
	hook := filepath.Join(t.TempDir(), "netns-hook")
	script := `#!/bin/sh
set -e
pid=$(sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
ns=/proc/$pid/ns/net
ip link set vxnc1 netns "$pid"
` + peerSetup("vxnc1", "10.89.1.2/24", "10.89.1.1") + "\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	spec.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: hook, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}}}}
	testutil.WriteSpec(t, b, spec)
	out, _ := runNetContainer(t, c, "netdocker", b, "10.89.1.1", "10.89.1.2")
	checkGuestNet(t, out, "10.89.1.2/24", "10.89.1.1")
	c.MustRun(t, "delete", "netdocker")
	assertClean(t, c, "netdocker")
	// The namespace went with the monitor, and the veth with it (the
	// kernel frees a namespace in the background).
	for deadline := time.Now().Add(30 * time.Second); exec.Command("ip", "link", "show", "vxnh1").Run() == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Error("the host's end of the container's veth outlived the container")
			break
		}
	}
}

// TestNetworkNamespacePath is podman's way: the engine made the namespace
// and its eth0 before create, and the config names it.
func TestNetworkNamespacePath(t *testing.T) {
	c := cli(t)
	name := "vxn-e2e-net"
	ip(t, "netns", "add", name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	hostVeth(t, "vxnh2", "vxnc2", "10.89.2.1/24")
	ns := "/run/netns/" + name
	ip(t, "link", "set", "vxnc2", "netns", name)
	setup := exec.Command("sh", "-c", peerSetup("vxnc2", "10.89.2.2/24", "10.89.2.1"))
	setup.Env = append(os.Environ(), "ns="+ns)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("setting the namespace up: %v: %s", err, out)
	}
	b, spec := netBundle(t, "10.89.2.1")
	for i, n := range spec.Linux.Namespaces {
		if n.Type == specs.NetworkNamespace {
			spec.Linux.Namespaces[i].Path = ns
		}
	}
	testutil.WriteSpec(t, b, spec)
	out, _ := runNetContainer(t, c, "netpath", b, "10.89.2.1", "10.89.2.2")
	checkGuestNet(t, out, "10.89.2.2/24", "10.89.2.1")
	c.MustRun(t, "delete", "netpath")
	assertClean(t, c, "netpath")
	// eth0 is as the engine made it: no qdisc of vxn's, no vif.
	tc, err := exec.Command("ip", "netns", "exec", name, "tc", "qdisc", "show", "dev", "eth0").CombinedOutput()
	if err != nil || strings.Contains(string(tc), "ingress") {
		t.Errorf("eth0 after delete: %v: %s", err, tc)
	}
	links, _ := exec.Command("ip", "netns", "exec", name, "ip", "-o", "link").CombinedOutput()
	if strings.Contains(string(links), "vif") {
		t.Errorf("a vif is left in the namespace:\n%s", links)
	}
}
