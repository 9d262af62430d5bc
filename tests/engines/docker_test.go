package engines

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dockerBin is Debian's docker.io client (another docker may come first in
// PATH).
const dockerBin = "/usr/bin/docker"

// dockerRoot is where Docker's containerd shim keeps the runtime's state
// (`vxn --root`): Docker names it after runc whatever the runtime.
const dockerRoot = "/run/docker/runtime-runc/moby"

// dockerDaemonJSON is /etc/docker/daemon.json with vxn as the default
// runtime.
func dockerDaemonJSON(vxn string) string {
	return fmt.Sprintf(`{
  "runtimes": {"vxn": {"path": %q}},
  "default-runtime": "vxn"
}
`, vxn)
}

var dockerd daemon

var dockerImage setupOnce

// dockerSetup starts containerd and dockerd and loads the image, once.
func dockerSetup(t testing.TB) {
	t.Helper()
	needMachine(t)
	containerdSetup(t)
	dockerd.start(t, "engines-dockerd.log", func() error {
		return quietRun(dockerBin, "version", "--format", "{{.Server.Version}}")
	}, "dockerd", "--containerd", containerdSocket)
	dockerImage.do(t, func(t testing.TB) string {
		mustRun(t, dockerBin, "load", "-i", imageArchive)
		if rt := strings.TrimSpace(mustRun(t, dockerBin, "info", "--format", "{{.DefaultRuntime}}").stdout); rt != "vxn" {
			t.Fatalf("docker's default runtime is %q, not vxn: daemon.json was not read", rt)
		}
		return image
	})
	t.Cleanup(func() { saveVxnLogs(t, dockerRoot) })
}

// dockerRunRm runs `docker run --rm --network none IMAGE args...` on the
// default runtime and returns what it did and the container's ID.
func dockerRunRm(t testing.TB, args ...string) (result, string) {
	t.Helper()
	cidFile := filepath.Join(t.TempDir(), "cid")
	r := run(t, "", dockerBin, append([]string{"run", "--rm", "--network", "none", "--cidfile", cidFile, image}, args...)...)
	id, err := os.ReadFile(cidFile)
	if err != nil {
		t.Fatalf("docker run wrote no --cidfile (%v): %s", err, r)
	}
	return r, strings.TrimSpace(string(id))
}

// TestDockerRunRm: `docker run --rm` with vxn as the default runtime
// prints the container's output, from a guest domain, and leaves no guest.
func TestDockerRunRm(t *testing.T) {
	dockerSetup(t)
	r, id := dockerRunRm(t, guestCommand("hello-from-docker")...)
	checkGuestOutput(t, r, "hello-from-docker")
	checkNoDomain(t, id)
}

// TestDockerRunExitStatus: `docker run` exits with the container's status
// and keeps its stderr apart.
func TestDockerRunExitStatus(t *testing.T) {
	dockerSetup(t)
	r, id := dockerRunRm(t, "sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3")
	if r.code != 3 || r.stdout != "to-stdout\n" || !strings.Contains(r.stderr, "to-stderr\n") {
		t.Fatalf("want exit 3, to-stdout on stdout and to-stderr on stderr: %s", r)
	}
	checkNoDomain(t, id)
}

// The detached container TestDockerDetachLogs starts and the tests after
// it share (see podmanDetachedName).
const dockerDetachedName = "vxn-detached"

var dockerDetached setupOnce

func dockerDetachedID(t testing.TB) string {
	t.Helper()
	dockerSetup(t)
	return dockerDetached.do(t, func(t testing.TB) string {
		r := mustRun(t, dockerBin, "run", "-d", "--name", dockerDetachedName, "--network", "none", image,
			"sh", "-c", `trap "echo got-TERM; exit 0" TERM; echo started; while true; do sleep 1; done`)
		return strings.TrimSpace(r.stdout)
	})
}

// TestDockerDetachLogs: `docker run -d` then `docker logs`.
func TestDockerDetachLogs(t *testing.T) {
	dockerDetachedID(t)
	waitFor(t, "started in docker logs", time.Minute, func() bool {
		return mustRun(t, dockerBin, "logs", dockerDetachedName).stdout == "started\n"
	})
}

// TestDockerExec: `docker exec -i` runs in the container's guest with
// stdin, stdout and its own exit status.
func TestDockerExec(t *testing.T) {
	dockerDetachedID(t)
	r := run(t, "piped\n", dockerBin, "exec", "-i", dockerDetachedName, "sh", "-c", "read x; echo got-$x; "+printDomain+"; exit 5")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 5 || len(lines) != 2 || lines[0] != "got-piped" {
		t.Fatalf("want exit 5, got-piped and the guest's domain UUID: %s", r)
	}
	checkInGuest(t, lines[1])
}

// TestDockerStop: `docker stop` sends SIGTERM, which the container's shell
// handles, exiting 0.
func TestDockerStop(t *testing.T) {
	dockerDetachedID(t)
	mustRun(t, dockerBin, "stop", dockerDetachedName)
	st := mustRun(t, dockerBin, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", dockerDetachedName)
	if got := strings.TrimSpace(st.stdout); got != "exited 0" {
		t.Errorf("after stop: %q, want exited 0 (the TERM trap ran)", got)
	}
	if logs := mustRun(t, dockerBin, "logs", dockerDetachedName).stdout; !strings.Contains(logs, "got-TERM") {
		t.Errorf("the container's TERM trap did not run; logs %q", logs)
	}
}

// TestDockerRm: `docker rm` of the stopped container removes it, its guest
// and vxn's state.
func TestDockerRm(t *testing.T) {
	id := dockerDetachedID(t)
	mustRun(t, dockerBin, "stop", dockerDetachedName) // when run alone
	mustRun(t, dockerBin, "rm", dockerDetachedName)
	checkNoDomain(t, id)
	if _, err := os.Stat(filepath.Join(dockerRoot, id)); !os.IsNotExist(err) {
		t.Errorf("vxn state of %s left behind (%v)", id, err)
	}
}
