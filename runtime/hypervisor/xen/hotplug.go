package xen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/libxl/xenstore"
)

// libxl runs a hotplug script in dom0 for every disk and network device it
// adds or removes, and waits for it. The stock ones are bash scripts that
// take a global lock, run losetup and friends, and cost about 4.5 s per
// disk under emulation. vxn sets the device up itself before libxl sees it
// (attachLoop for disks; the network code wires vifs after the fact) and
// names its own binary as the script (Options.HotplugScript), which then
// runs Hotplug: for a disk it only tells blkback which block device to
// open, the one step that must happen after libxl has written the
// backend's xenstore directory.
//
// libxl's contract (libxl_linux.c): argv is [script, action]; the
// environment has XENBUS_TYPE ("vbd", "vif"), XENBUS_PATH (the backend's
// xenstore directory, relative to dom0's home) and, for vifs, vif.

// HotplugEnv is the environment variable that marks a hotplug call.
const HotplugEnv = "XENBUS_PATH"

var backendPath = regexp.MustCompile(`^backend/(vbd|vif)/[0-9]+/[0-9]+$`)

// Hotplug performs a hotplug action for a device that vxn set up. getenv
// is os.Getenv in production.
func Hotplug(action string, getenv func(string) string) error {
	typ, path := getenv("XENBUS_TYPE"), getenv(HotplugEnv)
	if !backendPath.MatchString(path) || !strings.HasPrefix(path, "backend/"+typ+"/") {
		return fmt.Errorf("hotplug: XENBUS_TYPE %q and XENBUS_PATH %q are not a vbd or vif backend: vxn's hotplug handler is meant to be run by libxl", typ, path)
	}
	switch {
	case typ == "vbd" && action == "add":
		return hotplugDisk(path)
	case typ == "vbd" && action == "remove":
		// The loop device clears itself when blkback closes it.
		return nil
	case typ == "vif" && (action == "online" || action == "offline" || action == "add" || action == "remove"):
		// vxn moves the backend into the container's network namespace
		// and wires it there itself, after libxl has made it.
		return nil
	}
	return fmt.Errorf("hotplug: unknown action %q for a %s", action, typ)
}

// hotplugDisk writes physical-device for the block device in params, as
// the stock block script does; blkback opens the device when it appears.
func hotplugDisk(be string) (err error) {
	xs, err := xenstore.Open()
	if err != nil {
		return fmt.Errorf("hotplug %s: %w", be, err)
	}
	defer xs.Close()
	defer func() {
		if err != nil {
			// libxl reports hotplug-error as the reason of the failure.
			_ = xs.Write(be+"/hotplug-error", err.Error())
		}
	}()
	dev, err := xs.Read(be + "/params")
	if err != nil {
		return fmt.Errorf("hotplug %s: %w", be, err)
	}
	maj, min, err := blockDevice(dev)
	if err != nil {
		return fmt.Errorf("hotplug %s: %w", be, err)
	}
	if err := xs.Write(be+"/physical-device-path", dev); err != nil {
		return fmt.Errorf("hotplug %s: %w", be, err)
	}
	if err := xs.Write(be+"/physical-device", fmt.Sprintf("%x:%x", maj, min)); err != nil {
		return fmt.Errorf("hotplug %s: %w", be, err)
	}
	return nil
}

// blockDevice returns the device numbers of the block device at path.
// Only a loop device that vxn attached (attachLoop) or another block
// device is accepted: a regular file would need the stock script.
func blockDevice(path string) (maj, min uint32, err error) {
	if !filepath.IsAbs(path) {
		return 0, 0, fmt.Errorf("disk %q is not an absolute path", path)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, 0, fmt.Errorf("disk %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, 0, fmt.Errorf("disk %s: %w", path, errNotBlock)
	}
	return unix.Major(st.Rdev), unix.Minor(st.Rdev), nil
}

var errNotBlock = errors.New("not a block device (vxn attaches image files to loop devices before libxl sees them)")

// hotplugScript returns the script to name for vxn's devices: the running
// vxn binary when opts ask for it, else "" (libxl's stock scripts).
func hotplugScript(opts Options) (string, error) {
	if !opts.NativeHotplug {
		return "", nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("xen: finding vxn's own binary for libxl's hotplug calls: %w", err)
	}
	return exe, nil
}
