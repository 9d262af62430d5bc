//go:build cgo

package main

import (
	"fmt"
	"io"

	"github.com/vxn-runtime/vxn/libxl/vchan"
)

// guestTransport publishes the agent channel: a vchan server under this
// guest's own xenstore data/ subtree, with dom0 (the monitor) as its peer.
func guestTransport() (io.ReadWriteCloser, error) {
	domid, err := vchan.OwnDomid()
	if err != nil {
		return nil, fmt.Errorf("reading own domid from xenstore: %w", err)
	}
	c, err := vchan.Listen(vchan.AgentPath(domid), 0)
	if err != nil {
		return nil, fmt.Errorf("publishing the agent channel: %w", err)
	}
	return c, nil
}
