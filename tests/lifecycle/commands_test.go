package lifecycle_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// TestList checks `vxn list` in runc's table and json formats.
func TestList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	// Nothing yet: the header alone, and an empty JSON array.
	r := h.mustVxn("list")
	if f := strings.Fields(r.stdout); strings.Join(f, " ") != "ID PID STATUS BUNDLE CREATED OWNER" {
		t.Errorf("list with no containers: %q, want only the header", r.stdout)
	}
	if r := h.mustVxn("list", "--format", "json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("list --format json with no containers: %q, want []", r.stdout)
	}

	b1 := h.bundle(withArgs("true"))
	b2 := h.bundle(withArgs("sleep", "100"))
	c1 := h.mustCreate("lst1", b1, nil)
	c2 := h.mustCreate("lst2", b2, nil)
	h.mustVxn("start", "lst2")

	r = h.mustVxn("list")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("list: %q, want a header and 2 rows", r.stdout)
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "ID PID STATUS BUNDLE CREATED OWNER" {
		t.Errorf("list header %q", lines[0])
	}
	for i, want := range []struct {
		c      *ctr
		status string
	}{{c1, "created"}, {c2, "running"}} {
		f := strings.Fields(lines[i+1])
		if len(f) != 6 || f[0] != want.c.id || f[1] != strconv.Itoa(want.c.pid()) || f[2] != want.status ||
			f[3] != want.c.bundle || f[5] != "root" {
			t.Errorf("list row %q: want %s, pid %d, %s, %s, a time, root", lines[i+1], want.c.id, want.c.pid(), want.status, want.c.bundle)
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, f[4]); err != nil {
			t.Errorf("list row %q: created: %v", lines[i+1], err)
		}
	}

	l := h.list()
	if len(l) != 2 || l[0].ID != "lst1" || l[1].ID != "lst2" ||
		l[0].Status != "created" || l[1].Status != "running" ||
		l[0].Pid != c1.pid() || l[1].Pid != c2.pid() || l[0].Bundle != b1 || l[1].Bundle != b2 {
		t.Errorf("list --format json: %+v", l)
	}
	for _, e := range l {
		if _, err := time.Parse(time.RFC3339Nano, e.Created); err != nil {
			t.Errorf("list --format json: created %q: %v", e.Created, err)
		}
	}
	if r := h.mustVxn("list", "-q"); r.stdout != "lst1\nlst2\n" {
		t.Errorf("list -q: %q", r.stdout)
	}
	wantFail(t, h.vxn("list", "--format", "yaml"), "yaml")

	h.mustVxn("delete", "--force", "lst1")
	h.mustVxn("delete", "--force", "lst2")
	if l := h.list(); len(l) != 0 {
		t.Errorf("list after delete: %+v", l)
	}
}

// TestSpec checks `vxn spec`: a usable config.json, never overwritten.
func TestSpec(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	dir := h.path("specdir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// As in the README: in the bundle directory, no flags.
	cmd := exec.Command(vxnBin, "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
		t.Fatalf("vxn spec in %s: %v: %q", dir, err, out)
	}
	s := readSpec(t, dir)
	if s.Version == "" || s.Root == nil || s.Root.Path != "rootfs" || len(s.Process.Args) == 0 ||
		!filepath.IsAbs(s.Process.Cwd) {
		t.Errorf("vxn spec wrote %+v: want an ociVersion, root.path rootfs, args and an absolute cwd", s)
	}
	before := readFile(t, filepath.Join(dir, "config.json"))
	wantFail(t, h.vxn("spec", "--bundle", dir), "exists")
	if after := readFile(t, filepath.Join(dir, "config.json")); after != before {
		t.Errorf("a refused spec changed config.json")
	}

	// The default config runs (with terminal off: no console socket).
	h.rootfs(filepath.Join(dir, "rootfs"))
	s.Process.Terminal = false
	s.Process.Args = []string{"echo", "default-spec"}
	writeSpec(t, dir, s)
	if r := h.vxn("run", "--bundle", dir, "spec1"); r.code != 0 || r.stdout != "default-spec\n" {
		t.Errorf("running the default spec: %v", r)
	}
	h.assertGone("spec1")
}

// TestFeatures checks `vxn features`.
func TestFeatures(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.mustVxn("features")
	var f features.Features
	if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
		t.Fatalf("features: %v: %q", err, r.stdout)
	}
	if f.OCIVersionMax == "" || f.OCIVersionMin == "" {
		t.Errorf("features: ociVersionMin %q, ociVersionMax %q: want both", f.OCIVersionMin, f.OCIVersionMax)
	}
	if f.OCIVersionMax != specs.Version {
		t.Logf("features: ociVersionMax %q, the spec module is %q", f.OCIVersionMax, specs.Version)
	}
	for _, k := range []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"} {
		found := false
		for _, hk := range f.Hooks {
			found = found || hk == k
		}
		if !found {
			t.Errorf("features: hooks %v lack %s", f.Hooks, k)
		}
	}
	h.assertNothingCreated()
}

