// Command echoguest is /init of the guest used by the end-to-end tests of
// the libxl, vchan and xen packages; TestStaticLink also links it
// statically, as guestinit is linked.
//
// It mounts devtmpfs and proc, loads every /modules/*.ko (xen-evtchn,
// xen-gntalloc, xen-gntdev, xen-blkfront) with finit_module, then serves
// sessions (see session) on a vchan at vchan.AgentPath(own domid) for dom0,
// one client after the other, until the last. With
// echoguest.waitdisk=NAME on the kernel command line it then waits up to a
// minute for /sys/block/NAME and reports its size. With echoguest.ring=N it
// uses rings of N bytes. Then it powers the guest off; on any failure it
// exits, which makes the guest kernel panic (a crash).
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
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
	for {
		c, err := vchan.Listen(path, 0, vchan.WithRingSize(ring))
		if err != nil {
			return err
		}
		log.Printf("listening at %s, rings of %d bytes", path, ring)
		more, err := session(c)
		if cerr := c.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if !more {
			break
		}
	}
	if disk := args["echoguest.waitdisk"]; disk != "" {
		return waitDisk(disk)
	}
	return nil
}

// session serves one client. It first sends the greeting 'H' (which waits
// in the ring until the client connects: a client that reads EOF instead
// found the previous session's server, and dials again). The client's
// first byte picks what to do:
//
//	'e' echo every byte until EOF
//	's' read until EOF
//	'r' read an 8-byte big-endian count N, send N random bytes, close
//
// and in upper case ('E', 'S', 'R') it is the last session. The guest logs
// the SHA-256 of the bytes it received or sent, so that dom0 can check
// them in the console log.
func session(c io.ReadWriter) (bool, error) {
	if _, err := c.Write([]byte("H")); err != nil {
		return false, err
	}
	mode := make([]byte, 1)
	if _, err := io.ReadFull(c, mode); err != nil {
		return false, fmt.Errorf("reading the mode: %w", err)
	}
	start := time.Now()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	switch mode[0] | 0x20 {
	case 'e':
		n, err := io.CopyBuffer(c, io.TeeReader(c, h), buf)
		if err != nil {
			return false, fmt.Errorf("echo after %d bytes: %w", n, err)
		}
		log.Printf("echoed %d bytes in %v, sha256 %x", n, time.Since(start), h.Sum(nil))
	case 's':
		n, err := io.CopyBuffer(h, c, buf)
		if err != nil {
			return false, fmt.Errorf("sink after %d bytes: %w", n, err)
		}
		log.Printf("received %d bytes in %v, sha256 %x", n, time.Since(start), h.Sum(nil))
	case 'r':
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return false, err
		}
		total := binary.BigEndian.Uint64(hdr[:])
		for left := total; left > 0; {
			b := buf[:min(left, uint64(len(buf)))]
			rand.Read(b)
			h.Write(b)
			if _, err := c.Write(b); err != nil {
				return false, fmt.Errorf("source: %w", err)
			}
			left -= uint64(len(b))
		}
		log.Printf("sent %d bytes in %v, sha256 %x", total, time.Since(start), h.Sum(nil))
	default:
		return false, fmt.Errorf("unknown mode %q", mode)
	}
	return mode[0]&0x20 != 0, nil
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
