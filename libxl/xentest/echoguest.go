// Package xentest supports what runs on real Xen: it finds the guest
// kernel and packs the echo guest (libxl/vchan/testdata/echoguest) into an
// initramfs (this file, for the end-to-end tests and the benchmark,
// tests/bench), and, with the xene2e build tag, gives the end-to-end tests
// a place for their logs. How to run those tests: see libxl/e2e_test.go.
package xentest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Modules the echo guest loads, relative to /lib/modules/VERSION/kernel.
var guestModules = []string{
	"drivers/xen/xen-evtchn.ko",
	"drivers/xen/xen-gntalloc.ko",
	"drivers/xen/xen-gntdev.ko",
	"drivers/block/xen-blkfront.ko",
}

// GuestKernel returns the newest /boot/vmlinuz-*-cloud-amd64 and its
// version.
func GuestKernel() (string, string, error) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*-cloud-amd64")
	if len(ks) == 0 {
		return "", "", fmt.Errorf("no /boot/vmlinuz-*-cloud-amd64 (install linux-image-cloud-amd64)")
	}
	sort.Strings(ks)
	k := ks[len(ks)-1]
	return k, strings.TrimPrefix(filepath.Base(k), "vmlinuz-"), nil
}

// EchoInitramfs writes to out an initramfs holding the echo guest binary
// bin (statically linked) as /init and the modules it loads, taken from
// the module tree of the guest kernel of that version.
func EchoInitramfs(bin, version, out string) error {
	files := map[string]string{"init": bin}
	for _, m := range guestModules {
		files["modules/"+filepath.Base(m)] = filepath.Join("/lib/modules", version, "kernel", m)
	}
	if err := writeInitramfs(out, files); err != nil {
		return fmt.Errorf("echo guest initramfs %s: %w", out, err)
	}
	return nil
}

// writeInitramfs writes a newc cpio archive: /dev/console, /dev, /proc,
// /sys and the given files (archive path -> host path), all executable.
func writeInitramfs(out string, files map[string]string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	ino := 0
	entry := func(name string, mode, rdevMajor, rdevMinor int, data []byte) error {
		ino++
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
		for _, b := range [][]byte{[]byte(hdr), []byte(name), {0}} {
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		if err := pad(w, len(hdr)+len(name)+1); err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		return pad(w, len(data))
	}
	for _, d := range []string{"dev", "proc", "sys", "modules"} {
		if err := entry(d, 0o040755, 0, 0, nil); err != nil {
			return err
		}
	}
	if err := entry("dev/console", 0o020600, 5, 1, nil); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := os.ReadFile(files[n])
		if err != nil {
			return err
		}
		if err := entry(n, 0o100755, 0, 0, data); err != nil {
			return err
		}
	}
	if err := entry("TRAILER!!!", 0, 0, 0, nil); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func pad(w io.Writer, n int) error {
	if p := (4 - n%4) % 4; p > 0 {
		_, err := w.Write(make([]byte, p))
		return err
	}
	return nil
}
