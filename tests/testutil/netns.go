package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vishvananda/netns"
)

// NamedNetns makes a throwaway network namespace, bind-mounted under
// /run/netns as "vxntest-<pid>-<name>", removed at the end of the test,
// and returns its path. It skips the test when not run as root.
func NamedNetns(t testing.TB, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	name = fmt.Sprintf("vxntest-%d-%s", os.Getpid(), name)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("making network namespace %s: %v", name, err)
	}
	ns.Close()
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.DeleteNamed(name) })
	return filepath.Join("/run/netns", name)
}
