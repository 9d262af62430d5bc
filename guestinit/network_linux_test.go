package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// inNetns runs fn on a locked OS thread in a new network namespace, which
// goes away with the thread.
func inNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// TestSetupNetwork stands a veth in for the guest's NIC: it appears late,
// under another name, and ends up as the container's eth0.
func TestSetupNetwork(t *testing.T) {
	inNetns(t, func() {
		h, err := netlink.NewHandle()
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		mac := net.HardwareAddr{0x02, 0x42, 0x0a, 0x59, 0, 2}
		added := make(chan error, 1)
		go func() {
			time.Sleep(200 * time.Millisecond)
			added <- h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "nic0", HardwareAddr: mac}, PeerName: "peer0"})
		}()
		n := agent.Network{Interfaces: []agent.Interface{{
			Name: "eth0", MAC: mac.String(), MTU: 1400,
			Addresses: []string{"10.89.0.2/24", "fd89::2/64"},
			Routes: []agent.Route{
				{Gateway: "10.89.0.1", Metric: 5},
				{Destination: "10.90.0.0/16", Link: true},
				{Destination: "fd90::/64", Gateway: "fd89::1"},
			},
		}}}
		start := time.Now()
		if err := setupNetwork(n, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := <-added; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("set up in %v, before the NIC appeared", d)
		}
		lo, err := h.LinkByName("lo")
		if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("lo: %v %v", lo, err)
		}
		eth0, err := h.LinkByName("eth0")
		if err != nil {
			t.Fatalf("no eth0: %v", err)
		}
		if eth0.Attrs().MTU != 1400 || eth0.Attrs().Flags&net.FlagUp == 0 || eth0.Attrs().HardwareAddr.String() != mac.String() {
			t.Errorf("eth0 = %+v", eth0.Attrs())
		}
		addrs, err := h.AddrList(eth0, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range addrs {
			if !a.IP.IsLinkLocalUnicast() {
				got = append(got, a.IPNet.String())
			}
		}
		sort.Strings(got)
		if fmt.Sprint(got) != "[10.89.0.2/24 fd89::2/64]" {
			t.Errorf("addresses %v", got)
		}
		routes, err := h.RouteList(eth0, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		var rs []string
		for _, r := range routes {
			if r.Protocol != unix.RTPROT_KERNEL {
				rs = append(rs, fmt.Sprintf("%v via %v metric %d", r.Dst, r.Gw, r.Priority))
			}
		}
		sort.Strings(rs)
		want := "[0.0.0.0/0 via 10.89.0.1 metric 5|10.90.0.0/16 via <nil> metric 0|fd90::/64 via fd89::1 metric 1024]"
		if g := "[" + strings.Join(rs, "|") + "]"; g != want && g != strings.Replace(want, "0.0.0.0/0", "<nil>", 1) {
			t.Errorf("routes %s, want %s", g, want)
		}
	})
}

// TestSetupNetworkNoNIC: a NIC that never appears is an error once the
// wait is over; an empty network only brings loopback up.
func TestSetupNetworkNoNIC(t *testing.T) {
	inNetns(t, func() {
		if err := setupNetwork(agent.Network{}, time.Second); err != nil {
			t.Fatalf("loopback only: %v", err)
		}
		lo, err := netlink.LinkByName("lo")
		if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("lo not up: %v", err)
		}
		n := agent.Network{Interfaces: []agent.Interface{{Name: "eth0", MAC: "02:00:00:00:00:09", MTU: 1500}}}
		start := time.Now()
		err = setupNetwork(n, 300*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "no network device with that MAC") {
			t.Errorf("missing NIC: %v", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
			t.Errorf("gave up after %v", d)
		}
	})
}
