//go:build xene2e

// The helpers for tests (the xene2e build tag): skipping outside dom0,
// the echo guest from $VXN_ECHOGUEST, logs.

package xentest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vxn-runtime/vxn/libxl/xtl"
)

// EchoGuestEnv names the environment variable holding the path of the
// statically linked echo guest.
const EchoGuestEnv = "VXN_ECHOGUEST"

// Require skips the test unless it runs in a Xen dom0.
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/xen/privcmd"); err != nil {
		t.Skip("not in a Xen dom0 (run it through go run ./tests/xenvm)")
	}
}

// EchoGuest returns the guest kernel and an initramfs (in a temporary
// directory) holding the echo guest named by $VXN_ECHOGUEST as /init and
// its modules.
func EchoGuest(t testing.TB) (kernel, initramfs string) {
	t.Helper()
	bin := os.Getenv(EchoGuestEnv)
	if bin == "" {
		t.Fatalf("%s is not set: build the guest with CGO_ENABLED=1 go build -o out/echoguest "+
			"-ldflags '-linkmode external -extldflags \"-static\"' ./libxl/vchan/testdata/echoguest", EchoGuestEnv)
	}
	kernel, version, err := GuestKernel()
	if err != nil {
		t.Fatal(err)
	}
	initramfs = filepath.Join(t.TempDir(), "echoguest.cpio")
	if err := EchoInitramfs(bin, version, initramfs); err != nil {
		t.Fatal(err)
	}
	return kernel, initramfs
}

// ResultsDir is where a test leaves logs worth keeping: $XENVM_RESULTS in
// the xenvm machine, else a temporary directory.
func ResultsDir(t testing.TB) string {
	if d := os.Getenv("XENVM_RESULTS"); d != "" {
		return d
	}
	return t.TempDir()
}

// Logger returns an xtl logger writing everything (debug and up) to
// RESULTS/name.log.
func Logger(t testing.TB, name string) *xtl.Logger {
	t.Helper()
	f, err := os.Create(filepath.Join(ResultsDir(t), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	lg := xtl.NewLogger(xtl.Debug, xtl.WriterLog(f))
	t.Cleanup(func() {
		lg.Close()
		f.Close()
	})
	return lg
}
