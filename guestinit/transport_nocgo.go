//go:build !cgo

package main

import (
	"errors"
	"io"
)

// guestTransport needs libxenvchan, linked through cgo: a guestinit built
// without cgo serves only host mode (the fake hypervisor of the tests).
func guestTransport() (io.ReadWriteCloser, error) {
	return nil, errors.New("this guestinit was built without cgo and cannot open the Xen agent channel: build it with `make guest`")
}
