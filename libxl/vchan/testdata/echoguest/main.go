// Command echoguest is /init of the guest used by the end-to-end tests of
// the libxl, vchan and xen packages; TestStaticLink also links it
// statically, as guestinit is linked.
//
// It mounts devtmpfs and proc, loads every /modules/*.ko (xen-evtchn,
// xen-gntalloc, xen-gntdev, xen-blkfront) with finit_module, serves a vchan
// at vchan.AgentPath(own domid) for dom0 and echoes every byte back until
// dom0 closes, then logs the SHA-256 of what it received. With echoguest.waitdisk=NAME on the kernel command line it
// then waits up to a minute for /sys/block/NAME and reports its size. With
// echoguest.ring=N it uses rings of N bytes. Then it powers the guest off;
// on any failure it exits, which makes the guest kernel panic (a crash).
package main

import (
	"crypto/sha256"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/libxl/vchan"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("echoguest: ")
	if err := run(); err != nil {
		log.Fatal(err)
	}
	log.Print("powering off")
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	for _, m := range []struct{ src, dir, fs string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dir, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	mods, _ := filepath.Glob("/modules/*.ko")
	for _, m := range mods {
		if err := loadModule(m); err != nil {
			return err
		}
	}
	args, err := cmdline()
	if err != nil {
		return err
	}
	ring := vchan.DefaultRingSize
	if s := args["echoguest.ring"]; s != "" {
		if ring, err = strconv.Atoi(s); err != nil {
			return fmt.Errorf("echoguest.ring: %w", err)
		}
	}

	domid, err := vchan.OwnDomid()
	if err != nil {
		return err
	}
	path := vchan.AgentPath(domid)
	c, err := vchan.Listen(path, 0, vchan.WithRingSize(ring))
	if err != nil {
		return err
	}
	log.Printf("listening at %s, rings of %d bytes", path, ring)
	start := time.Now()
	h := sha256.New()
	n, err := io.CopyBuffer(c, io.TeeReader(c, h), make([]byte, 256<<10))
	if err != nil {
		return fmt.Errorf("echo after %d bytes: %w", n, err)
	}
	log.Printf("echoed %d bytes in %v, sha256 %x", n, time.Since(start), h.Sum(nil))
	if err := c.Close(); err != nil {
		return err
	}

	if disk := args["echoguest.waitdisk"]; disk != "" {
		return waitDisk(disk)
	}
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	return nil
}

func cmdline() (map[string]string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	args := map[string]string{}
	for _, f := range strings.Fields(string(b)) {
		k, v, _ := strings.Cut(f, "=")
		args[k] = v
	}
	return args, nil
}

func waitDisk(name string) error {
	sizeFile := filepath.Join("/sys/block", name, "size")
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(sizeFile); err == nil {
			log.Printf("disk %s present, %s sectors", name, strings.TrimSpace(string(b)))
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("disk %s did not appear", name)
}