// TestVersion checks the --version text podman and dockerd parse.
func TestVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.mustVxn("--version")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "vxn version ") || !strings.HasPrefix(lines[1], "commit: ") ||
		!strings.HasPrefix(lines[2], "spec: ") {
		t.Errorf("--version: %q, want lines starting \"vxn version\", \"commit:\", \"spec:\"", r.stdout)
	} else if v := strings.TrimPrefix(lines[2], "spec: "); !strings.HasPrefix(v, "1.") {
		t.Errorf("--version: spec %q, want a runtime-spec 1.x version", v)
	}
}

// TestPauseResume checks that pause freezes the container and resume
// continues it, as `vxn state` and the container's output show.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("sh", "-c", "while true; do echo x; sleep 0.05; done"))
	c := h.mustCreate("pz", b, nil)
	wantFail(t, h.vxn("pause", "pz"), "not running")
	h.mustVxn("start", "pz")
	grows := func(d time.Duration) bool {
		n := len(c.output())
		return eventually(d, func() bool { return len(c.output()) > n })
	}
	if !grows(5 * time.Second) {
		t.Fatalf("the container prints nothing: %q", c.output())
	}

	if r := h.mustVxn("pause", "pz"); r.stdout != "" || r.stderr != "" {
		t.Errorf("pause printed: %v", r)
	}
	h.wantStatus("pz", "paused")
	// Every process of the container is frozen (the fake's pause stops
	// them all; a Xen pause stops the whole guest).
	rootfs := filepath.Join(b, "rootfs")
	ps := procsIn(rootfs)
	if len(ps) == 0 {
		t.Fatalf("no container process in %s", rootfs)
	}
	if !eventually(2*time.Second, func() bool { return len(procsInState(rootfs, "T")) == len(procsIn(rootfs)) }) {
		t.Errorf("paused, but container processes run: %s", describeProcs(procsIn(rootfs)))
	}
	time.Sleep(100 * time.Millisecond) // a line in flight may still land
	if grows(500 * time.Millisecond) {
		t.Errorf("the container kept printing while paused")
	}
	wantFail(t, h.vxn("pause", "pz"), "paused")

	if r := h.mustVxn("resume", "pz"); r.stdout != "" || r.stderr != "" {
		t.Errorf("resume printed: %v", r)
	}
	h.wantStatus("pz", specs.StateRunning)
	if st := procsInState(rootfs, "T"); len(st) > 0 {
		t.Errorf("resumed, but container processes are still stopped: %s", describeProcs(st))
	}
	if !grows(5 * time.Second) {
		t.Errorf("the container does not print after resume")
	}
	wantFail(t, h.vxn("resume", "pz"), "not paused")

	h.mustVxn("delete", "--force", "pz")
	h.assertGone("pz")
}

// TestDeletePaused checks that delete --force also works on a paused
// container, promptly.
func TestDeletePaused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("sleep", "100"))
	h.mustCreate("dp", b, nil)
	h.mustVxn("start", "dp")
	h.mustVxn("pause", "dp")
	h.wantStatus("dp", "paused")
	wantFail(t, h.vxn("delete", "dp"), "not stopped")
	start := time.Now()
	h.mustVxn("delete", "--force", "dp")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("delete --force of a paused container took %s", d.Round(time.Millisecond))
	}
	h.assertGone("dp")
}
