package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// machine describes one QEMU run.
type machine struct {
	QEMU      string // qemu-system-x86_64
	Xen       string // the unpacked hypervisor ELF
	Kernel    string // dom0 kernel
	Initramfs string // dom0 initramfs
	Results   string // host directory shared writable with dom0 (9p tag xenvmout)
	MemMiB    int    // QEMU memory
	Dom0Mem   string // Xen dom0_mem, e.g. 2048M
	SMP       int
	XenArgs   string // extra Xen command line
	Dom0Args  string // extra dom0 kernel command line
	Quiet     bool   // dom0 "quiet"
}

// qemuEscape escapes commas for QEMU option values.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func (m *machine) xenCmdline() string {
	// xsave=0: under QEMU's TCG, Xen's XSAVE-based context switch
	// corrupts vector registers (AVX) across vCPU switches: Go programs in
	// dom0 and the guests crashed at random and copied bytes wrongly (seen
	// as bad checksums through vchan). FXSAVE only, and no AVX, fixes it.
	s := "console=com1 dom0_mem=" + m.Dom0Mem + " loglvl=all guest_loglvl=all smap=false smep=false xsave=0"
	if m.XenArgs != "" {
		s += " " + m.XenArgs
	}
	return s
}

func (m *machine) dom0Cmdline() string {
	s := "console=hvc0 earlyprintk=xen panic=5"
	if m.Quiet {
		s += " quiet"
	}
	if m.Dom0Args != "" {
		s += " " + m.Dom0Args
	}
	return s
}

// args is QEMU's command line. The serial console (Xen and, through Xen's
// console, dom0's hvc0) goes to QEMU's stdout.
func (m *machine) args() []string {
	return []string{
		"-accel", "tcg", "-cpu", "max",
		"-smp", fmt.Sprint(m.SMP), "-m", fmt.Sprint(m.MemMiB),
		"-nographic", "-nodefaults", "-no-user-config", "-no-reboot",
		"-monitor", "none",
		"-chardev", "stdio,id=con,signal=off",
		"-serial", "chardev:con",
		"-kernel", m.Xen,
		"-append", m.xenCmdline(),
		// Multiboot modules: "dom0-kernel cmdline,dom0-initramfs".
		"-initrd", qemuEscape(m.Kernel+" "+m.dom0Cmdline()) + "," + qemuEscape(m.Initramfs),
		"-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
		"-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
		"-fsdev", "local,id=xenvmout,path=" + qemuEscape(m.Results) + ",security_model=none,multidevs=remap",
		"-device", "virtio-9p-pci,fsdev=xenvmout,mount_tag=xenvmout",
	}
}

// lockQEMU takes an exclusive flock on path, waiting for it; waiting is
// called once if the lock is busy. Closing the file releases the lock.
func lockQEMU(path string, waiting func()) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o666)
	if err != nil {
		return nil, err
	}
	os.Chmod(path, 0o666) // let other users share the lock; best effort
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		waiting()
		for {
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return f, nil
}

// tailLines returns the last n lines of the file at path (reading at most
// the last 256 KiB).
func tailLines(path string, n int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := st.Size() - 256<<10
	if off < 0 {
		off = 0
	}
	data, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return "", err
	}
	return lastLines(data, n), nil
}

func lastLines(data []byte, n int) string {
	data = bytes.TrimRight(data, "\n")
	i := len(data)
	for ; n > 0 && i > 0; n-- {
		j := bytes.LastIndexByte(data[:i], '\n')
		if j < 0 {
			i = 0
			break
		}
		i = j
	}
	if i > 0 {
		i++ // skip the newline
	}
	s := string(data[i:])
	// Serial consoles emit \r\n; drop the \r for the host terminal.
	return strings.ReplaceAll(s, "\r", "") + "\n"
}
