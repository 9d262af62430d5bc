// Package network hands a container's network, as the engine set it up in
// the container's network namespace, to the container's guest.
//
// Engines (podman's netavark, CNI plugins, Docker's libnetwork) put a veth
// into the container's namespace, usually eth0, with the container's
// addresses and routes, and wire its peer to the host (a bridge, NAT, port
// forwards). vxn leaves all of that as it is. For each such interface the
// guest gets a NIC with the interface's MAC, addresses, routes and MTU
// (Interfaces reads them), and the NIC's host side, moved into the
// namespace, is joined to the interface by two tc redirects (Join): every
// frame that arrives on eth0 is sent out of the backend to the guest and
// every frame from the guest is sent out of eth0, as kata-containers'
// "tcfilter" mode does. To the engine the container's interface looks and
// behaves as it would under runc.
//
// eth0 keeps its addresses. The ingress redirect takes every frame that
// arrives on it before the namespace's IP stack sees it, so that stack
// never answers for the guest (no ARP reply, no RST); and the engines and
// their tools go on finding the container's addresses where they put them
// (Docker's libnetwork and podman inspect read them from the namespace,
// CNI's CHECK compares them). Port forwards (netavark's DNAT, docker-proxy)
// target that address and reach the guest through the redirect.
package network

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// Link is an interface of the container's namespace to hand to the guest.
type Link struct {
	Index  int // in the namespace
	Config agent.Interface
}

// Interfaces reads the interfaces of the network namespace at nsPath that
// the guest takes over: every Ethernet interface that is up, with its
// MAC, MTU, addresses (but link-local ones, which the guest's kernel makes
// itself from the same MAC) and the routes through it that the engine
// added (not the kernel's own routes for the addresses' subnets). Loopback
// and the tunnel devices that some modules put in every namespace are
// left out.
func Interfaces(nsPath string) ([]Link, error) {
	h, closeNS, err := handleAt(nsPath)
	if err != nil {
		return nil, err
	}
	defer closeNS()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing the interfaces of %s: %w", nsPath, err)
	}
	var out []Link
	for _, l := range links {
		a := l.Attrs()
		if a.EncapType != "ether" || a.Flags&net.FlagUp == 0 || a.Flags&net.FlagLoopback != 0 {
			continue
		}
		if len(out) == agent.MaxInterfaces {
			return nil, fmt.Errorf("%s has more than %d interfaces; vxn gives a guest at most that many", nsPath, agent.MaxInterfaces)
		}
		ifc, err := readInterface(h, l)
		if err != nil {
			return nil, fmt.Errorf("reading interface %s of %s: %w", a.Name, nsPath, err)
		}
		out = append(out, Link{Index: a.Index, Config: ifc})
	}
	return out, nil
}

func readInterface(h *netlink.Handle, l netlink.Link) (agent.Interface, error) {
	a := l.Attrs()
	ifc := agent.Interface{Name: a.Name, MAC: a.HardwareAddr.String(), MTU: a.MTU}
	addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return ifc, fmt.Errorf("addresses: %w", err)
	}
	for _, ad := range addrs {
		if ad.IP.IsLinkLocalUnicast() {
			continue
		}
		ifc.Addresses = append(ifc.Addresses, ad.IPNet.String())
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{LinkIndex: a.Index, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return ifc, fmt.Errorf("routes: %w", err)
	}
	for _, r := range routes {
		if rt, ok := guestRoute(r); ok {
			ifc.Routes = append(ifc.Routes, rt)
		}
	}
	if err := (&agent.Network{Interfaces: []agent.Interface{ifc}}).Validate(); err != nil {
		return ifc, err
	}
	return ifc, nil
}

// guestRoute converts a route the engine added; ok is false for the ones
// the guest's kernel makes itself or that cannot be expressed.
func guestRoute(r netlink.Route) (agent.Route, bool) {
	if r.Protocol == unix.RTPROT_KERNEL || r.Type != unix.RTN_UNICAST || len(r.MultiPath) > 0 {
		return agent.Route{}, false
	}
	if r.Dst != nil && r.Dst.IP.IsLinkLocalUnicast() {
		return agent.Route{}, false
	}
	var rt agent.Route
	if r.Dst != nil {
		ones, _ := r.Dst.Mask.Size()
		if ones > 0 {
			rt.Destination = r.Dst.String()
		}
	}
	if r.Gw != nil {
		rt.Gateway = r.Gw.String()
	} else {
		rt.Link = true
	}
	if r.Src != nil {
		rt.Source = r.Src.String()
	}
	rt.Metric = r.Priority
	if rt.Destination == "" && rt.Gateway == "" {
		return agent.Route{}, false // a default route without a gateway: no family to give it
	}
	return rt, true
}

