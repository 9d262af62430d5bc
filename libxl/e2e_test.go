//go:build xene2e

// End-to-end test of the libxl and vchan packages on real Xen. It creates
// PV and PVH domains from the cloud guest kernel with the echo guest as
// /init, pushes data through the vchan, hot-plugs a disk, and times it all.
// Run it in the xenvm machine, from the repository root:
//
//	CGO_ENABLED=1 go build -o out/echoguest \
//		-ldflags '-linkmode external -extldflags "-static"' ./libxl/vchan/testdata/echoguest
//	go test -c -tags xene2e -o out/libxl-e2e.test ./libxl
//	go run ./tests/xenvm -xen-args xsave=0 -env VXN_ECHOGUEST=$PWD/out/echoguest -- out/libxl-e2e.test -test.v
//
// The libxl log and guest consoles land in out/xenvm/results.
// VXN_E2E_GUEST_ARGS is appended to the guest kernel command line.
//
// xsave=0: under QEMU's TCG, Xen 4.17 with XSAVE enabled does not keep
// vector registers apart between vCPUs of PV domains: a memcpy in dom0
// or in a PV guest now and then stores another context's register
// contents (seen as 64 wrong bytes at the start of a copied block in the
// vchan data, and as os/exec children in dom0 dying of SIGSEGV). Xen
// without XSAVE (FXSAVE only) shows neither.
package libxl_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vxn-runtime/vxn/libxl"
	"github.com/vxn-runtime/vxn/libxl/vchan"
	"github.com/vxn-runtime/vxn/libxl/xentest"
	"github.com/vxn-runtime/vxn/libxl/xtl"
)

const echoBytes = 8 << 20

func TestE2E(t *testing.T) {
	xentest.Require(t)
	kernel, initramfs := xentest.EchoGuest(t)
	lg := xentest.Logger(t, "libxl-e2e")
	c, err := libxl.New(lg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for _, tc := range []struct {
		name string
		typ  libxl.DomainType
		ring int
		disk bool
	}{
		{"pv", libxl.TypePV, 0, true},
		{"pv-ring64k", libxl.TypePV, 64 << 10, false},
		{"pv-ring256k", libxl.TypePV, 256 << 10, false},
		{"pvh", libxl.TypePVH, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &libxl.DomainConfig{
				Name:      "vxn-e2e-" + tc.name,
				Type:      tc.typ,
				Kernel:    kernel,
				Ramdisk:   initramfs,
				Cmdline:   strings.TrimSpace("console=hvc0 " + os.Getenv("VXN_E2E_GUEST_ARGS")),
				MaxMemKiB: 256 << 10,
				VCPUs:     1,
			}
			if tc.typ == libxl.TypePVH {
				cfg.TSCMode = libxl.TSCNative
			}
			if tc.ring != 0 {
				cfg.Cmdline += fmt.Sprintf(" echoguest.ring=%d", tc.ring)
			}
			if tc.disk {
				cfg.Cmdline += " echoguest.waitdisk=xvdb"
			}
			runGuest(t, c, lg, cfg, tc.disk)
		})
	}
}

// execLoop runs short child processes with os/exec until stop is closed,
// proving that libxl's SIGCHLD handling leaves Go's children alone.
func execLoop(t *testing.T, stop chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				t.Logf("os/exec ran %d children alongside libxl", n)
				return
			default:
			}
			if err := exec.Command("true").Run(); err != nil {
				t.Errorf("os/exec child %d: %v", n, err)
				return
			}
		}
	}()
	return &wg
}

