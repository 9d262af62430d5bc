package xen

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	cfg, err := domainConfig(spec, nil)
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
	if cfg, err = domainConfig(spec, nil); err != nil || cfg.Type != libxl.TypePVH || cfg.TSCMode != libxl.TSCNative {
		t.Errorf("PVH config = %+v, %v", cfg, err)
	}
	spec.Type = "hvm"
	if _, err = domainConfig(spec, nil); !errors.Is(err, hypervisor.ErrUnsupported) {
		t.Errorf("hvm: %v", err)
	}
}

func TestDomainConfigShares(t *testing.T) {
	spec := hypervisor.DomainSpec{
		Name: "vxn-abc", Kernel: "/k", MemoryMiB: 128,
		Shares: []hypervisor.Share{{Tag: "vol0", Path: "/srv/a"}, {Tag: "vol1", Path: "/srv/b", ReadOnly: true}},
	}
	cfg, err := domainConfig(spec, []string{"/srv/a", "/run/vxn/abc/share-vol1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []libxl.P9{
		{Tag: "vol0", Path: "/srv/a", SecurityModel: "passthrough"},
		{Tag: "vol1", Path: "/run/vxn/abc/share-vol1", SecurityModel: "passthrough"},
	}
	if len(cfg.P9s) != 2 || cfg.P9s[0] != want[0] || cfg.P9s[1] != want[1] {
		t.Errorf("p9s = %+v, want %+v", cfg.P9s, want)
	}
	if _, err := cfg.JSON(); err != nil {
		t.Errorf("libxl rejects it: %v", err)
	}
	if _, err := domainConfig(spec, []string{"/srv/a"}); err == nil {
		t.Error("a share without a path was accepted")
	}
}

func TestReadOnlyView(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (open_tree)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "before"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	paths, views, err := shareViews([]hypervisor.Share{{Tag: "vol0", Path: "/srv/rw"}, {Tag: "vol1", Path: dir, ReadOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || paths[0] != "/srv/rw" || len(views) != 1 {
		t.Fatalf("paths %q, %d views", paths, len(views))
	}
	p := paths[1]
	if !strings.HasPrefix(p, "/proc/") {
		t.Errorf("view path %q", p)
	}
	if b, err := os.ReadFile(filepath.Join(p, "before")); err != nil || string(b) != "b" {
		t.Errorf("reading through the view: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "after"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(p, "after")); err != nil || string(b) != "a" {
		t.Errorf("a file made in the directory after the view: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(p, "x"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("writing through the view: %v, want EROFS", err)
	}
	if err := os.Mkdir(filepath.Join(p, "d"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir through the view: %v, want EROFS", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Errorf("the view shows in the mount table:\n%s", mounts)
	}
	closeViews(views)
	if _, err := os.Stat(p); err == nil {
		t.Error("the view outlives closeViews")
	}
}

func TestServesDomain(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 100", "qemu", "-xen-domid", "17", "-name", "vxn-x")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if !servesDomain(cmd.Process.Pid, 17) {
		t.Error("the backend of domain 17 was not recognised")
	}
	for _, domid := range []uint32{1, 170, 7} {
		if servesDomain(cmd.Process.Pid, domid) {
			t.Errorf("taken for the backend of domain %d", domid)
		}
	}
	if servesDomain(os.Getpid(), 17) {
		t.Error("a process without -xen-domid taken for a backend")
	}
	if servesDomain(1<<22+1, 17) {
		t.Error("a pid no process has taken for a backend")
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
