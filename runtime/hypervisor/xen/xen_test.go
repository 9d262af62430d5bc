package xen

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vxn-runtime/vxn/libxl"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
)

func TestDomainConfig(t *testing.T) {
	spec := hypervisor.DomainSpec{
		Name: "vxn-abc", Kernel: "/k", Ramdisk: "/i", Cmdline: "console=hvc0",
		MemoryMiB: 128, VCPUs: 2,
		Disks: []hypervisor.Disk{{Path: "/img", Vdev: "xvda", ReadOnly: true}},
	}
	cfg, err := domainConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Type != libxl.TypePV || cfg.TSCMode != libxl.TSCDefault || cfg.MaxMemKiB != 128<<10 ||
		cfg.VCPUs != 2 || cfg.Name != "vxn-abc" || cfg.UUID == (libxl.UUID{}) ||
		len(cfg.Disks) != 1 || cfg.Disks[0] != (libxl.Disk{Path: "/img", Vdev: "xvda", ReadOnly: true}) {
		t.Errorf("PV config = %+v", cfg)
	}
	if _, err := cfg.JSON(); err != nil {
		t.Errorf("libxl rejects it: %v", err)
	}

	spec.Type = hypervisor.GuestPVH
	if cfg, err = domainConfig(spec); err != nil || cfg.Type != libxl.TypePVH || cfg.TSCMode != libxl.TSCNative {
		t.Errorf("PVH config = %+v, %v", cfg, err)
	}
	spec.Type = "hvm"
	if _, err = domainConfig(spec); !errors.Is(err, hypervisor.ErrUnsupported) {
		t.Errorf("hvm: %v", err)
	}
}

func TestShutdownReasonAndState(t *testing.T) {
	for r, want := range map[libxl.ShutdownReason]hypervisor.ShutdownReason{
		libxl.ShutdownPoweroff:  hypervisor.ReasonPoweroff,
		libxl.ShutdownReboot:    hypervisor.ReasonReboot,
		libxl.ShutdownCrash:     hypervisor.ReasonCrash,
		libxl.ShutdownWatchdog:  hypervisor.ReasonCrash,
		libxl.ShutdownDestroyed: hypervisor.ReasonDestroyed,
		libxl.ShutdownSuspend:   hypervisor.ReasonUnknown,
	} {
		if got := shutdownReason(r); got != want {
			t.Errorf("%v -> %v, want %v", r, got, want)
		}
	}
	for _, c := range []struct {
		info libxl.DomainInfo
		want hypervisor.DomainState
	}{
		{libxl.DomainInfo{Running: true}, hypervisor.StateRunning},
		{libxl.DomainInfo{Blocked: true}, hypervisor.StateRunning},
		{libxl.DomainInfo{Paused: true}, hypervisor.StatePaused},
		{libxl.DomainInfo{Shutdown: true, ShutdownReason: libxl.ShutdownPoweroff}, hypervisor.StateShutdown},
		{libxl.DomainInfo{Shutdown: true, ShutdownReason: libxl.ShutdownCrash}, hypervisor.StateCrashed},
		{libxl.DomainInfo{Shutdown: true, Dying: true}, hypervisor.StateDying},
	} {
		if got := domainState(c.info); got != c.want {
			t.Errorf("%+v -> %v, want %v", c.info, got, c.want)
		}
	}
}

func TestBoundedLog(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const max = 1000
	b := &boundedLog{w: f, max: max}
	var all bytes.Buffer
	for i := 0; all.Len() < 5000; i++ {
		line := []byte(strings.Repeat(string(rune('a'+i%26)), i%37) + "\n")
		all.Write(line)
		if n, err := b.Write(line); err != nil || n != len(line) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	big := bytes.Repeat([]byte("Z"), 3*max)
	all.Write(big)
	if _, err := b.Write(big); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > max {
		t.Fatalf("log is %d bytes, bound %d", len(got), max)
	}
	head := all.Bytes()[:max/2]
	if !bytes.HasPrefix(got, append(head[:len(head):len(head)], truncatedMark...)) {
		t.Errorf("log does not start with the first %d bytes and the mark:\n%q", max/2, got)
	}
	if !bytes.HasSuffix(all.Bytes(), got[max/2+len(truncatedMark):]) {
		t.Errorf("log does not end with the latest output")
	}
}

func TestNewWithoutXen(t *testing.T) {
	h, err := New(Options{})
	if err == nil {
		h.Close()
		t.Skip("Xen is running here")
	}
	var le *libxl.Error
	if !errors.As(err, &le) {
		t.Errorf("New = %v, want a libxl error", err)
	}
}
