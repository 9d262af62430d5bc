package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/network"
)

// AttachNetwork gives the guest the container's network as the engine set
// it up (package network): for each interface of the container's network
// namespace, a NIC with its MAC whose host side is joined to it, and the
// interface's addresses, routes and MTU, which guestinit applies. Create
// calls it once, after the hooks that may have made the interfaces.
func (m *Monitor) AttachNetwork(ctx context.Context) (err error) {
	if !m.netAsked.CompareAndSwap(false, true) {
		return errors.New("the network is attached already")
	}
	// A failed create kills the monitor: leave the interfaces as the
	// engine made them now. The NICs go with the guest.
	defer func() {
		if err != nil {
			m.detachNetwork()
		}
	}()
	start := time.Now()
	var n agent.Network
	nsPath := m.cfg.Netns
	if nsPath != "" {
		links, err := network.Interfaces(nsPath)
		if err != nil {
			return err
		}
		for _, l := range links {
			mac, err := net.ParseMAC(l.Config.MAC)
			if err != nil {
				return fmt.Errorf("interface %s: %w", l.Config.Name, err)
			}
			be, err := m.dom.AddNIC(ctx, hypervisor.NIC{MAC: mac, MTU: l.Config.MTU})
			if err != nil {
				return fmt.Errorf("giving the guest a network interface for %s: %w", l.Config.Name, err)
			}
			if err := network.Join(nsPath, l, be.Netns, be.Name); err != nil {
				return fmt.Errorf("joining the guest's network interface to %s: %w", l.Config.Name, err)
			}
			m.mu.Lock()
			m.netns, m.joined = nsPath, append(m.joined, l.Index)
			m.mu.Unlock()
			n.Interfaces = append(n.Interfaces, l.Config)
		}
	}
	wired := time.Since(start)
	if err := m.conn.SendJSON(agent.TypeNetwork, 0, n); err != nil {
		return err
	}
	select {
	case e := <-m.netCh:
		if e.Message != "" {
			return fmt.Errorf("the guest: %s", e.Message)
		}
	case err := <-m.failCh:
		m.failCh <- err // Serve reports it
		return err
	case <-m.done:
		return errors.New("the container stopped while its network was set up")
	case <-ctx.Done():
		return fmt.Errorf("the guest did not set its network up: %w", ctx.Err())
	}
	m.log.Infof("network: %d interface(s) of %q attached in %v (host side %v)", len(n.Interfaces), nsPath,
		time.Since(start).Round(time.Millisecond), wired.Round(time.Millisecond))
	return nil
}

// detachNetwork removes the redirects AttachNetwork put on the container's
// interfaces, once the guest and its NICs are gone.
func (m *Monitor) detachNetwork() {
	m.mu.Lock()
	nsPath, joined := m.netns, m.joined
	m.joined = nil
	m.mu.Unlock()
	for _, idx := range joined {
		if err := network.Leave(nsPath, idx); err != nil {
			m.log.Warnf("network: %v", err)
		}
	}
}
