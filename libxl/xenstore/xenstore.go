// Package xenstore reads and writes keys of the Xen store through
// libxenstore. vxn needs it only where libxl has no API: the block hotplug
// handler that libxl runs for vxn's disks writes the backend's
// physical-device node itself (see runtime/hypervisor/xen).
package xenstore

/*
#cgo pkg-config: xenstore
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

static struct xs_handle *vxn_xs_open(void) { return xs_open(0); }

static char *vxn_xs_read(struct xs_handle *h, const char *path, unsigned int *len)
{
	errno = 0;
	return xs_read(h, XBT_NULL, path, len);
}

static int vxn_xs_write(struct xs_handle *h, const char *path, const char *val, unsigned int len)
{
	errno = 0;
	return xs_write(h, XBT_NULL, path, val, len) ? 0 : -1;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unsafe"
)

// MaxValue bounds what Read returns: xenstored itself refuses values above
// 4 KiB (XENSTORE_PAYLOAD_MAX).
const MaxValue = 4096

// ErrNotFound: the key does not exist.
var ErrNotFound = errors.New("xenstore: no such key")

// Handle is a connection to xenstored.
type Handle struct{ h *C.struct_xs_handle }

// Open connects to xenstored (its socket, or /dev/xen/xenbus).
func Open() (*Handle, error) {
	h, err := C.vxn_xs_open()
	if h == nil {
		return nil, fmt.Errorf("xenstore: open: %w (is xenstored running?)", errnoOr(err))
	}
	return &Handle{h: h}, nil
}

// Close closes the connection.
func (h *Handle) Close() {
	if h.h != nil {
		C.xs_close(h.h)
		h.h = nil
	}
}

// Read returns the value of path.
func (h *Handle) Read(path string) (string, error) {
	if err := checkPath(path); err != nil {
		return "", err
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	var n C.uint
	v, err := C.vxn_xs_read(h.h, cp, &n)
	if v == nil {
		if errors.Is(err, syscall.ENOENT) {
			return "", fmt.Errorf("%w: %s", ErrNotFound, path)
		}
		return "", fmt.Errorf("xenstore: read %s: %w", path, errnoOr(err))
	}
	defer C.free(unsafe.Pointer(v))
	if n > MaxValue {
		return "", fmt.Errorf("xenstore: read %s: value of %d bytes is above %d", path, n, MaxValue)
	}
	return C.GoStringN(v, C.int(n)), nil
}

// Write sets path to val.
func (h *Handle) Write(path, val string) error {
	if err := checkPath(path); err != nil {
		return err
	}
	if len(val) > MaxValue {
		return fmt.Errorf("xenstore: write %s: value of %d bytes is above %d", path, len(val), MaxValue)
	}
	cp := C.CString(path)
	defer C.free(unsafe.Pointer(cp))
	cv := C.CString(val)
	defer C.free(unsafe.Pointer(cv))
	if rc, err := C.vxn_xs_write(h.h, cp, cv, C.uint(len(val))); rc != 0 {
		return fmt.Errorf("xenstore: write %s: %w", path, errnoOr(err))
	}
	return nil
}

// checkPath refuses what xenstored would: empty paths and NUL bytes.
func checkPath(p string) error {
	if p == "" || strings.IndexByte(p, 0) >= 0 || len(p) > 3072 {
		return fmt.Errorf("xenstore: invalid path %q", p)
	}
	return nil
}

func errnoOr(err error) error {
	if err == nil || errors.Is(err, syscall.Errno(0)) {
		return syscall.EIO
	}
	return err
}