func runGuest(t *testing.T, c *libxl.Context, lg *xtl.Logger, cfg *libxl.DomainConfig, disk bool) {
	stop := make(chan struct{})
	wg := execLoop(t, stop)
	defer wg.Wait()
	defer close(stop)

	t0 := time.Now()
	domid, err := c.CreateDomain(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tCreate := time.Since(t0)
	destroyed := false
	defer func() {
		if !destroyed {
			c.Destroy(domid)
		}
	}()

	// The console, until the domain goes.
	consoleLog := filepath.Join(xentest.ResultsDir(t), cfg.Name+".console")
	console := captureConsole(t, c, domid, consoleLog)

	if err := c.Unpause(domid); err != nil {
		t.Fatal(err)
	}
	info, err := c.DomainInfo(domid)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != cfg.Name || info.UUID != cfg.UUID || info.Paused || info.Shutdown ||
		info.MaxMemKiB < cfg.MaxMemKiB || info.VCPUs != 1 {
		t.Errorf("DomainInfo = %+v", info)
	}
	if id, err := c.NameToDomid(cfg.Name); err != nil || id != domid {
		t.Errorf("NameToDomid = %d, %v; want %d", id, err, domid)
	}
	if _, err := c.NameToDomid("no-such-domain"); !errors.Is(err, libxl.ErrDomainNotFound) {
		t.Errorf("NameToDomid(no-such-domain) = %v", err)
	}
	all, err := c.ListDomains()
	if err != nil || len(all) < 2 || all[0].Domid != 0 {
		t.Errorf("ListDomains = %+v, %v", all, err)
	}

	// A wait that gives up.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if _, err := c.WaitForDeath(ctx, domid); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitForDeath with a short deadline = %v", err)
	}
	cancel()
	type death struct {
		r   libxl.ShutdownReason
		err error
		at  time.Duration
	}
	died := make(chan death, 1)
	go func() {
		r, err := c.WaitForDeath(context.Background(), domid)
		died <- death{r, err, time.Since(t0)}
	}()

	// Sessions with the echo guest: echo, dom0 to guest, guest to dom0.
	conn := dialSession(t, domid, 0, lg, 'e')
	tConnect := time.Since(t0)

	// Pause and unpause with the channel open.
	if err := c.Pause(domid); err != nil {
		t.Fatal(err)
	}
	if info, err := c.DomainInfo(domid); err != nil || !info.Paused {
		t.Errorf("paused domain: %+v, %v", info, err)
	}
	if err := c.Unpause(domid); err != nil {
		t.Fatal(err)
	}

	data := make([]byte, echoBytes)
	rand.Read(data)
	tEcho, err := echo(conn, data)
	if err != nil {
		t.Error(err)
	}
	conn.Close()

	conn = dialSession(t, domid, 1, lg, 's')
	t1 := time.Now()
	if _, err := conn.Write(data); err != nil {
		t.Fatal(err)
	}
	tSink := time.Since(t1)
	conn.Close()

	// Hot-plug and unplug a disk while the guest runs.
	var img string
	var tDiskAdd, tDiskRemove time.Duration
	if disk {
		img = filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 64<<20); err != nil {
			t.Fatal(err)
		}
		t1 := time.Now()
		if err := c.DiskAdd(domid, libxl.Disk{Path: img, Vdev: "xvdc", ReadOnly: true}); err != nil {
			t.Fatal(err)
		}
		tDiskAdd = time.Since(t1)
		if err := c.DiskAdd(domid, libxl.Disk{Path: img, Vdev: "xvdc"}); err == nil {
			t.Error("a second xvdc was added")
		}
		t1 = time.Now()
		if err := c.DiskRemove(domid, "xvdc"); err != nil {
			t.Fatal(err)
		}
		tDiskRemove = time.Since(t1)
		if err := c.DiskRemove(domid, "xvdc"); err == nil {
			t.Error("xvdc was removed twice")
		}
	}

	conn = dialSession(t, domid, 2, lg, 'R')
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], echoBytes)
	if _, err := conn.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	// Timed from the first byte: the guest generates the data first.
	got := make([]byte, echoBytes)
	if _, err := io.ReadFull(conn, got[:1]); err != nil {
		t.Fatal(err)
	}
	t1 = time.Now()
	if _, err := io.ReadFull(conn, got[1:]); err != nil {
		t.Fatalf("reading from the guest: %v", err)
	}
	tSource := time.Since(t1)
	if n, err := conn.Read(got[:1]); n != 0 || err != io.EOF {
		t.Errorf("after the data: %d, %v; want EOF", n, err)
	}
	conn.Close()

	// The guest waits for xvdb after its last session.
	if disk {
		if err := c.DiskAdd(domid, libxl.Disk{Path: img, Vdev: "xvdb"}); err != nil {
			t.Fatal(err)
		}
	}

	var d death
	select {
	case d = <-died:
	case <-time.After(2 * time.Minute):
		t.Fatal("the guest did not shut down")
	}
	if d.err != nil || d.r != libxl.ShutdownPoweroff {
		t.Errorf("WaitForDeath = %v, %v; want poweroff (console: %s)", d.r, d.err, consoleLog)
	}
	if info, err := c.DomainInfo(domid); err != nil || !info.Shutdown || info.ShutdownReason != libxl.ShutdownPoweroff {
		t.Errorf("shut down domain: %+v, %v", info, err)
	}
	// Waiting on a domain that has shut down already answers at once.
	if r, err := c.WaitForDeath(context.Background(), domid); err != nil || r != libxl.ShutdownPoweroff {
		t.Errorf("second WaitForDeath = %v, %v", r, err)
	}

	t2 := time.Now()
	if err := c.Destroy(domid); err != nil {
		t.Fatal(err)
	}
	tDestroy := time.Since(t2)
	destroyed = true
	<-console
	if _, err := c.DomainInfo(domid); !errors.Is(err, libxl.ErrDomainNotFound) {
		t.Errorf("DomainInfo after Destroy = %v", err)
	}
	if err := c.Destroy(domid); !errors.Is(err, libxl.ErrDomainNotFound) {
		t.Errorf("second Destroy = %v", err)
	}
	if r, err := c.WaitForDeath(context.Background(), domid); err != nil || r != libxl.ShutdownDestroyed {
		t.Errorf("WaitForDeath of a destroyed domain = %v, %v", r, err)
	}

	clog, _ := os.ReadFile(consoleLog)
	for _, want := range []string{
		fmt.Sprintf("echoed %d bytes in ", echoBytes),
		fmt.Sprintf("received %d bytes in .*, sha256 %x", echoBytes, sha256.Sum256(data)),
		fmt.Sprintf("sent %d bytes in .*, sha256 %x", echoBytes, sha256.Sum256(got)),
	} {
		if !regexp.MustCompile(want).Match(clog) {
			t.Errorf("console lacks %q (corrupted data?); see %s", want, consoleLog)
		}
	}
	if disk && !bytes.Contains(clog, []byte("disk xvdb present, 131072 sectors")) {
		t.Errorf("the guest did not see the hot-plugged disk; see %s", consoleLog)
	}
	mbps := func(d time.Duration) float64 { return float64(echoBytes) / d.Seconds() / 1e6 }
	t.Logf("TIMING %s: create %v, vchan connected at %v (from create), %d MiB: echo %.1f MB/s each way, "+
		"dom0->guest %.1f MB/s, guest->dom0 %.1f MB/s; disk add %v, disk remove %v, poweroff seen at %v, destroy %v",
		cfg.Name, tCreate.Round(time.Millisecond), tConnect.Round(time.Millisecond), echoBytes>>20,
		mbps(tEcho), mbps(tSink), mbps(tSource), tDiskAdd.Round(time.Millisecond), tDiskRemove.Round(time.Millisecond),
		d.at.Round(time.Millisecond), tDestroy.Round(time.Millisecond))
}

