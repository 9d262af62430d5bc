package agent

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Limits on a Network message.
const (
	MaxInterfaces = 16  // interfaces given to one guest
	MaxAddresses  = 64  // addresses of one interface
	MaxRoutes     = 256 // routes through one interface
	MaxIfNameLen  = 15  // IFNAMSIZ-1
)

// Network is the network the guest takes over from the container's network
// namespace, as the engine set it up there: each Interface is carried by a
// NIC of the guest whose MAC is the interface's. An empty Network leaves
// the guest with loopback only.
type Network struct {
	Interfaces []Interface `json:"interfaces,omitempty"`
}

// Interface is one network interface of the container.
type Interface struct {
	// Name is the interface's name in the container ("eth0"); the guest
	// renames its NIC to it.
	Name string `json:"name"`
	// MAC identifies the guest's NIC and stays the container's MAC.
	MAC string `json:"mac"`
	MTU int    `json:"mtu"`
	// Addresses in CIDR form ("10.88.0.2/16", "fd00::2/64").
	Addresses []string `json:"addresses,omitempty"`
	Routes    []Route  `json:"routes,omitempty"`
}

// Route is a route through an Interface.
type Route struct {
	// Destination in CIDR form; "" is the default route of the gateway's
	// family.
	Destination string `json:"destination,omitempty"`
	Gateway     string `json:"gateway,omitempty"`
	Source      string `json:"source,omitempty"`
	Metric      int    `json:"metric,omitempty"`
	// Link: the destination is on the link (scope link), no gateway.
	Link bool `json:"link,omitempty"`
}

// DecodeNetwork decodes and validates a Network message.
func DecodeNetwork(p []byte) (Network, error) {
	var n Network
	if err := Unmarshal(p, &n); err != nil {
		return Network{}, err
	}
	if err := n.Validate(); err != nil {
		return Network{}, err
	}
	return n, nil
}

// Validate checks every field of n against the limits above.
func (n *Network) Validate() error {
	if len(n.Interfaces) > MaxInterfaces {
		return fmt.Errorf("%w: %d interfaces (limit %d)", ErrBadPayload, len(n.Interfaces), MaxInterfaces)
	}
	names, macs := map[string]bool{}, map[string]bool{}
	for i := range n.Interfaces {
		ifc := &n.Interfaces[i]
		if err := ifc.validate(); err != nil {
			return fmt.Errorf("%w: interface %d: %v", ErrBadPayload, i, err)
		}
		if names[ifc.Name] || macs[ifc.MAC] {
			return fmt.Errorf("%w: interface %d: name %q or MAC %s given twice", ErrBadPayload, i, ifc.Name, ifc.MAC)
		}
		names[ifc.Name], macs[ifc.MAC] = true, true
	}
	return nil
}

func (ifc *Interface) validate() error {
	if err := validIfName(ifc.Name); err != nil {
		return err
	}
	hw, err := net.ParseMAC(ifc.MAC)
	if err != nil || len(hw) != 6 || hw.String() != ifc.MAC {
		return fmt.Errorf("MAC %q is not a lower-case 6-byte MAC", ifc.MAC)
	}
	if ifc.MTU < 68 || ifc.MTU > 65535 {
		return fmt.Errorf("MTU %d out of range 68..65535", ifc.MTU)
	}
	if len(ifc.Addresses) > MaxAddresses {
		return fmt.Errorf("%d addresses (limit %d)", len(ifc.Addresses), MaxAddresses)
	}
	for _, a := range ifc.Addresses {
		if _, err := netip.ParsePrefix(a); err != nil {
			return fmt.Errorf("address %q: %v", a, err)
		}
	}
	if len(ifc.Routes) > MaxRoutes {
		return fmt.Errorf("%d routes (limit %d)", len(ifc.Routes), MaxRoutes)
	}
	for _, r := range ifc.Routes {
		if err := r.validate(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Route) validate() error {
	bad := func(why string) error { return fmt.Errorf("route %+v: %s", *r, why) }
	var family []bool // is4 of each address given
	if r.Destination != "" {
		p, err := netip.ParsePrefix(r.Destination)
		if err != nil || p != p.Masked() {
			return bad("destination is not a network in CIDR form")
		}
		family = append(family, p.Addr().Is4())
	}
	for _, s := range []string{r.Gateway, r.Source} {
		if s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return bad("bad address " + s)
		}
		family = append(family, a.Is4())
	}
	if len(family) == 0 {
		return bad("neither destination nor gateway")
	}
	for _, f := range family {
		if f != family[0] {
			return bad("mixes IPv4 and IPv6")
		}
	}
	if r.Link == (r.Gateway != "") {
		return bad("a route has a gateway or is on the link, not both or neither")
	}
	if r.Metric < 0 {
		return bad("negative metric")
	}
	return nil
}

// validIfName checks a network interface name as the kernel does
// (dev_valid_name).
func validIfName(name string) error {
	if name == "" || len(name) > MaxIfNameLen || name == "." || name == ".." ||
		strings.ContainsAny(name, "/:") || strings.IndexFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
		return fmt.Errorf("bad interface name %q", name)
	}
	return nil
}
