package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vxn-runtime/vxn/tests/testutil"
)

// backendOf returns the command lines of the QEMU 9pfs backends (libxl's
// qemu-xen in xenpv mode) serving the domain of container id.
func backendOf(id string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if strings.Contains(string(b), "\x00-xen-domid\x00") && strings.Contains(string(b), "\x00-name\x00vxn-"+id+"\x00") {
			found = append(found, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// waitFile waits for a file the container writes into a volume.
func waitFile(t *testing.T, p string, timeout time.Duration) []byte {
	t.Helper()
	for deadline := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(p); err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", p, timeout)
		}
	}
}

// A directory bind mount is live both ways: what the container writes
// shows on the host at once, with the owner it gave it, and what the host
// writes while the container runs, the container reads.
func TestVolumeReadWrite(t *testing.T) {
	c := cli(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "in"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, spec := testutil.Bundle(t, "sh", "-c", `cat /data/in > /data/in-copy
echo owned > /data/owned && busybox chown 1234:1235 /data/owned
echo from-guest > /data/out.tmp && busybox mv /data/out.tmp /data/out
i=0; while [ ! -e /data/late ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
cat /data/late > /data/late-copy
dd if=/dev/zero of=/data/big bs=1M count=16 2> /data/dd-write
dd if=/data/big of=/dev/null bs=1M 2> /data/dd-read`)
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind", "rw"}})
	caps := spec.Process.Capabilities
	caps.Bounding = append(caps.Bounding, "CAP_CHOWN")
	caps.Effective = append(caps.Effective, "CAP_CHOWN")
	caps.Permitted = append(caps.Permitted, "CAP_CHOWN")
	testutil.WriteSpec(t, b, spec)
	id := "vol-rw"
	start := time.Now()
	c.MustRun(t, "create", "--bundle", b, id)
	t.Logf("TIMING create with a volume: %s", time.Since(start).Round(time.Millisecond))
	if be := backendOf(id); len(be) != 1 {
		t.Errorf("9pfs backends of %s: %q, want one", id, be)
	}
	c.MustRun(t, "start", id)
	got := waitFile(t, filepath.Join(vol, "out"), 2*time.Minute)
	if string(got) != "from-guest\n" {
		t.Errorf("the container wrote %q", got)
	}
	if fi, err := os.Stat(filepath.Join(vol, "owned")); err != nil {
		t.Error(err)
	} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1234 || st.Gid != 1235 {
		t.Errorf("owner on the host %d:%d, want the container's 1234:1235", st.Uid, st.Gid)
	}
	if err := os.WriteFile(filepath.Join(vol, "late"), []byte("late-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.WaitStatus(t, id, specs.StateStopped, 2*time.Minute)
	for _, name := range []string{"dd-write", "dd-read"} {
		b, _ := os.ReadFile(filepath.Join(vol, name))
		t.Logf("TIMING 16 MiB through the volume, %s: %s", name, strings.TrimSpace(string(b)))
	}
	if fi, err := os.Stat(filepath.Join(vol, "big")); err != nil || fi.Size() != 16<<20 {
		t.Errorf("the container's 16 MiB file on the host: %v, %v", fi, err)
	}
	for name, want := range map[string]string{"in-copy": "from-host\n", "late-copy": "late-host\n"} {
		if b, err := os.ReadFile(filepath.Join(vol, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	c.MustRun(t, "delete", id)
	assertClean(t, c, id)
	if be := backendOf(id); len(be) != 0 {
		t.Errorf("9pfs backend left after delete: %q", be)
	}
}

// A read-only directory bind mount refuses writes, even once the
// container has remounted it read-write: the backend serves a read-only
// view of the directory.
func TestVolumeReadOnly(t *testing.T) {
	c := cli(t)
	vol := t.TempDir()
	if err := os.WriteFile(filepath.Join(vol, "in"), []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, spec := testutil.Bundle(t, "sh", "-c", `cat /data/in
echo x > /data/new && echo WROTE
mount -o remount,rw /data && echo REMOUNTED
echo y > /data/new2 && echo WROTE-AFTER-REMOUNT
true`)
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: vol, Options: []string{"rbind", "ro"}})
	spec.Process.Capabilities.Bounding = append(spec.Process.Capabilities.Bounding, "CAP_SYS_ADMIN")
	spec.Process.Capabilities.Effective = append(spec.Process.Capabilities.Effective, "CAP_SYS_ADMIN")
	spec.Process.Capabilities.Permitted = append(spec.Process.Capabilities.Permitted, "CAP_SYS_ADMIN")
	testutil.WriteSpec(t, b, spec)
	id := "vol-ro"
	r := c.Run(t, nil, "run", "--bundle", b, id)
	t.Logf("run: %v", r)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "from-host\n") {
		t.Fatalf("run: %v", r)
	}
	if strings.Contains(r.Stdout, "WROTE") {
		t.Errorf("the container wrote into a read-only volume: %v", r)
	}
	ents, _ := os.ReadDir(vol)
	if len(ents) != 1 {
		t.Errorf("the read-only volume holds %d entries, want only \"in\"", len(ents))
	}
	assertClean(t, c, id)
	if be := backendOf(id); len(be) != 0 {
		t.Errorf("9pfs backend left after run: %q", be)
	}
}
