package libxl

/*
#cgo pkg-config: xenstore
#include <stdlib.h>
#include <xenstore.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// deviceModelPidPath is where libxl records the pid of the QEMU it starts
// for a domain (a device model, or the PV backend that serves 9pfs
// shares); Destroy sends that pid SIGHUP.
func deviceModelPidPath(domid uint32) string {
	return fmt.Sprintf("/local/domain/%d/image/device-model-pid", domid)
}

// DeviceModelPid returns the pid libxl recorded for the QEMU it started
// for domid, or 0 if there is none. It is a pid in the pid namespace of
// the process that created the domain.
func DeviceModelPid(domid uint32) (int, error) {
	var pid int
	err := withXenstore(func(h *C.struct_xs_handle) error {
		p := C.CString(deviceModelPidPath(domid))
		defer C.free(unsafe.Pointer(p))
		var n C.uint
		v, errno := C.xs_read(h, C.XBT_NULL, p, &n)
		if v == nil {
			if errors.Is(errno, syscall.ENOENT) {
				return nil
			}
			return fmt.Errorf("libxl: reading %s: %w", deviceModelPidPath(domid), errno)
		}
		defer C.free(v)
		s := C.GoStringN((*C.char)(v), C.int(n))
		var err error
		if pid, err = strconv.Atoi(strings.TrimSpace(s)); err != nil || pid <= 0 {
			return fmt.Errorf("libxl: %s holds %q, not a pid", deviceModelPidPath(domid), s)
		}
		return nil
	})
	return pid, err
}

// ForgetDeviceModel removes libxl's record of the QEMU of domid, so that
// Destroy signals no process: for a caller in whose pid namespace the
// recorded pid is not that QEMU.
func ForgetDeviceModel(domid uint32) error {
	return withXenstore(func(h *C.struct_xs_handle) error {
		p := C.CString(deviceModelPidPath(domid))
		defer C.free(unsafe.Pointer(p))
		if ok, errno := C.xs_rm(h, C.XBT_NULL, p); !bool(ok) && !errors.Is(errno, syscall.ENOENT) {
			return fmt.Errorf("libxl: removing %s: %w", deviceModelPidPath(domid), errno)
		}
		return nil
	})
}

func withXenstore(f func(*C.struct_xs_handle) error) error {
	h, errno := C.xs_open(0)
	if h == nil {
		return fmt.Errorf("libxl: connecting to xenstore: %w", errno)
	}
	defer C.xs_close(h)
	return f(h)
}
