package lifecycle

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netns"
)

func TestContainerNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	name := fmt.Sprintf("vxntest-lc-%d", os.Getpid())
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	err = netns.Set(orig)
	orig.Close()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })
	other := filepath.Join("/run/netns", name)

	spec := func(nss ...specs.LinuxNamespace) *specs.Spec {
		return &specs.Spec{Linux: &specs.Linux{Namespaces: nss}}
	}
	for _, c := range []struct {
		name string
		spec *specs.Spec
		want string
	}{
		{"no linux", &specs.Spec{}, ""},
		{"host network", spec(specs.LinuxNamespace{Type: specs.PIDNamespace}), ""},
		{"new namespace", spec(specs.LinuxNamespace{Type: specs.NetworkNamespace}), ownNetns},
		{"engine's namespace, which the monitor joins", spec(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: other}), ownNetns},
		{"path to vxn's own namespace", spec(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/self/ns/net"}), ""},
	} {
		got, err := containerNetns(c.spec)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := containerNetns(spec(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/run/netns/no-such-vxn-ns"})); err == nil {
		t.Error("a missing namespace file was accepted")
	}
}
