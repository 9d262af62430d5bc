package monitor_test

import (
	"github.com/vxn-runtime/vxn/tests/testutil"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/monitor"
)

func withNetns(path string) option {
	return withConfig(func(c *monitor.Config) { c.Netns = path })
}

// TestMonitorNetworkLoopbackOnly: without a network namespace the guest is
// told to keep loopback only, and the guest's answer is the result.
func TestMonitorNetworkLoopbackOnly(t *testing.T) {
	t.Parallel()
	for _, guestErr := range []string{"", "no eth0 for you"} {
		h := newHarness(t)
		h.boot()
		res := h.callAsync(monitor.Request{Op: monitor.OpNetwork})
		f := h.g.mustTake(t, agent.TypeNetwork, 0)
		n, err := agent.DecodeNetwork(f.Payload)
		if err != nil || len(n.Interfaces) != 0 {
			t.Errorf("network %+v, %v; want no interfaces", n, err)
		}
		h.g.mustSendJSON(t, agent.TypeNetworkDone, 0, agent.Error{Message: guestErr})
		r := await(t, res, "network")
		if guestErr == "" && r.err != nil {
			t.Errorf("network: %v", r.err)
		}
		if guestErr != "" && !errContains(r.err, guestErr) {
			t.Errorf("network with a failing guest: %v", r.err)
		}
		if _, err := h.call(monitor.Request{Op: monitor.OpNetwork}); !errContains(err, "attached already") {
			t.Errorf("second network request: %v", err)
		}
		if h.dom.nics.Load() != 0 {
			t.Errorf("%d NICs added", h.dom.nics.Load())
		}
	}
}

// TestMonitorNetworkNICFails: an interface in the namespace needs a NIC;
// when the hypervisor cannot give one, the request fails and says so.
func TestMonitorNetworkNICFails(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	path := testutil.NamedNetns(t, "mon")
	h0, err := netlink.NewHandleAt(mustNS(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer h0.Close()
	if err := h0.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"eth0", "peer0"} {
		l, err := h0.LinkByName(n)
		if err == nil {
			err = h0.LinkSetUp(l)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, withNetns(path))
	h.boot()
	if _, err := h.call(monitor.Request{Op: monitor.OpNetwork}); !errContains(err, "giving the guest a network interface for") || !errContains(err, "not supported") {
		t.Errorf("network: %v", err)
	}
	if h.dom.nics.Load() != 1 {
		t.Errorf("%d NICs asked for, want 1: the first failure ends the request", h.dom.nics.Load())
	}
}

func mustNS(t *testing.T, path string) netns.NsHandle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	return ns
}
