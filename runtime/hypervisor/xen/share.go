package xen

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/libxl"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/procfs"
)

// QEMUBackend is where Debian's libxl runs the QEMU that serves a
// domain's 9pfs shares (package qemu-system-xen).
const QEMUBackend = "/usr/libexec/xen-qemu-system-i386"

// securityModel is how the 9pfs backend (QEMU, running as root) stores
// what the guest writes: passthrough gives files the owners and modes the
// container sets, as a runc bind mount does. QEMU resolves every path the
// guest names one component at a time below the shared directory without
// following symlinks, refuses names with '/' and ".." above the root, and
// never opens device nodes, FIFOs or sockets for the guest: the share
// confines it to the directory.
const securityModel = "passthrough"

// readOnlyView makes a read-only, nosuid, nodev copy of the mount tree at
// dir, for the 9pfs backend of a read-only share: QEMU's xen backend has
// no read-only option, and the guest, which is untrusted, can remount its
// side read-write. The copy is a detached mount, in no mount namespace,
// that lives as long as someone holds a file of it open: the returned
// O_PATH file, and QEMU's own once it has opened the share. QEMU reaches
// it by the returned path, /proc/PID/fd/N of this process.
func readOnlyView(dir string) (*os.File, string, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return nil, "", fmt.Errorf("read-only volume %s: cloning its mount: %w", dir, err)
	}
	f := os.NewFile(uintptr(fd), dir)
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("read-only volume %s: making it read-only: %w", dir, err)
	}
	// /proc/self names this process in /proc's pid namespace, which is
	// the one QEMU looks in, whatever namespace this process has.
	self, err := os.Readlink("/proc/self")
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("read-only volume %s: %w", dir, err)
	}
	return f, "/proc/" + self + "/fd/" + strconv.Itoa(fd), nil
}

// shareViews returns the directories the backend is to serve for shares,
// in order: a read-only share's read-only view, any other's directory. The
// views stay open until closeViews.
func shareViews(shares []hypervisor.Share) (paths []string, views []*os.File, err error) {
	for _, s := range shares {
		if !s.ReadOnly {
			paths = append(paths, s.Path)
			continue
		}
		f, p, err := readOnlyView(s.Path)
		if err != nil {
			closeViews(views)
			return nil, nil, err
		}
		paths = append(paths, p)
		views = append(views, f)
	}
	return paths, views, nil
}

// closeViews lets go of the views shareViews made.
func closeViews(views []*os.File) {
	for _, f := range views {
		f.Close()
	}
}

// guardBackendPid keeps libxl's destroy of domid from signalling a
// stranger. libxl records the pid of the 9pfs backend (QEMU) in the pid
// namespace of the process that created the domain, the monitor's own,
// and destroy sends SIGHUP to that pid. Elsewhere (delete, after the
// monitor died and its pid namespace, QEMU included, with it) the pid
// names another process or none: the record is removed unless the pid
// here is a QEMU serving domid.
func guardBackendPid(domid uint32) error {
	pid, err := libxl.DeviceModelPid(domid)
	if err != nil || pid == 0 {
		return err
	}
	if servesDomain(pid, domid) {
		return nil
	}
	return libxl.ForgetDeviceModel(domid)
}

// servesDomain says whether pid, in this process's pid namespace, is a
// Xen device model or backend of domid ("-xen-domid N" on its command
// line).
func servesDomain(pid int, domid uint32) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	// /proc may belong to another pid namespace (the monitor's is the
	// host's): the pidfd says which process that is there.
	procPid, err := procfs.PidfdPid(fd)
	if err != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(procPid) + "/cmdline")
	return err == nil && strings.Contains("\x00"+string(b), "\x00-xen-domid\x00"+strconv.FormatUint(uint64(domid), 10)+"\x00")
}
