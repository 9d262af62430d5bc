// Package lifecycle_test is the issue-2 acceptance suite: it drives the vxn
// command line exactly as a container engine does (exec of the binary,
// stdio as pipes or files, a console socket, a subreaper waiting on the
// pid-file PID) against the fake hypervisor, whose "guest" is guestinit in
// host mode serving the real agent protocol.
//
// TestMain builds vxn and guestinit once. Every test gets its own state
// root and bundles, and checks at its end that nothing leaked: no state
// directory, no fake-guest record, no process that mentions its files.
//
// The suite needs root (guestinit chroots and makes namespaces) and
// /bin/busybox (busybox-static) for the containers' root filesystems.
package lifecycle_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var (
	// vxnBin and guestinitBin are the binaries under test.
	vxnBin       string
	guestinitBin string
	// skipReason, when set, skips every test.
	skipReason string
)

// busybox is the static busybox every rootfs is made of.
const busybox = "/bin/busybox"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		// Re-executed as a helper process (see supervisor_test.go).
		os.Exit(runHelper())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		skipReason = "the lifecycle suite needs root: guestinit chroots into the bundle and makes pid/UTS namespaces; run it as root (CI does)"
		fmt.Fprintln(os.Stderr, "SKIP:", skipReason)
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "vxn-lifecycle-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries under test:", err)
		return 1
	}
	os.Setenv("VXN_HYPERVISOR", "fake")
	os.Setenv("VXN_FAKE_GUESTINIT", guestinitBin)
	return m.Run()
}

// build compiles vxn and guestinit into dir. VXN_TEST_GUESTINIT (the
// Makefile's) names a guestinit to use instead of building one.
func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	modRoot := filepath.Dir(strings.TrimSpace(string(out)))
	goBuild := func(out, pkg string, env ...string) error {
		cmd := exec.Command(goBin, "build", "-o", out, pkg)
		cmd.Dir = modRoot
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, stderr.String())
		}
		return nil
	}
	vxnBin = filepath.Join(dir, "vxn")
	if err := goBuild(vxnBin, "."); err != nil {
		return err
	}
	if p := os.Getenv("VXN_TEST_GUESTINIT"); p != "" {
		guestinitBin, err = filepath.Abs(p)
		return err
	}
	// Host mode needs no Xen library: a static, cgo-free guestinit is what
	// the fake hypervisor is meant to run. When the package cannot build
	// without cgo, fall back to a cgo build (it needs the Xen headers).
	guestinitBin = filepath.Join(dir, "guestinit")
	err = goBuild(guestinitBin, "./guestinit", "CGO_ENABLED=0")
	if err != nil {
		fmt.Fprintf(os.Stderr, "NOTE: guestinit does not build with CGO_ENABLED=0; using a cgo build:\n%v\n", err)
		err = goBuild(guestinitBin, "./guestinit")
	}
	return err
}
