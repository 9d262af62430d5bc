// Command echoguest is /init of the guest used by the end-to-end tests of
// the libxl, vchan and xen packages; TestStaticLink also links it
// statically, as guestinit is linked.
//
// It mounts devtmpfs and proc, loads every /modules/*.ko (xen-evtchn,
// xen-gntalloc, xen-gntdev, xen-blkfront) with finit_module, then serves
// sessions (see session) on a vchan for dom0, one client after the other,
// until the last: the first at vchan.AgentPath(own domid), session k > 0
// at that path plus "-k". With
// echoguest.waitdisk=NAME on the kernel command line it then waits up to a
// minute for /sys/block/NAME and reports its size. With echoguest.ring=N it
// uses rings of N bytes. Then it powers the guest off; on any failure it
// exits, which makes the guest kernel panic (a crash).
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
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
	for k := 0; ; k++ {
		// A fresh path per session: a client never finds the entries of
		// the previous session's server.
		path := vchan.AgentPath(domid)
		if k > 0 {
			path += "-" + strconv.Itoa(k)
		}
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

// session serves one client. It first sends the greeting 'H', which waits
// in the ring until the client connects. The client's first byte picks
// what to do:
//
//	'e' echo every byte until EOF
//	's' read until EOF (at most maxSink bytes)
//	'r' read an 8-byte big-endian count N, send N random bytes, close
//
// and in upper case ('E', 'S', 'R') it is the last session. For 's' and
// 'r' the guest logs the SHA-256 of the bytes it received or sent, so that
// dom0 can check them in the console log; it computes it outside the
// transfer, so as not to slow it down.
const maxSink = 16 << 20

func session(c io.ReadWriter) (bool, error) {
	// Memory for a sink, touched now so that page faults do not slow down
	// the transfer.
	sink := make([]byte, maxSink)
	for i := 0; i < len(sink); i += os.Getpagesize() {
		sink[i] = 1
	}
	if _, err := c.Write([]byte("H")); err != nil {
		return false, err
	}
	mode := make([]byte, 1)
	if _, err := io.ReadFull(c, mode); err != nil {
		return false, fmt.Errorf("reading the mode: %w", err)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	switch mode[0] | 0x20 {
	case 'e':
		n, err := io.CopyBuffer(c, c, buf)
		if err != nil {
			return false, fmt.Errorf("echo after %d bytes: %w", n, err)
		}
		log.Printf("echoed %d bytes in %v", n, time.Since(start))
	case 's':
		n, err := io.ReadFull(c, sink)
		if err == nil {
			return false, fmt.Errorf("sink: %d bytes or more", maxSink)
		} else if err != io.ErrUnexpectedEOF && err != io.EOF {
			return false, fmt.Errorf("sink after %d bytes: %w", n, err)
		}
		elapsed := time.Since(start)
		log.Printf("received %d bytes in %v, sha256 %x", n, elapsed, sha256.Sum256(sink[:n]))
	case 'r':
		var hdr [8]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return false, err
		}
		// Generated (and hashed) before sending, not while.
		data := make([]byte, binary.BigEndian.Uint64(hdr[:]))
		rand.NewChaCha8([32]byte{}).Read(data)
		sum := sha256.Sum256(data)
		start = time.Now()
		if _, err := c.Write(data); err != nil {
			return false, fmt.Errorf("source: %w", err)
		}
		log.Printf("sent %d bytes in %v, sha256 %x", len(data), time.Since(start), sum)
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
