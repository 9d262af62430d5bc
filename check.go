package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/guestkernel"
	"github.com/vxn-runtime/vxn/runtime/hypervisor/xen"
	"github.com/vxn-runtime/vxn/runtime/network"
	"github.com/vxn-runtime/vxn/runtime/rootfs"
)

var checkCommand = &cli.Command{
	Name:  "check",
	Usage: "check that this host can run containers with vxn, and say how to fix what is missing",
	Action: func(c *cli.Context) error {
		cfg, err := loadConfig(c.String("config"))
		if err != nil {
			return err
		}
		cfg.override(c)
		g := cfg.guest()
		failed := 0
		report := func(name string, err error) {
			if err != nil {
				failed++
				fmt.Printf("FAIL  %-12s %v\n", name, err)
				return
			}
			fmt.Printf("ok    %s\n", name)
		}
		report("root", func() error {
			if os.Geteuid() != 0 {
				return errors.New("vxn manages Xen domains: run it as root")
			}
			return nil
		}())
		report("xen", checkXen())
		report("xenstored", func() error {
			for _, p := range []string{"/run/xenstored/socket", "/var/run/xenstored/socket", "/dev/xen/xenbus"} {
				if _, err := os.Stat(p); err == nil {
					return nil
				}
			}
			return errors.New("xenstored is not reachable: start the Xen toolstack (xencommons)")
		}())
		report("libxl", func() error {
			if c.String("hypervisor") != "xen" {
				return nil
			}
			hv, err := openXen()
			if err != nil {
				return fmt.Errorf("%v: is this a Xen dom0 with xen-utils installed?", err)
			}
			return hv.Close()
		}())
		report("kernel", checkFile(g.Kernel, "guest kernel", "install "+guestkernel.Package+" or set \"kernel\" in "+c.String("config")))
		report("volumes", checkVolumes(g.Kernel))
		report("initramfs", checkFile(g.Initramfs, "guest initramfs", "run `make guest && make install`, or set \"initramfs\" in "+c.String("config")))
		report("mke2fs", func() error { _, err := rootfs.Mke2fs(); return err }())
		report("network", func() error {
			missing, err := network.MissingModules()
			if err == nil && len(missing) > 0 {
				err = fmt.Errorf("kernel modules %s are missing: containers with a network cannot get it (install them with dom0's kernel)", strings.Join(missing, ", "))
			}
			return err
		}())
		if failed > 0 {
			return fmt.Errorf("%d check(s) failed", failed)
		}
		return nil
	},
}

// checkXen tells whether this is a Xen dom0.
func checkXen() error {
	b, err := os.ReadFile("/proc/xen/capabilities")
	if err != nil {
		return errors.New("not running on Xen (no /proc/xen/capabilities): boot the Xen hypervisor, and mount xenfs on /proc/xen")
	}
	if !strings.Contains(string(b), "control_d") {
		return errors.New("this is a Xen guest, not dom0: run vxn in dom0")
	}
	return nil
}

// checkVolumes tells whether directory volumes can work: the guest
// kernel has 9p over Xen (when its config is in /boot, as Debian installs
// it) and the 9pfs backend, qemu-xen, is installed.
func checkVolumes(kernel string) error {
	if err := checkFile(xen.QEMUBackend, "9pfs backend for directory volumes", "install qemu-system-xen"); err != nil {
		return err
	}
	if kernel == "" || !strings.HasPrefix(filepath.Base(kernel), "vmlinuz-") {
		return nil
	}
	kconfig := filepath.Join(filepath.Dir(kernel), "config-"+strings.TrimPrefix(filepath.Base(kernel), "vmlinuz-"))
	b, err := os.ReadFile(kconfig)
	if err != nil {
		return nil // not a Debian-style /boot: nothing to tell
	}
	if !regexp.MustCompile(`(?m)^CONFIG_NET_9P_XEN=[ym]$`).Match(b) {
		return fmt.Errorf("guest kernel %s has no 9p over Xen (CONFIG_NET_9P_XEN, says %s): containers with directory volumes will fail; use %s", kernel, kconfig, guestkernel.Package)
	}
	return nil
}

func checkFile(path, what, fix string) error {
	if path == "" {
		return fmt.Errorf("no %s found: %s", what, fix)
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s %s: %v: %s", what, path, err, fix)
	}
	return nil
}
