//go:build xene2e

// End-to-end test of the Xen hypervisor implementation, on real Xen. Run it
// in the xenvm machine, from the repository root:
//
//	CGO_ENABLED=1 go build -o out/echoguest \
//		-ldflags '-linkmode external -extldflags "-static"' ./libxl/vchan/testdata/echoguest
//	go test -c -tags xene2e -o out/xen-e2e.test ./runtime/hypervisor/xen
//	go run ./tests/xenvm -xen-args xsave=0 -env VXN_ECHOGUEST=$PWD/out/echoguest -- out/xen-e2e.test -test.v
//
// VXN_E2E_GUEST_ARGS is appended to the guest kernel command line.
//
// xsave=0: under QEMU's TCG, Xen 4.17 with XSAVE enabled does not keep
// vector registers apart between vCPUs of PV domains: a memcpy in dom0
// or in a PV guest now and then stores another context's register
// contents (seen as 64 wrong bytes at the start of a copied block in the
// vchan data, and as os/exec children in dom0 dying of SIGSEGV). Xen
// without XSAVE (FXSAVE only) shows neither.
package xen_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vxn-runtime/vxn/libxl/xentest"
	"github.com/vxn-runtime/vxn/libxl/xtl"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/hypervisor/xen"
)

func newHypervisor(t *testing.T) *xen.Hypervisor {
	xentest.Require(t)
	f, err := os.Create(filepath.Join(xentest.ResultsDir(t), "xen-e2e-"+t.Name()+".log"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := xen.New(xen.Options{Log: xtl.WriterLog(f), LogLevel: xtl.Debug})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		f.Close()
	})
	return h
}

func spec(t *testing.T, name string, typ hypervisor.GuestType) hypervisor.DomainSpec {
	kernel, initramfs := xentest.EchoGuest(t)
	return hypervisor.DomainSpec{
		Name:       name,
		Type:       typ,
		Kernel:     kernel,
		Ramdisk:    initramfs,
		Cmdline:    strings.TrimSpace("console=hvc0 " + os.Getenv("VXN_E2E_GUEST_ARGS")),
		MemoryMiB:  256,
		VCPUs:      1,
		ConsoleLog: filepath.Join(xentest.ResultsDir(t), name+".console"),
	}
}

