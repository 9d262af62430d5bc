package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// moduleList names the kernel modules in the initramfs in load order, one
// path a line (written by guestinit/mkinitramfs).
const moduleList = "/lib/modules/vxn-modules"

// guestLogf writes a line to the console (init's stderr is /dev/console,
// hvc0, which the host keeps as the guest's log), stamped with the time
// since the guest kernel started so boot phases can be measured.
func guestLogf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%8.3f] guestinit: "+format+"\n", append([]any{uptime().Seconds()}, args...)...)
}

// uptime is the time since the guest kernel started.
func uptime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// bootMounts are the filesystems PID 1 needs in the initramfs root, in order.
var bootMounts = []struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "mode=0620,ptmxmode=0666"},
	{"shm", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"run", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmp", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
}

// bootGuest prepares the initramfs root for PID 1: the filesystems above,
// the /dev/fd and /dev/std* links, the environment, and the kernel modules
// listed in moduleList. It does every step it can and returns what failed.
func bootGuest() error {
	var errs []error
	for _, m := range bootMounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil {
			errs = append(errs, fmt.Errorf("mount %s on %s: %w", m.fstype, m.target, err))
		}
	}
	for name, target := range devLinks {
		if err := os.Symlink(target, "/dev/"+name); err != nil && !errors.Is(err, os.ErrExist) {
			errs = append(errs, err)
		}
	}
	unix.Umask(0o022)
	os.Setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	if os.Getenv("HOME") == "" {
		os.Setenv("HOME", "/")
	}
	if err := loadModules(moduleList, finitModule); err != nil {
		errs = append(errs, err)
	}
	guestLogf("boot done")
	return errors.Join(errs...)
}

// devLinks are the symlinks every /dev needs (the Xen hotplug scripts and
// many shells use /dev/fd and /dev/stdin).
var devLinks = map[string]string{
	"fd":     "/proc/self/fd",
	"stdin":  "/proc/self/fd/0",
	"stdout": "/proc/self/fd/1",
	"stderr": "/proc/self/fd/2",
}

// finitModule loads the kernel module file p.
func finitModule(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.FinitModule(int(f.Fd()), "", 0)
}

// loadModules loads the modules listed in the file list with load, in
// passes: a module that fails is retried in the next pass, until every
// module is loaded or a pass loads none. A module already loaded (EEXIST)
// counts as loaded. A missing list means there is nothing to load; relative
// paths in it are under /lib/modules.
func loadModules(list string, load func(string) error) error {
	b, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		guestLogf("no %s: loading no modules", list)
		return nil
	}
	if err != nil {
		return err
	}
	var pending []string
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if !filepath.IsAbs(l) {
			l = filepath.Join("/lib/modules", l)
		}
		pending = append(pending, l)
	}
	total := len(pending)
	var errs []error
	for len(pending) > 0 {
		var next []string
		errs = errs[:0]
		for _, p := range pending {
			if err := load(p); err != nil && !errors.Is(err, unix.EEXIST) {
				next = append(next, p)
				errs = append(errs, fmt.Errorf("module %s: %w", p, err))
			}
		}
		if len(next) == len(pending) {
			break
		}
		pending = next
	}
	guestLogf("loaded %d of %d modules", total-len(errs), total)
	return errors.Join(errs...)
}

// powerOff syncs the filesystems and powers the guest off. It never
// returns: if the kernel refuses, it halts, and failing that sleeps.
func powerOff() {
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	guestLogf("power off: %v", err)
	err = unix.Reboot(unix.LINUX_REBOOT_CMD_HALT)
	guestLogf("halt: %v", err)
	for {
		time.Sleep(time.Hour)
	}
}
