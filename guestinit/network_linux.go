package main

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// nicTimeout bounds the wait for a NIC the host has just added: the
// netfront device appears once the guest's xenbus has probed it.
const nicTimeout = 10 * time.Second

// setupNetwork brings loopback up and gives each interface of n to the NIC
// with its MAC: renamed to the interface's name, with its MTU, up, with its
// addresses and routes. It works in the calling thread's network
// namespace (the guest's only one).
func setupNetwork(n agent.Network, timeout time.Duration) error {
	// Only rtnetlink: the library's other default families need modules
	// (nfnetlink, xfrm_user) that the initramfs does not load.
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("bringing loopback up: %w", err)
	}
	deadline := time.Now().Add(timeout)
	for _, ifc := range n.Interfaces {
		start := time.Now()
		if err := setupInterface(h, ifc, deadline); err != nil {
			return fmt.Errorf("interface %s (%s): %w", ifc.Name, ifc.MAC, err)
		}
		guestLogf("network: %s (%s) up with %v in %v", ifc.Name, ifc.MAC, ifc.Addresses, time.Since(start).Round(time.Millisecond))
	}
	return nil
}

func setupInterface(h *netlink.Handle, ifc agent.Interface, deadline time.Time) error {
	link, err := waitForMAC(h, ifc.MAC, deadline)
	if err != nil {
		return err
	}
	if link.Attrs().Name != ifc.Name {
		if err := h.LinkSetDown(link); err != nil {
			return fmt.Errorf("bringing %s down: %w", link.Attrs().Name, err)
		}
		if err := h.LinkSetName(link, ifc.Name); err != nil {
			return fmt.Errorf("renaming %s: %w", link.Attrs().Name, err)
		}
	}
	if err := h.LinkSetMTU(link, ifc.MTU); err != nil {
		return fmt.Errorf("MTU %d: %w", ifc.MTU, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing it up: %w", err)
	}
	for _, a := range ifc.Addresses {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
		if addr.IP.To4() == nil {
			// The address is the container's already: no duplicate
			// detection, so that it is usable at once.
			addr.Flags |= unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("address %s: %w", a, err)
		}
	}
	routes := append([]agent.Route(nil), ifc.Routes...)
	// A gateway must be reachable when its route is added: on-link
	// routes first.
	sort.SliceStable(routes, func(i, j int) bool { return routes[i].Link && !routes[j].Link })
	for _, r := range routes {
		nr, err := netlinkRoute(link.Attrs().Index, r)
		if err == nil {
			err = h.RouteAdd(nr)
		}
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("route %+v: %w", r, err)
		}
	}
	return nil
}

// netlinkRoute turns a validated agent.Route into netlink's terms.
func netlinkRoute(index int, r agent.Route) (*netlink.Route, error) {
	nr := &netlink.Route{LinkIndex: index, Priority: r.Metric, Table: unix.RT_TABLE_MAIN}
	if r.Destination != "" {
		_, dst, err := net.ParseCIDR(r.Destination)
		if err != nil {
			return nil, err
		}
		nr.Dst = dst
	}
	if r.Gateway != "" {
		nr.Gw = net.ParseIP(r.Gateway)
	}
	if r.Source != "" {
		nr.Src = net.ParseIP(r.Source)
	}
	if r.Link {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr, nil
}

// waitForMAC returns the link whose MAC is mac, waiting for it until
// deadline.
func waitForMAC(h *netlink.Handle, mac string, deadline time.Time) (netlink.Link, error) {
	for {
		links, err := h.LinkList()
		if err != nil {
			return nil, fmt.Errorf("listing links: %w", err)
		}
		for _, l := range links {
			if l.Attrs().HardwareAddr.String() == mac {
				return l, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, errors.New("no network device with that MAC appeared (is xen-netfront loaded? see the guest log)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
