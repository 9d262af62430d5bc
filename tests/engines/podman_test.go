package engines

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// podmanConf is containers.conf for podman on vxn. runtime_supports_json
// makes podman pass --log-format=json to vxn, so that vxn's errors reach
// the user. The rest is for a machine without systemd or journald.
func podmanConf(vxn string) string {
	return fmt.Sprintf(`[containers]
log_driver = "k8s-file"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "youki", "krun", "vxn"]

[engine.runtimes]
vxn = [%q]
`, vxn)
}

// podmanStorageConf: overlay storage on the tmpfs of storageDirs.
const podmanStorageConf = `[storage]
driver = "overlay"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
`

// podman runs podman with vxn as the runtime.
func podman(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	return run(t, stdin, "podman", append([]string{"--runtime", "vxn"}, args...)...)
}

func mustPodman(t testing.TB, args ...string) result {
	t.Helper()
	r := podman(t, "", args...)
	if r.code != 0 {
		t.Fatalf("podman %s: %s", strings.Join(args, " "), r)
	}
	return r
}

var podmanImage setupOnce

// podmanSetup loads the image into podman's storage, once.
func podmanSetup(t testing.TB) {
	t.Helper()
	needMachine(t)
	podmanImage.do(t, func(t testing.TB) string {
		mustPodman(t, "load", "-i", imageArchive)
		mustPodman(t, "image", "exists", image)
		return image
	})
	t.Cleanup(func() { saveVxnLogs(t, vxnRoot) })
}

// podmanRunRm runs `podman run --rm --network none IMAGE args...` and
// returns what it did and the container's ID.
func podmanRunRm(t testing.TB, args ...string) (result, string) {
	t.Helper()
	cidFile := filepath.Join(t.TempDir(), "cid")
	r := podman(t, "", append([]string{"run", "--rm", "--network", "none", "--cidfile", cidFile, image}, args...)...)
	id, err := os.ReadFile(cidFile)
	if err != nil {
		t.Fatalf("podman run wrote no --cidfile (%v): %s", err, r)
	}
	return r, strings.TrimSpace(string(id))
}

// TestPodmanRunRm: `podman run --rm` prints the container's output, from a
// guest domain, and leaves no container and no guest behind.
func TestPodmanRunRm(t *testing.T) {
	podmanSetup(t)
	r, id := podmanRunRm(t, guestCommand("hello-from-podman")...)
	checkGuestOutput(t, r, "hello-from-podman")
	if left := mustPodman(t, "ps", "-a", "-q", "--no-trunc", "--filter", "id="+id).stdout; left != "" {
		t.Errorf("podman still lists %s after run --rm", left)
	}
	checkNoDomain(t, id)
	if _, err := os.Stat(filepath.Join(vxnRoot, id)); !os.IsNotExist(err) {
		t.Errorf("vxn state of %s left behind (%v)", id, err)
	}
}

// TestPodmanRunExitStatus: `podman run` exits with the container's status
// and keeps its stderr apart from its stdout.
func TestPodmanRunExitStatus(t *testing.T) {
	podmanSetup(t)
	r, id := podmanRunRm(t, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	if r.code != 3 || r.stdout != "to-stdout\n" || !strings.Contains(r.stderr, "to-stderr\n") || strings.Contains(r.stdout, "to-stderr") {
		t.Fatalf("want exit 3, to-stdout on stdout and to-stderr on stderr: %s", r)
	}
	checkNoDomain(t, id)
}

// TestPodmanRunTerminal: `podman run -it` in a real terminal (podman's
// stdio is a 100x30 pty): the shell in the guest gets a terminal of that
// size, runs what is typed, and its exit status is podman's.
func TestPodmanRunTerminal(t *testing.T) {
	podmanSetup(t)
	cmd := exec.Command("podman", "--runtime", "vxn", "run", "-it", "--rm", "--network", "none", image, "sh")
	cmd.Env = append(os.Environ(), "TERM=xterm")
	start := time.Now()
	master, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 30, Cols: 100})
	if err != nil {
		t.Fatalf("starting podman on a pty: %v", err)
	}
	defer master.Close()
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	var mu sync.Mutex
	var screen strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			mu.Lock()
			screen.WriteString(strings.ReplaceAll(string(buf[:n]), "\r", ""))
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	shown := func() string {
		mu.Lock()
		defer mu.Unlock()
		return screen.String()
	}
	waitScreen := func(what string, timeout time.Duration) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%q on the terminal", what), timeout, func() bool {
			return strings.Contains(shown(), what)
		})
		t.Logf("TIMING %q on the terminal after %s", what, time.Since(start).Round(time.Millisecond))
	}
	defer func() {
		if t.Failed() {
			t.Logf("the terminal showed: %q", shown())
		}
	}()
	waitScreen("/ # ", cmdTimeout)
	if _, err := master.Write([]byte("stty size; tty; echo typed-$((6*7))\r")); err != nil {
		t.Fatal(err)
	}
	waitScreen("typed-42", time.Minute)
	for _, want := range []string{"\n30 100\n", "\n/dev/pts/"} {
		if !strings.Contains(shown(), want) {
			t.Errorf("no %q on the terminal (a 100x30 pty)", want)
		}
	}
	if _, err := master.Write([]byte("exit 4\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) || ee.ExitCode() != 4 {
			t.Errorf("podman run -it: %v, want exit status 4", waitErr)
		}
		t.Logf("TIMING podman run -it: %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Minute):
		t.Fatal("podman run -it did not end a minute after the shell's exit")
	}
}

