package network

import (
	"fmt"
	"github.com/vxn-runtime/vxn/tests/testutil"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// inNS runs f on a thread in the namespace at path (sockets it makes stay
// there).
func inNS(t *testing.T, path string, f func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
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

func handle(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	h, closeNS, err := handleAt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeNS)
	return h
}

// vethPair makes a veth pair a (in nsA) - b (in nsB), both up.
func vethPair(t *testing.T, nsA, a, nsB, b string, mac net.HardwareAddr, mtu int) {
	t.Helper()
	ha := handle(t, nsA)
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a, HardwareAddr: mac, MTU: mtu}, PeerName: b}
	if err := ha.LinkAdd(v); err != nil {
		t.Fatalf("veth %s-%s: %v", a, b, err)
	}
	if err := moveLink(nsA, b, nsB); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ ns, name string }{{nsA, a}, {nsB, b}} {
		h := handle(t, x.ns)
		l, err := h.LinkByName(x.name)
		if err == nil {
			err = h.LinkSetUp(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func addAddr(t *testing.T, ns, link, cidr string) {
	t.Helper()
	h := handle(t, ns)
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		t.Fatal(err)
	}
	a.Flags = 0x02 // IFA_F_NODAD: usable at once
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("address %s on %s: %v", cidr, link, err)
	}
}

// TestInterfacesAndJoin builds what an engine and vxn make, with veths
// standing in for the guest's NIC: an "outside" namespace (the engine's
// bridge side) joined by a veth to eth0 in the container's namespace, and
// a "guest" namespace whose NIC's host side starts in a "host" namespace.
// After Join, the outside reaches a server in the guest at eth0's address.
func TestInterfacesAndJoin(t *testing.T) {
	outside, ctr, host, guest := testutil.NamedNetns(t, "out"), testutil.NamedNetns(t, "ctr"), testutil.NamedNetns(t, "host"), testutil.NamedNetns(t, "guest")
	mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x59, 0, 2}
	vethPair(t, ctr, "eth0", outside, "peer0", mac, 1400)
	addAddr(t, ctr, "eth0", "10.89.0.2/24")
	addAddr(t, ctr, "eth0", "fd89::2/64")
	addAddr(t, outside, "peer0", "10.89.0.1/24")
	hc := handle(t, ctr)
	eth0, err := hc.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := hc.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.IPv4(10, 89, 0, 1)}); err != nil {
		t.Fatal(err)
	}
	_, dst, _ := net.ParseCIDR("10.90.0.0/16")
	if err := hc.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Dst: dst, Priority: 7, Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	// A second interface that is down is not the container's.
	if err := hc.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "down0"}, PeerName: "down1"}); err != nil {
		t.Fatal(err)
	}

	links, err := Interfaces(ctr)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 {
		t.Fatalf("interfaces = %+v, want eth0 only", links)
	}
	got := links[0].Config
	want := agent.Interface{
		Name: "eth0", MAC: mac.String(), MTU: 1400,
		Addresses: []string{"10.89.0.2/24", "fd89::2/64"},
		Routes: []agent.Route{
			{Gateway: "10.89.0.1"},
			{Destination: "10.90.0.0/16", Metric: 7, Link: true},
		},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("interface =\n %+v\nwant\n %+v", got, want)
	}

	// The guest's NIC: its host side "vif9.0" in the host namespace.
	vethPair(t, host, "vif9.0", guest, "gnic", mac, 1500)
	addAddr(t, guest, "gnic", "10.89.0.2/24")
	if err := Join(ctr, links[0], host, "vif9.0"); err != nil {
		t.Fatal(err)
	}
	vif, err := hc.LinkByName("vif9.0")
	if err != nil {
		t.Fatalf("the backend is not in the container's namespace: %v", err)
	}
	if vif.Attrs().MTU != 1400 || vif.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("backend: mtu %d flags %v, want 1400 and up", vif.Attrs().MTU, vif.Attrs().Flags)
	}

	// A server in the guest, reached from outside at eth0's address.
	var ln net.Listener
	if err := inNS(t, guest, func() (err error) { ln, err = net.Listen("tcp4", "10.89.0.2:8080"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, _ = io.WriteString(c, "from the guest")
			c.Close()
		}
	}()
	var reply []byte
	err = inNS(t, outside, func() error {
		c, err := net.DialTimeout("tcp4", "10.89.0.2:8080", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		reply, err = io.ReadAll(c)
		return err
	})
	if err != nil || string(reply) != "from the guest" {
		t.Fatalf("outside -> guest: %q, %v", reply, err)
	}

	if err := Leave(ctr, links[0].Index); err != nil {
		t.Fatal(err)
	}
	qs, err := hc.QdiscList(eth0)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Type() == "ingress" {
			t.Errorf("eth0 still has an ingress qdisc after Leave")
		}
	}
	if err := Leave(ctr, links[0].Index); err != nil {
		t.Errorf("second Leave: %v", err)
	}
}

// TestJoinMissingBackend: a backend that is not there is a clear error
// and leaves the container's interface untouched.
func TestJoinMissingBackend(t *testing.T) {
	outside, ctr, host := testutil.NamedNetns(t, "out"), testutil.NamedNetns(t, "ctr"), testutil.NamedNetns(t, "host")
	vethPair(t, ctr, "eth0", outside, "peer0", nil, 1500)
	links, err := Interfaces(ctr)
	if err != nil || len(links) != 1 {
		t.Fatalf("interfaces %+v, %v", links, err)
	}
	if err := Join(ctr, links[0], host, "vif1.0"); err == nil {
		t.Fatal("Join with no backend succeeded")
	}
	qs, err := handle(t, ctr).QdiscList(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: links[0].Index}})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Type() == "ingress" {
			t.Error("eth0 got an ingress qdisc")
		}
	}
}

func TestSameNamespace(t *testing.T) {
	a, b := testutil.NamedNetns(t, "a"), testutil.NamedNetns(t, "b")
	if same, err := SameNamespace(a, a); err != nil || !same {
		t.Errorf("SameNamespace(a, a) = %v, %v", same, err)
	}
	if same, err := SameNamespace(a, b); err != nil || same {
		t.Errorf("SameNamespace(a, b) = %v, %v", same, err)
	}
}