// dialSession connects to session k of the echo guest (see its doc) and
// sends the mode byte.
func dialSession(t *testing.T, domid uint32, k int, lg *xtl.Logger, mode byte) *vchan.Conn {
	t.Helper()
	path := vchan.AgentPath(domid)
	if k > 0 {
		path += fmt.Sprintf("-%d", k)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		conn, err := vchan.Dial(domid, path, vchan.WithLogger(lg))
		if err == nil {
			var greeting [1]byte
			if _, err = io.ReadFull(conn, greeting[:]); err == nil {
				if greeting[0] != 'H' {
					t.Fatalf("greeting %q", greeting)
				}
				if _, err := conn.Write([]byte{mode}); err != nil {
					t.Fatal(err)
				}
				return conn
			}
			conn.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// echo writes data and reads it back concurrently, and returns the time
// taken.
func echo(conn *vchan.Conn, data []byte) (time.Duration, error) {
	n := len(data)
	start := time.Now()
	werr := make(chan error, 1)
	go func() {
		for off := 0; off < n; off += 64 << 10 {
			if _, err := conn.Write(data[off:min(off+64<<10, n)]); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	got := make([]byte, n)
	if _, err := io.ReadFull(conn, got); err != nil {
		return 0, fmt.Errorf("reading the echo: %w", err)
	}
	elapsed := time.Since(start)
	if err := <-werr; err != nil {
		return 0, fmt.Errorf("writing: %w", err)
	}
	if !bytes.Equal(got, data) {
		return elapsed, fmt.Errorf("echo differs: %s", describeDiff(got, data))
	}
	return elapsed, nil
}

// describeDiff summarises where got differs from want: the differing runs,
// and for the first ones what the bytes look like.
func describeDiff(got, want []byte) string {
	var b strings.Builder
	bad, runs := 0, 0
	for i := 0; i < len(got); {
		if got[i] == want[i] {
			i++
			continue
		}
		j := i
		for j < len(got) && (got[j] != want[j] || (j+1 < len(got) && got[j+1] != want[j+1])) {
			j++
		}
		bad += j - i
		runs++
		if runs <= 8 {
			stale := "no"
			for _, back := range []int{64 << 10, 256 << 10, 1 << 20} {
				if i >= back && bytes.Equal(got[i:j], want[i-back:j-back]) {
					stale = fmt.Sprintf("data from %d bytes earlier", back)
				}
			}
			fmt.Fprintf(&b, "[%d..%d) len %d got %x want %x, zero=%v, stale=%s; ",
				i, j, j-i, got[i:min(j, i+8)], want[i:min(j, i+8)], bytes.Count(got[i:j], []byte{0}) == j-i, stale)
		}
		i = j
	}
	fmt.Fprintf(&b, "%d bytes in %d runs of %d", bad, runs, len(got))
	return b.String()
}

// captureConsole copies the domain's console pty to path until the domain
// goes away; the returned channel closes then.
func captureConsole(t *testing.T, c *libxl.Context, domid uint32, path string) chan struct{} {
	done := make(chan struct{})
	var tty string
	var err error
	for i := 0; i < 50; i++ {
		if tty, err = c.ConsoleTTY(domid); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.OpenFile(tty, os.O_RDONLY|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		io.Copy(out, in)
		in.Close()
		out.Close()
	}()
	return done
}
