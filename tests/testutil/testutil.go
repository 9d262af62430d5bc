// Package testutil holds what vxn's CLI-level test suites share: busybox
// bundles, running the vxn binary as an engine does, and waiting on the
// pid-file process as a subreaper (conmon, containerd-shim) does.
package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/bundle"
)

// Busybox is the static busybox the rootfs is made of (Debian's
// busybox-static).
const Busybox = "/bin/busybox"

var applets = []string{
	"sh", "echo", "cat", "true", "false", "sleep", "id", "hostname", "env", "ls", "pwd",
	"kill", "md5sum", "sha256sum", "tty", "stty", "ulimit", "wc", "head", "dd", "mount", "ps", "touch",
}

// Bundle makes a bundle in a fresh directory: a busybox rootfs and the
// default config.json with terminal off and the given args.
func Bundle(t testing.TB, args ...string) (string, *specs.Spec) {
	t.Helper()
	dir := t.TempDir()
	spec, err := MakeBundle(dir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return dir, spec
}

// MakeBundle makes a bundle in dir as Bundle does, for programs that are
// not tests (tests/bench).
func MakeBundle(dir string, args ...string) (*specs.Spec, error) {
	bin := filepath.Join(dir, "rootfs", "bin")
	for _, d := range []string{bin, filepath.Join(dir, "rootfs", "tmp"), filepath.Join(dir, "rootfs", "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	data, err := os.ReadFile(Busybox)
	if err != nil {
		return nil, fmt.Errorf("reading %s (install busybox-static): %w", Busybox, err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		return nil, err
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(bin, a)); err != nil {
			return nil, err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(dir, "rootfs", "etc", "passwd"), []byte(passwd), 0o644); err != nil {
		return nil, err
	}
	spec := bundle.DefaultSpec()
	spec.Process.Terminal = false
	spec.Process.Args = args
	spec.Root.Readonly = false
	return spec, SaveSpec(dir, spec)
}

// WriteSpec writes config.json into a bundle.
func WriteSpec(t testing.TB, dir string, spec *specs.Spec) {
	t.Helper()
	if err := SaveSpec(dir, spec); err != nil {
		t.Fatal(err)
	}
}

// SaveSpec writes config.json into a bundle.
func SaveSpec(dir string, spec *specs.Spec) error {
	b, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, bundle.ConfigFile), b, 0o644)
}

// CLI runs one vxn binary against one state root.
type CLI struct {
	Bin    string
	Root   string
	Global []string // more global flags (--config ...)
	Env    []string // added to the environment
}

// Result is what a command printed and its exit code.
type Result struct {
	Stdout, Stderr string
	Code           int
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
}

// Command returns the exec.Cmd for `vxn --root ROOT args...`.
func (c CLI) Command(args ...string) *exec.Cmd {
	cmd := exec.Command(c.Bin, c.args(args...)...)
	cmd.Env = append(os.Environ(), c.Env...)
	return cmd
}

func (c CLI) args(args ...string) []string {
	return append(append([]string{"--root", c.Root}, c.Global...), args...)
}

// Run runs vxn with stdin and waits (at most 10 minutes). Its stdout and
// stderr are files, as an engine's are often: a monitor that keeps them
// open after create does not hold the command up.
func (c CLI) Run(t testing.TB, stdin io.Reader, args ...string) Result {
	t.Helper()
	cmd := c.Command(args...)
	cmd.Stdin = stdin
	dir := t.TempDir()
	outF, err1 := os.Create(filepath.Join(dir, "stdout"))
	errF, err2 := os.Create(filepath.Join(dir, "stderr"))
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	defer outF.Close()
	defer errF.Close()
	cmd.Stdout, cmd.Stderr = outF, errF
	if err := cmd.Start(); err != nil {
		t.Fatalf("vxn %v: %v", args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("vxn %v: no answer in 10 minutes", args)
	}
	out, _ := os.ReadFile(outF.Name())
	errb, _ := os.ReadFile(errF.Name())
	r := Result{Stdout: string(out), Stderr: string(errb)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.Code = ee.ExitCode()
		if ws, ok := ee.Sys().(unix.WaitStatus); ok && ws.Signaled() {
			r.Code = 128 + int(ws.Signal())
		}
	} else if err != nil {
		t.Fatalf("vxn %v: %v", args, err)
	}
	return r
}

// MustRun runs vxn and fails the test unless it exits 0.
func (c CLI) MustRun(t testing.TB, args ...string) Result {
	t.Helper()
	r := c.Run(t, nil, args...)
	if r.Code != 0 {
		t.Fatalf("vxn %v: %v", args, r)
	}
	return r
}

// State returns `vxn state ID` decoded.
func (c CLI) State(t testing.TB, id string) specs.State {
	t.Helper()
	r := c.MustRun(t, "state", id)
	var st specs.State
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("state of %s: %v: %q", id, err, r.Stdout)
	}
	return st
}

// WaitStatus polls until the container reaches status or the timeout ends.
func (c CLI) WaitStatus(t testing.TB, id string, status specs.ContainerState, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := c.State(t, id)
		if st.Status == status {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s is %s, not %s, after %s", id, st.Status, status, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waiterEnv makes a test binary act as an engine's waiter (see
// RunWaiterIfAsked).
const waiterEnv = "VXN_TEST_WAITER"

// RunWaiterIfAsked must be called first in TestMain. In the waiter
// process it becomes a child subreaper (as conmon and containerd-shim
// are), runs `vxn create` and `vxn start`, waits on the pid-file PID,
// prints "status N" with the container's status (128+S for a signal) and
// exits.
func RunWaiterIfAsked() {
	spec := os.Getenv(waiterEnv)
	if spec == "" {
		return
	}
	var w waiterSpec
	if err := json.Unmarshal([]byte(spec), &w); err != nil {
		fmt.Println("waiter:", err)
		os.Exit(2)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Println("waiter: subreaper:", err)
		os.Exit(2)
	}
	pidFile := filepath.Join(w.Bundle, "waiter.pid")
	for _, args := range [][]string{
		w.CLI.args("create", "--bundle", w.Bundle, "--pid-file", pidFile, w.ID),
		w.CLI.args("start", w.ID),
	} {
		cmd := exec.Command(w.CLI.Bin, args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Printf("waiter: vxn %v: %v\n", args, err)
			os.Exit(2)
		}
	}
	b, err := os.ReadFile(pidFile)
	pid, perr := strconv.Atoi(string(b))
	if err != nil || perr != nil {
		fmt.Printf("waiter: pid file %q: %v %v\n", b, err, perr)
		os.Exit(2)
	}
	for {
		var ws unix.WaitStatus
		got, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil {
			fmt.Println("waiter: wait:", err)
			os.Exit(2)
		}
		if got != pid {
			continue
		}
		status := ws.ExitStatus()
		if ws.Signaled() {
			status = 128 + int(ws.Signal())
		}
		fmt.Printf("status %d\n", status)
		os.Exit(0)
	}
}

type waiterSpec struct {
	CLI        CLI
	Bundle, ID string
}

// CreateStartWait runs create and start from a subreaper and returns the
// exit status of the pid-file process, as conmon would see it.
func (c CLI) CreateStartWait(t testing.TB, id, bundleDir string) int {
	t.Helper()
	spec, _ := json.Marshal(waiterSpec{CLI: c, Bundle: bundleDir, ID: id})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), c.Env...), waiterEnv+"="+string(spec))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	line := strings.TrimSpace(string(out))
	n, ok := strings.CutPrefix(line, "status ")
	if err != nil || !ok {
		t.Fatalf("waiter: %v: %s %s", err, line, stderr.String())
	}
	status, err := strconv.Atoi(n)
	if err != nil {
		t.Fatalf("waiter: %q", line)
	}
	return status
}