// The detached container that TestPodmanDetachLogs starts and the tests
// after it (exec, top, ps, stop, rm) share: a guest boot is the slow part
// under emulation. Its shell leaves on SIGTERM, saying so.
const podmanDetachedName = "vxn-detached"

var podmanDetached setupOnce

func podmanDetachedID(t testing.TB) string {
	t.Helper()
	podmanSetup(t)
	return podmanDetached.do(t, func(t testing.TB) string {
		r := mustPodman(t, "run", "-d", "--name", podmanDetachedName, "--network", "none", image,
			"sh", "-c", `trap "echo got-TERM; exit 0" TERM; echo started; while true; do sleep 1; done`)
		return strings.TrimSpace(r.stdout)
	})
}

// TestPodmanDetachLogs: `podman run -d` then `podman logs`.
func TestPodmanDetachLogs(t *testing.T) {
	podmanDetachedID(t)
	var r result
	waitFor(t, "started in podman logs", time.Minute, func() bool {
		r = mustPodman(t, "logs", podmanDetachedName)
		return r.stdout == "started\n"
	})
}

// TestPodmanExec: `podman exec -i` runs in the container's guest with
// stdin, stdout and its own exit status.
func TestPodmanExec(t *testing.T) {
	podmanDetachedID(t)
	r := podman(t, "piped\n", "exec", "-i", podmanDetachedName, "sh", "-c", "read x; echo got-$x; "+printDomain+"; exit 5")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 5 || len(lines) != 2 || lines[0] != "got-piped" {
		t.Fatalf("want exit 5, got-piped and the guest's domain UUID: %s", r)
	}
	checkInGuest(t, lines[1])
}

// TestPodmanTop: `podman top` shows the container's processes, not dom0's.
func TestPodmanTop(t *testing.T) {
	podmanDetachedID(t)
	pid := strings.TrimSpace(mustPodman(t, "inspect", "--format", "{{.State.Pid}}", podmanDetachedName).stdout)
	r := mustPodman(t, "top", podmanDetachedName)
	if strings.Contains(r.stdout, "xenstored") {
		// psgo lists the processes in the /proc of the pid-file
		// process's mount namespace.
		mine, _ := os.Readlink("/proc/self/ns/mnt")
		its, _ := os.Readlink("/proc/" + pid + "/ns/mnt")
		if mine == its {
			t.Skipf("podman top lists dom0's processes: it reads /proc in the mount namespace of the pid-file process (the monitor, pid %s), which is dom0's; this needs a monitor mount namespace with a /proc of its own pid namespace (runtime/lifecycle/namespaces.go makes none yet)", pid)
		}
		t.Fatalf("podman top lists dom0's processes:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "monitor") {
		t.Errorf("podman top does not list the container's monitor:\n%s", r.stdout)
	}
}

// TestPodmanPs: `podman ps` lists the running container as up.
func TestPodmanPs(t *testing.T) {
	id := podmanDetachedID(t)
	r := mustPodman(t, "ps", "--no-trunc", "--filter", "name="+podmanDetachedName, "--format", "{{.ID}} {{.Status}}")
	if !strings.HasPrefix(r.stdout, id+" Up ") {
		t.Fatalf("podman ps: %q, want %s up", r.stdout, id)
	}
}

// TestPodmanStop: `podman stop` sends SIGTERM, which the container's shell
// handles (it exits 0, saying so) well before the 10 s stop timeout.
func TestPodmanStop(t *testing.T) {
	podmanDetachedID(t)
	r := mustPodman(t, "stop", podmanDetachedName)
	if strings.TrimSpace(r.stdout) != podmanDetachedName {
		t.Errorf("podman stop printed %q", r.stdout)
	}
	st := mustPodman(t, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", podmanDetachedName)
	if got := strings.TrimSpace(st.stdout); got != "exited 0" {
		t.Errorf("after stop: %q, want exited 0 (the TERM trap ran)", got)
	}
	if logs := mustPodman(t, "logs", podmanDetachedName).stdout; !strings.Contains(logs, "got-TERM") {
		t.Errorf("the container's TERM trap did not run; logs %q", logs)
	}
}

// TestPodmanRm: `podman rm` of the stopped container removes it, its guest
// and vxn's state.
func TestPodmanRm(t *testing.T) {
	id := podmanDetachedID(t)
	mustPodman(t, "stop", podmanDetachedName) // when run alone
	mustPodman(t, "rm", podmanDetachedName)
	if left := mustPodman(t, "ps", "-a", "-q", "--filter", "name="+podmanDetachedName).stdout; left != "" {
		t.Errorf("podman still lists %s after rm", left)
	}
	checkNoDomain(t, id)
	if _, err := os.Stat(filepath.Join(vxnRoot, id)); !os.IsNotExist(err) {
		t.Errorf("vxn state of %s left behind (%v)", id, err)
	}
}
