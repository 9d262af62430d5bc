package main

import (
	"errors"

	"github.com/vxn-runtime/vxn/runtime/hypervisor"
)

func openXen() (hypervisor.Hypervisor, error) {
	return nil, errors.New("the Xen hypervisor is not wired in yet")
}
