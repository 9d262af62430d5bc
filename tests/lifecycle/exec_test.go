package lifecycle_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestExec runs other processes in a running container: their exit status,
// separate stdout and stderr, stdin, environment and working directory, a
// failing exec that leaves the container running, and --detach with a pid
// file.
func TestExec(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("sleep", "600"))
	h.mustCreate("ex", b, nil)
	h.mustVxn("start", "ex")
	h.wantStatus("ex", specs.StateRunning)

	r := h.vxn("exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 7")
	if r.code != 7 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("exec: %v", r)
	}
	r = h.vxnIn(strings.NewReader("piped in\n"), "exec", "ex", "cat")
	if r.code != 0 || r.stdout != "piped in\n" {
		t.Fatalf("exec with stdin: %v", r)
	}
	r = h.vxn("exec", "--env", "GREETING=hi", "--cwd", "/tmp", "ex", "sh", "-c", `echo "$GREETING $(pwd)"`)
	if r.code != 0 || r.stdout != "hi /tmp\n" {
		t.Fatalf("exec --env --cwd: %v", r)
	}
	wantFail(t, h.vxn("exec", "ex", "/no/such/binary"), "no such file")
	h.wantStatus("ex", specs.StateRunning)

	pidFile := h.path("exec.pid")
	h.mustVxn("exec", "--detach", "--pid-file", pidFile, "ex", "sleep", "1")
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(string(raw))
	if err != nil {
		t.Fatalf("pid file %q: %v", raw, err)
	}
	if !eventually(20*time.Second, func() bool { return !alive(pid) }) {
		t.Fatalf("the detached exec's process %d outlived its command", pid)
	}
	h.wantStatus("ex", specs.StateRunning)
	h.mustVxn("delete", "--force", "ex")
	h.assertGone("ex")
}

// TestExecWrongState refuses exec in a container that does not run.
func TestExecWrongState(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("true"))
	h.mustCreate("exs", b, nil)
	wantFail(t, h.vxn("exec", "exs", "true"), "cannot exec in a container that is created")
	wantFail(t, h.vxn("exec", "nope", "true"), "does not exist")
	h.mustVxn("delete", "--force", "exs")
}
