package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/vxn-runtime/vxn/runtime/hypervisor/xen"
)

// vxn is its own libxl hotplug script (see runtime/hypervisor/xen,
// hotplug.go): libxl runs `<vxn> add|remove|online|offline` with the
// device's xenstore path in XENBUS_PATH. That call is not a command of the
// CLI, and no command takes a single argument with XENBUS_PATH set.
// (libxl_linux.c: a vif's is `<vxn> online|offline type_if=vif`.)

func isHotplugCall(args []string, getenv func(string) string) bool {
	// A vif's call has a third argument: "type_if=vif".
	n := len(args) == 2 || len(args) == 3 && strings.HasPrefix(args[2], "type_if=")
	return n && getenv(xen.HotplugEnv) != "" && getenv("XENBUS_TYPE") != ""
}

// hotplug runs the hotplug action; libxl logs what it prints on failure.
func hotplug(action string) int {
	if err := xen.Hotplug(action, os.Getenv); err != nil {
		fmt.Fprintf(os.Stderr, "vxn: %v\n", err)
		return 1
	}
	return 0
}
