package engines

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// containerdSocket is containerd's default address.
const containerdSocket = "/run/containerd/containerd.sock"

// ctrRoot is where containerd's runc shim keeps the runtime's state for
// ctr's namespace (`vxn --root`).
const ctrRoot = "/run/containerd/runc/default"

var containerd daemon

var ctrImage setupOnce

// containerdSetup starts containerd (its default configuration) and
// imports the image, once.
func containerdSetup(t testing.TB) {
	t.Helper()
	needMachine(t)
	containerd.start(t, "engines-containerd.log", func() error {
		return quietRun("ctr", "version")
	}, "containerd")
	ctrImage.do(t, func(t testing.TB) string {
		mustRun(t, "ctr", "image", "import", imageArchive)
		return image
	})
}

// ctr runs `ctr run --runc-binary VXN ...`-style commands.
func ctrRun(t testing.TB, args ...string) result {
	t.Helper()
	t.Cleanup(func() { saveVxnLogs(t, ctrRoot) })
	return run(t, "", "ctr", append([]string{"run", "--runc-binary", *vxnBin}, args...)...)
}

// TestContainerdRun: `ctr run --runc-binary vxn --rm` prints the
// container's output, from a guest domain, and leaves no guest.
func TestContainerdRun(t *testing.T) {
	containerdSetup(t)
	r := ctrRun(t, append([]string{"--rm", image, "ctr-run"}, guestCommand("hello-from-containerd")...)...)
	checkGuestOutput(t, r, "hello-from-containerd")
	checkNoDomain(t, "ctr-run")
	if _, err := os.Stat(filepath.Join(ctrRoot, "ctr-run")); !os.IsNotExist(err) {
		t.Errorf("vxn state left behind (%v)", err)
	}
}

// TestContainerdExitStatus: `ctr run` exits with the container's status.
func TestContainerdExitStatus(t *testing.T) {
	containerdSetup(t)
	r := ctrRun(t, "--rm", image, "ctr-exit", "sh", "-c", "echo to-stdout; exit 7")
	if r.code != 7 || r.stdout != "to-stdout\n" {
		t.Fatalf("want exit 7 and to-stdout: %s", r)
	}
	checkNoDomain(t, "ctr-exit")
}

// TestContainerdExec: `ctr task exec` in a detached task, then kill and
// delete.
func TestContainerdExec(t *testing.T) {
	containerdSetup(t)
	const id = "ctr-exec"
	if r := ctrRun(t, "-d", "--null-io", image, id, "sh", "-c", "while true; do sleep 1; done"); r.code != 0 {
		t.Fatalf("ctr run -d: %s", r)
	}
	defer run(t, "", "ctr", "container", "delete", id)
	r := run(t, "", "ctr", "task", "exec", "--exec-id", "e1", id, "sh", "-c", "echo in-exec; "+printDomain+"; exit 5")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 5 || len(lines) != 2 || lines[0] != "in-exec" {
		t.Errorf("want exit 5, in-exec and the guest's domain UUID: %s", r)
	} else {
		checkInGuest(t, lines[1])
	}
	mustRun(t, "ctr", "task", "kill", "--signal", "SIGKILL", id)
	waitFor(t, "the killed task stopped", time.Minute, func() bool {
		return strings.Contains(mustRun(t, "ctr", "task", "ls").stdout, "STOPPED")
	})
	mustRun(t, "ctr", "task", "delete", id)
	checkNoDomain(t, id)
}