func TestEchoGuest(t *testing.T) {
	h := newHypervisor(t)
	for _, typ := range []hypervisor.GuestType{hypervisor.GuestPV, hypervisor.GuestPVH} {
		t.Run(string(typ), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			s := spec(t, "vxn-xen-e2e-"+string(typ), typ)
			t0 := time.Now()
			d, err := h.Create(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			tCreate := time.Since(t0)
			defer d.Destroy(ctx)

			if _, err := h.Create(ctx, s); err == nil {
				t.Error("a second domain with the same name was created")
			}
			info, err := d.Info(ctx)
			if err != nil || info.Name != s.Name || info.State != hypervisor.StateRunning || info.VCPUs != 1 {
				t.Errorf("Info = %+v, %v", info, err)
			}
			found, err := h.Lookup(ctx, s.Name)
			if err != nil {
				t.Fatal(err)
			}
			if err := found.Pause(ctx); err != nil {
				t.Fatal(err)
			}
			if info, err := d.Info(ctx); err != nil || info.State != hypervisor.StatePaused {
				t.Errorf("paused: %+v, %v", info, err)
			}
			if err := found.Unpause(ctx); err != nil {
				t.Fatal(err)
			}

			rw, err := d.Connect(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tConnect := time.Since(t0)
			// The echo guest's protocol: greeting, then "echo, last session".
			greeting := make([]byte, 1)
			if _, err := io.ReadFull(rw, greeting); err != nil || greeting[0] != 'H' {
				t.Fatalf("greeting %q, %v", greeting, err)
			}
			if _, err := rw.Write([]byte("E")); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 8<<20)
			rand.Read(data)
			t1 := time.Now()
			go rw.Write(data)
			got := make([]byte, len(data))
			if _, err := io.ReadFull(rw, got); err != nil {
				t.Fatal(err)
			}
			tEcho := time.Since(t1)
			if !bytes.Equal(got, data) {
				t.Error("echo differs")
			}
			rw.Close()

			r, err := d.Wait(ctx)
			if err != nil || r != hypervisor.ReasonPoweroff {
				t.Errorf("Wait = %v, %v", r, err)
			}
			if info, err := d.Info(ctx); err != nil || info.State != hypervisor.StateShutdown {
				t.Errorf("after poweroff: %+v, %v", info, err)
			}
			t2 := time.Now()
			if err := d.Destroy(ctx); err != nil {
				t.Fatal(err)
			}
			tDestroy := time.Since(t2)
			if err := d.Destroy(ctx); err != nil {
				t.Errorf("second Destroy: %v", err)
			}
			if err := found.Destroy(ctx); err != nil {
				t.Errorf("Destroy through Lookup after Destroy: %v", err)
			}
			if _, err := h.Lookup(ctx, s.Name); !errors.Is(err, hypervisor.ErrNotFound) {
				t.Errorf("Lookup after Destroy = %v", err)
			}
			if _, err := d.Info(ctx); !errors.Is(err, hypervisor.ErrNotFound) {
				t.Errorf("Info after Destroy = %v", err)
			}
			clog, _ := os.ReadFile(s.ConsoleLog)
			if !bytes.Contains(clog, []byte("Linux version")) || !bytes.Contains(clog, []byte("echoguest: powering off")) {
				t.Errorf("console log %s lacks the boot or the end", s.ConsoleLog)
			}
			t.Logf("TIMING %s: Create %v, Connect done at %v, echo 8 MiB %v (%.1f MB/s each way), Destroy %v",
				typ, tCreate.Round(time.Millisecond), tConnect.Round(time.Millisecond), tEcho.Round(time.Millisecond),
				float64(len(data))/tEcho.Seconds()/1e6, tDestroy.Round(time.Millisecond))
		})
	}
}

// A guest whose initramfs holds nothing (zero padding) panics at boot:
// Connect gives up as soon as it has crashed, Wait says crash, the console
// shows the panic.
func TestCrashingGuest(t *testing.T) {
	h := newHypervisor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := spec(t, "vxn-xen-e2e-crash", hypervisor.GuestPV)
	s.Ramdisk = filepath.Join(t.TempDir(), "zeros.cpio")
	if err := os.WriteFile(s.Ramdisk, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := h.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Destroy(ctx)
	if _, err := d.Connect(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect = %v, want an early failure", err)
	}
	if r, err := d.Wait(ctx); err != nil || r != hypervisor.ReasonCrash {
		t.Errorf("Wait = %v, %v", r, err)
	}
	if info, err := d.Info(ctx); err != nil || info.State != hypervisor.StateCrashed {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if err := d.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	clog, _ := os.ReadFile(s.ConsoleLog)
	if !bytes.Contains(clog, []byte("Kernel panic")) {
		t.Errorf("console log %s shows no panic", s.ConsoleLog)
	}
}

// Destroying a running guest ends Wait with "destroyed".
func TestDestroyRunning(t *testing.T) {
	h := newHypervisor(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := spec(t, "vxn-xen-e2e-destroy", hypervisor.GuestPV)
	d, err := h.Create(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	rw, err := d.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan hypervisor.ShutdownReason, 1)
	go func() {
		r, _ := d.Wait(ctx)
		waited <- r
	}()
	if err := d.Destroy(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-waited; r != hypervisor.ReasonDestroyed {
		t.Errorf("Wait = %v, want destroyed", r)
	}
	// Destroy closed the channel.
	if _, err := rw.Read(make([]byte, 1)); err == nil {
		t.Error("Read on the channel of a destroyed guest succeeded")
	}
}