// Join moves the network interface backend, the host side of the guest's
// NIC for link, from the namespace at backendNS into the container's
// namespace at nsPath, gives it link's MTU, brings it up, and redirects
// every frame arriving on either of them out of the other. On error what
// it did is undone, except the move (the backend goes with its guest).
func Join(nsPath string, link Link, backendNS, backend string) error {
	h, closeNS, err := handleAt(nsPath)
	if err != nil {
		return err
	}
	defer closeNS()
	if err := moveLink(backendNS, backend, nsPath); err != nil {
		return err
	}
	be, err := h.LinkByName(backend)
	if err != nil {
		return fmt.Errorf("finding %s in %s after moving it there: %w", backend, nsPath, err)
	}
	if err := h.LinkSetMTU(be, link.Config.MTU); err != nil {
		return fmt.Errorf("setting the MTU of %s to %d: %w", backend, link.Config.MTU, err)
	}
	if err := h.LinkSetUp(be); err != nil {
		return fmt.Errorf("bringing %s up: %w", backend, err)
	}
	if err := redirect(h, link.Index, be.Attrs().Index); err != nil {
		return fmt.Errorf("redirecting %s to %s: %w", link.Config.Name, backend, err)
	}
	if err := redirect(h, be.Attrs().Index, link.Index); err != nil {
		_ = unredirect(h, link.Index)
		return fmt.Errorf("redirecting %s to %s: %w", backend, link.Config.Name, err)
	}
	return nil
}

// Leave removes the redirect that Join put on the container's interface
// (its ingress qdisc), leaving the interface as the engine made it. The
// backend's own goes with the backend when the guest is destroyed. A link
// or namespace that is gone already is not an error.
func Leave(nsPath string, index int) error {
	h, closeNS, err := handleAt(nsPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer closeNS()
	if err := unredirect(h, index); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("removing the redirect of interface %d in %s: %w", index, nsPath, err)
	}
	return nil
}

// ingress is the ingress qdisc of the interface with index i.
func ingress(i int) *netlink.Ingress {
	return &netlink.Ingress{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: i, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_INGRESS,
	}}
}

// redirect sends every frame arriving on interface from out of interface
// to: an ingress qdisc with a u32 filter that matches everything and a
// mirred egress-redirect action (cls_u32 is in every kernel that has tc;
// cls_matchall is not).
func redirect(h *netlink.Handle, from, to int) error {
	if err := h.QdiscAdd(ingress(from)); err != nil {
		return fmt.Errorf("adding an ingress qdisc (kernel module sch_ingress): %w", err)
	}
	f := &netlink.U32{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: from, Parent: netlink.HANDLE_MIN_INGRESS, Priority: 1, Protocol: unix.ETH_P_ALL,
		},
		// No selector: the library's default matches every frame.
		Actions: []netlink.Action{&netlink.MirredAction{
			ActionAttrs:  netlink.ActionAttrs{Action: netlink.TC_ACT_STOLEN},
			MirredAction: netlink.TCA_EGRESS_REDIR,
			Ifindex:      to,
		}},
	}
	if err := h.FilterAdd(f); err != nil {
		_ = unredirect(h, from)
		return fmt.Errorf("adding a u32 filter with a mirred redirect (kernel modules cls_u32, act_mirred): %w", err)
	}
	return nil
}

func unredirect(h *netlink.Handle, from int) error { return h.QdiscDel(ingress(from)) }

// moveLink moves the interface name from the namespace at fromNS to the
// one at toNS.
func moveLink(fromNS, name, toNS string) error {
	h, closeFrom, err := handleAt(fromNS)
	if err != nil {
		return err
	}
	defer closeFrom()
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding %s in %s: %w", name, fromNS, err)
	}
	to, err := netns.GetFromPath(toNS)
	if err != nil {
		return fmt.Errorf("opening network namespace %s: %w", toNS, err)
	}
	defer to.Close()
	if err := h.LinkSetNsFd(l, int(to)); err != nil {
		return fmt.Errorf("moving %s from %s into %s: %w", name, fromNS, toNS, err)
	}
	return nil
}

// handleAt opens a netlink handle in the network namespace at path. Its
// socket is made by a thread that enters the namespace and then ends
// (netlink's NewHandleAt would find the thread's namespace to come back
// to in /proc/<pid>/task/<tid>, which is wrong in the monitor, whose pid
// namespace is not /proc's). Only rtnetlink: the other families the
// library opens by default need modules (nfnetlink, xfrm_user) that a
// guest or dom0 may not have.
func handleAt(path string) (*netlink.Handle, func(), error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening network namespace %s: %w", path, err)
	}
	defer ns.Close()
	type result struct {
		h   *netlink.Handle
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, in ns, ends with the goroutine.
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			ch <- result{err: err}
			return
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		ch <- result{h, err}
	}()
	r := <-ch
	if r.err != nil {
		return nil, nil, fmt.Errorf("netlink in network namespace %s: %w", path, r.err)
	}
	return r.h, r.h.Close, nil
}

// SameNamespace reports whether the paths name the same network namespace.
func SameNamespace(a, b string) (bool, error) {
	na, err := netns.GetFromPath(a)
	if err != nil {
		return false, fmt.Errorf("opening network namespace %s: %w", a, err)
	}
	defer na.Close()
	nb, err := netns.GetFromPath(b)
	if err != nil {
		return false, fmt.Errorf("opening network namespace %s: %w", b, err)
	}
	defer nb.Close()
	return na.Equal(nb), nil
}
