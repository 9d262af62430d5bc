package lifecycle_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestVolumes: bind mounts of host directories are shares the guest
// mounts live (the fake's guest bind mounts them), read-only when the
// mount says so.
func TestVolumes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rw, ro := h.path("vol-rw"), h.path("vol-ro")
	for _, d := range []string{rw, ro} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(rw, "in"), []byte("host-rw"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "in"), []byte("host-ro"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := h.bundle(withArgs("sh", "-c", `cat /data/in /ro/in; echo
echo guest > /data/out
echo x > /ro/new 2>/dev/null && echo WROTE-RO
true`), func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/data", Type: "bind", Source: rw, Options: []string{"rbind", "rw"}},
			specs.Mount{Destination: "/ro", Type: "bind", Source: ro, Options: []string{"bind", "ro"}},
		)
	})
	r := h.mustVxn("run", "--bundle", b, "vol1")
	if r.stdout != "host-rwhost-ro\n" {
		t.Errorf("run: %v", r)
	}
	if got, err := os.ReadFile(filepath.Join(rw, "out")); err != nil || string(got) != "guest\n" {
		t.Errorf("the container's write on the host: %q, %v", got, err)
	}
	if ents, _ := os.ReadDir(ro); len(ents) != 1 {
		t.Errorf("the read-only volume holds %d entries, want 1", len(ents))
	}
	// The mounts were the guest's own: nothing shows in the bundle.
	if ents, err := os.ReadDir(filepath.Join(b, "rootfs", "data")); err != nil || len(ents) != 0 {
		t.Errorf("rootfs/data on the host after the run: %d entries, %v", len(ents), err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), b) {
		t.Errorf("a mount of the container shows on the host:\n%s", mounts)
	}
}
