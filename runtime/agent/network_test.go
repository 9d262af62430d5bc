package agent

import (
	"errors"
	"strings"
	"testing"
)

func goodNetwork() Network {
	return Network{Interfaces: []Interface{{
		Name: "eth0", MAC: "02:42:0a:59:00:02", MTU: 1500,
		Addresses: []string{"10.89.0.2/24", "fd89::2/64"},
		Routes: []Route{
			{Gateway: "10.89.0.1"},
			{Destination: "10.90.0.0/16", Link: true, Metric: 7},
			{Destination: "::/0", Gateway: "fe80::1", Source: "fd89::2"},
		},
	}}}
}

func TestDecodeNetwork(t *testing.T) {
	n := goodNetwork()
	p, err := Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeNetwork(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Interfaces) != 1 || len(got.Interfaces[0].Routes) != 3 || got.Interfaces[0].Addresses[1] != "fd89::2/64" {
		t.Errorf("decoded %+v", got)
	}
	if _, err := DecodeNetwork([]byte(`{}`)); err != nil {
		t.Errorf("an empty network (loopback only): %v", err)
	}
	if _, err := DecodeNetwork([]byte(`{"interfaces":[]} x`)); !errors.Is(err, ErrBadPayload) {
		t.Errorf("trailing data: %v", err)
	}
}

func TestNetworkValidate(t *testing.T) {
	for name, mod := range map[string]func(n *Network){
		"name empty":        func(n *Network) { n.Interfaces[0].Name = "" },
		"name long":         func(n *Network) { n.Interfaces[0].Name = strings.Repeat("e", 16) },
		"name slash":        func(n *Network) { n.Interfaces[0].Name = "a/b" },
		"name dotdot":       func(n *Network) { n.Interfaces[0].Name = ".." },
		"name space":        func(n *Network) { n.Interfaces[0].Name = "e th" },
		"mac":               func(n *Network) { n.Interfaces[0].MAC = "02:42:0a:59:00" },
		"mac upper":         func(n *Network) { n.Interfaces[0].MAC = "02:42:0A:59:00:02" },
		"mtu low":           func(n *Network) { n.Interfaces[0].MTU = 67 },
		"mtu high":          func(n *Network) { n.Interfaces[0].MTU = 65536 },
		"address":           func(n *Network) { n.Interfaces[0].Addresses[0] = "10.89.0.2" },
		"route dest":        func(n *Network) { n.Interfaces[0].Routes[1].Destination = "10.90.0.1/16" },
		"route gw":          func(n *Network) { n.Interfaces[0].Routes[0].Gateway = "10.89.0" },
		"route zone":        func(n *Network) { n.Interfaces[0].Routes[2].Gateway = "fe80::1%eth0" },
		"route mixed":       func(n *Network) { n.Interfaces[0].Routes[0].Destination = "fd90::/64" },
		"route gw and link": func(n *Network) { n.Interfaces[0].Routes[0].Link = true },
		"route neither":     func(n *Network) { n.Interfaces[0].Routes[0] = Route{Link: true} },
		"route metric":      func(n *Network) { n.Interfaces[0].Routes[0].Metric = -1 },
		"duplicate":         func(n *Network) { n.Interfaces = append(n.Interfaces, n.Interfaces[0]) },
		"too many": func(n *Network) {
			for len(n.Interfaces) <= MaxInterfaces {
				n.Interfaces = append(n.Interfaces, Interface{})
			}
		},
		"too many addresses": func(n *Network) {
			n.Interfaces[0].Addresses = make([]string, MaxAddresses+1)
			for i := range n.Interfaces[0].Addresses {
				n.Interfaces[0].Addresses[i] = "10.0.0.1/8"
			}
		},
	} {
		n := goodNetwork()
		mod(&n)
		if err := n.Validate(); !errors.Is(err, ErrBadPayload) {
			t.Errorf("%s: %v", name, err)
		}
	}
	n := goodNetwork()
	if err := n.Validate(); err != nil {
		t.Errorf("good network: %v", err)
	}
}
