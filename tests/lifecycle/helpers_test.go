package lifecycle_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cmdTimeout bounds one vxn command. No command of this suite should take
// more than a second or two.
const cmdTimeout = 60 * time.Second

// applets are the busybox applets every test rootfs gets.
var applets = []string{
	"sh", "cat", "echo", "true", "false", "sleep", "kill", "tty", "stty",
	"md5sum", "sha256sum", "head", "wc", "ls", "test", "[",
}

// harness is one test's world: a state root and bundles, all under dir.
type harness struct {
	t    *testing.T
	dir  string // everything this test makes lives here
	root string // the --root of every command
	seq  atomic.Int64
}

// newHarness skips the test when the suite cannot run, and arranges the
// leak check to run when the test and its own cleanups are done.
func newHarness(t *testing.T) *harness {
	t.Helper()
	if skipReason != "" {
		t.Skip(skipReason)
	}
	if _, err := os.Stat(busybox); err != nil {
		t.Fatalf("%s is missing: install busybox-static (apt-get install busybox-static)", busybox)
	}
	// A short path: unix socket paths (the monitor's control socket, the
	// fake guest's agent socket) are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "vxnlt")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, root: filepath.Join(dir, "root")}
	// Cleanups run last-registered first: RemoveAll runs after the leak
	// check, which runs after every cleanup the test registers itself.
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the test directory: %v", err)
		}
	})
	t.Cleanup(h.checkLeaks)
	return h
}

// next returns a number unique within the test, for file names.
func (h *harness) next() int64 { return h.seq.Add(1) }

// path returns a path in the test directory.
func (h *harness) path(name string) string { return filepath.Join(h.dir, name) }

// withArgs sets process.args.
func withArgs(args ...string) func(*specs.Spec) {
	return func(s *specs.Spec) { s.Process.Args = args }
}

// bundle makes a bundle with a busybox rootfs and the config.json of
// `vxn spec`, with terminal off, modified by mods. It returns the bundle
// directory.
func (h *harness) bundle(mods ...func(*specs.Spec)) string {
	h.t.Helper()
	b := h.path(fmt.Sprintf("bundle%d", h.next()))
	h.rootfs(filepath.Join(b, "rootfs"))
	h.mustVxn("spec", "--bundle", b)
	spec := readSpec(h.t, b)
	spec.Process.Terminal = false
	for _, m := range mods {
		m(spec)
	}
	writeSpec(h.t, b, spec)
	return b
}

// rootfs makes a minimal root filesystem: busybox and its applets.
func (h *harness) rootfs(dir string) {
	h.t.Helper()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		h.t.Fatal(err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		h.t.Fatal(err)
	}
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(bin, a)); err != nil {
			h.t.Fatal(err)
		}
	}
	// The fake's guest does no mounts: the shell needs /dev/null for
	// background jobs, as images that ship a /dev have it.
	dev := filepath.Join(dir, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(dev, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		h.t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		h.t.Fatal(err)
	}
}

func readSpec(t *testing.T, bundle string) *specs.Spec {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatalf("config.json written by vxn spec: %v", err)
	}
	if s.Process == nil {
		t.Fatal("config.json written by vxn spec has no process")
	}
	return &s
}

func writeSpec(t *testing.T, bundle string, s *specs.Spec) {
	t.Helper()
	data, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// result is a finished vxn command.
type result struct {
	args   []string
	stdout string
	stderr string
	code   int // exit status; -1 when killed by a signal
}

func (r result) String() string {
	return fmt.Sprintf("vxn %s: exit %d\nstdout: %q\nstderr: %q", strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// vxn runs vxn --root <root> args... with no stdin, as an engine runs it.
func (h *harness) vxn(args ...string) result {
	h.t.Helper()
	return h.vxnIn(nil, args...)
}

// vxnIn runs vxn with stdin as its standard input.
func (h *harness) vxnIn(stdin io.Reader, args ...string) result {
	h.t.Helper()
	args = append([]string{"--root", h.root}, args...)
	return runVxn(h.t, stdin, args...)
}

// runVxn runs the vxn binary with exactly args.
func runVxn(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	r, err := execVxn(stdin, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// execVxn runs vxn with exactly args; safe in any goroutine.
func execVxn(stdin io.Reader, args ...string) (result, error) {
	return execVxnEnv(nil, stdin, args...)
}

// execVxnEnv runs vxn with exactly args and env (nil: this process's).
func execVxnEnv(env []string, stdin io.Reader, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, vxnBin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, &stdout, &stderr
	// A process left holding the output pipes must not hang the test.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		return r, fmt.Errorf("vxn %s did not finish within %s", strings.Join(args, " "), cmdTimeout)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		return r, fmt.Errorf("vxn %s: %v (stderr %q)", strings.Join(args, " "), err, stderr.String())
	}
	return r, nil
}

// mustVxn runs vxn and fails the test unless it succeeds.
func (h *harness) mustVxn(args ...string) result {
	h.t.Helper()
	r := h.vxn(args...)
	if r.code != 0 {
		h.t.Fatalf("%v", r)
	}
	return r
}

// wantFail checks that a command failed the way runc fails: exit status 1
// and an error on stderr containing every one of wants.
func wantFail(t *testing.T, r result, wants ...string) {
	t.Helper()
	if r.code != 1 {
		t.Errorf("want exit status 1, got %v", r)
		return
	}
	for _, w := range wants {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not contain %q: %v", w, r)
		}
	}
}

// ctr is a container made by harness.create.
type ctr struct {
	h       *harness
	id      string
	bundle  string
	pidFile string
	outFile string // the container's stdout (create's stdout)
	errFile string // the container's stderr (create's stderr)
}

// create runs `vxn create` as conmon does: the container's stdio are
// create's own (stdin as given, or /dev/null; stdout and stderr files),
// with a pid file. What create printed is in the result.
func (h *harness) create(id, bundle string, stdin *os.File, extra ...string) (*ctr, result) {
	h.t.Helper()
	return h.createWith(nil, id, bundle, stdin, extra...)
}

// createWith is create with more global flags.
func (h *harness) createWith(global []string, id, bundle string, stdin *os.File, extra ...string) (*ctr, result) {
	h.t.Helper()
	c, r, err := h.createRaw(nil, global, id, bundle, stdin, extra...)
	if err != nil {
		h.t.Fatal(err)
	}
	return c, r
}

// createRaw is createWith for any goroutine: it reports instead of failing.
// env, if not nil, is create's whole environment.
func (h *harness) createRaw(env, global []string, id, bundle string, stdin *os.File, extra ...string) (*ctr, result, error) {
	n := h.next()
	c := &ctr{
		h: h, id: id, bundle: bundle,
		pidFile: h.path(fmt.Sprintf("c%d.pid", n)),
		outFile: h.path(fmt.Sprintf("c%d.out", n)),
		errFile: h.path(fmt.Sprintf("c%d.err", n)),
	}
	args := append(append([]string{"--root", h.root}, global...), "create", "--bundle", bundle, "--pid-file", c.pidFile)
	args = append(args, extra...)
	args = append(args, id)
	r := result{args: args}
	out, err := os.Create(c.outFile)
	if err != nil {
		return c, r, err
	}
	defer out.Close()
	errf, err := os.Create(c.errFile)
	if err != nil {
		return c, r, err
	}
	defer errf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, vxnBin, args...)
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = stdin
	}
	// *os.File stdio: passed as they are, so that Wait does not wait for
	// the monitor, which keeps them.
	cmd.Stdout, cmd.Stderr = out, errf
	err = cmd.Run()
	if ctx.Err() != nil {
		return c, r, fmt.Errorf("vxn create did not finish within %s", cmdTimeout)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		return c, r, fmt.Errorf("vxn create: %v", err)
	}
	b1, _ := os.ReadFile(c.outFile)
	b2, _ := os.ReadFile(c.errFile)
	r.stdout, r.stderr = string(b1), string(b2)
	return c, r, nil
}

// mustCreate creates a container and fails the test unless create
// succeeds silently (engines take create's output as container output).
func (h *harness) mustCreate(id, bundle string, stdin *os.File, extra ...string) *ctr {
	h.t.Helper()
	c, r := h.create(id, bundle, stdin, extra...)
	if r.code != 0 {
		h.t.Fatalf("%v", r)
	}
	if r.stdout != "" || r.stderr != "" {
		h.t.Errorf("a successful create must print nothing (it would be container output): %v", r)
	}
	return c
}

func (c *ctr) output() string    { return readFile(c.h.t, c.outFile) }
func (c *ctr) errOutput() string { return readFile(c.h.t, c.errFile) }

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// pid reads the pid file the way containerd does (strconv.Atoi of the
// whole content: no newline allowed).
func (c *ctr) pid() int {
	c.h.t.Helper()
	b, err := os.ReadFile(c.pidFile)
	if err != nil {
		c.h.t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(string(b))
	if err != nil {
		c.h.t.Fatalf("pid file %q: %v (containerd parses it with strconv.Atoi)", b, err)
	}
	return pid
}

// state runs `vxn state` and decodes its output.
func (h *harness) state(id string) (*specs.State, result) {
	h.t.Helper()
	r := h.vxn("state", id)
	if r.code != 0 {
		return nil, r
	}
	var st specs.State
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		h.t.Fatalf("state output is not JSON: %v: %v", err, r)
	}
	if st.ID != id {
		h.t.Errorf("state of %s says id %q", id, st.ID)
	}
	if st.Version == "" {
		h.t.Errorf("state of %s has no ociVersion: %s", id, r.stdout)
	}
	return &st, r
}

// mustState returns the state of a container that must exist.
func (h *harness) mustState(id string) *specs.State {
	h.t.Helper()
	st, r := h.state(id)
	if st == nil {
		h.t.Fatalf("%v", r)
	}
	return st
}

// wantStatus checks the status `vxn state` reports.
func (h *harness) wantStatus(id string, want specs.ContainerState) *specs.State {
	h.t.Helper()
	st := h.mustState(id)
	if st.Status != want {
		h.t.Fatalf("state of %s: status %q, want %q", id, st.Status, want)
	}
	return st
}

// waitStatus polls `vxn state` until it reports want. For "stopped" it
// also waits until the monitor has exited, as an engine does (it calls
// delete once it has reaped the pid-file process): vxn may report
// "stopped" while the monitor is still exiting (see TestStoppedIsFinal).
func (h *harness) waitStatus(id string, want specs.ContainerState, timeout time.Duration) *specs.State {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := h.mustState(id)
		if st.Status == want && (want != specs.StateStopped || h.monitorGone(id)) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("state of %s: still %q after %s, want %q", id, st.Status, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// monitorGone reports whether the monitor of container id has exited.
func (h *harness) monitorGone(id string) bool {
	for _, p := range h.procs() {
		if strings.HasSuffix(procCmdline(p.pid), " monitor "+id) {
			return false
		}
	}
	return true
}

// assertGone checks that a deleted container left nothing in the root.
func (h *harness) assertGone(id string) {
	h.t.Helper()
	if _, err := os.Lstat(filepath.Join(h.root, id)); !errors.Is(err, os.ErrNotExist) {
		h.t.Errorf("state directory of %s still exists after delete (%v)", id, err)
	}
	if _, err := os.Lstat(filepath.Join(h.root, ".fake", "vxn-"+id+".json")); !errors.Is(err, os.ErrNotExist) {
		h.t.Errorf("fake guest of %s still recorded after delete (%v)", id, err)
	}
	_, r := h.state(id)
	wantFail(h.t, r, "does not exist")
}

// assertNothingCreated checks that the root holds no container at all.
func (h *harness) assertNothingCreated() {
	h.t.Helper()
	if l := h.rootLeaks(); len(l) > 0 {
		h.t.Errorf("a failed command left behind:\n%s", strings.Join(l, "\n"))
	}
}

// rootLeaks lists container directories and fake guests under the root.
func (h *harness) rootLeaks() []string {
	var leaks []string
	ents, _ := os.ReadDir(h.root)
	for _, e := range ents {
		if e.Name() != ".fake" {
			leaks = append(leaks, "state directory "+filepath.Join(h.root, e.Name()))
		}
	}
	recs, _ := os.ReadDir(filepath.Join(h.root, ".fake"))
	for _, e := range recs {
		leaks = append(leaks, "fake guest record "+filepath.Join(h.root, ".fake", e.Name()))
	}
	return leaks
}

// proc is a process that belongs to this test.
type proc struct {
	pid  int
	why  string
	desc string
}

// procs lists the live processes that belong to this test: their command
// line names a file of it, or their root or working directory is in it
// (the container processes are chrooted into a bundle's rootfs).
func (h *harness) procs() []proc {
	return procsUnder(h.dir)
}

func procsUnder(dir string) []proc {
	var out []proc
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || !alive(pid) {
			continue
		}
		cmdline := procCmdline(pid)
		why := ""
		switch {
		case strings.Contains(cmdline, dir):
			why = "command line"
		case under(procLink(pid, "root"), dir):
			why = "root directory"
		case under(procLink(pid, "cwd"), dir):
			why = "working directory"
		default:
			continue
		}
		out = append(out, proc{pid: pid, why: why, desc: fmt.Sprintf("pid %d (%s): %q", pid, why, cmdline)})
	}
	return out
}

// procsIn lists the live processes chrooted into rootfs.
func procsIn(rootfs string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && alive(pid) && procLink(pid, "root") == rootfs {
			out = append(out, pid)
		}
	}
	return out
}

// procsInState lists the processes chrooted into rootfs whose state
// (proc(5): R, S, T ...) is state.
func procsInState(rootfs, state string) []int {
	var out []int
	for _, pid := range procsIn(rootfs) {
		if f := procStat(pid); len(f) > 0 && f[0] == state {
			out = append(out, pid)
		}
	}
	return out
}

// describeProcs describes processes for a failure message.
func describeProcs(pids []int) string {
	var d []string
	for _, pid := range pids {
		st := "?"
		if f := procStat(pid); len(f) > 0 {
			st = f[0]
		}
		d = append(d, fmt.Sprintf("%d[%s] %q", pid, st, procCmdline(pid)))
	}
	return strings.Join(d, ", ")
}

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

func procLink(pid int, name string) string {
	s, _ := os.Readlink(fmt.Sprintf("/proc/%d/%s", pid, name))
	return s
}

func procCmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
}

// procStat returns the fields of /proc/PID/stat after the command name:
// [0] is the state, [1] the parent PID.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

// alive reports whether pid is a process that has not exited (zombies
// have exited).
func alive(pid int) bool {
	f := procStat(pid)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// checkLeaks fails the test when it left a container, a fake guest or a
// process behind, then removes whatever is left.
func (h *harness) checkLeaks() {
	t := h.t
	var leaks []string
	var ps []proc
	// Processes of a deleted container may take a moment to be reaped.
	for deadline := time.Now().Add(5 * time.Second); ; {
		ps = h.procs()
		leaks = h.rootLeaks()
		for _, p := range ps {
			leaks = append(leaks, "process "+p.desc)
		}
		if len(leaks) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(leaks) == 0 {
		return
	}
	if t.Failed() {
		t.Logf("left behind by the failed test (cleaning up):\n%s", strings.Join(leaks, "\n"))
	} else {
		t.Errorf("leaked after the test:\n%s", strings.Join(leaks, "\n"))
	}
	// Clean up so that one failure does not pollute the machine.
	ents, _ := os.ReadDir(h.root)
	for _, e := range ents {
		if e.Name() != ".fake" {
			runVxnQuiet("--root", h.root, "delete", "--force", e.Name())
		}
	}
	for _, p := range h.procs() {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// runVxnQuiet runs vxn for a cleanup, ignoring the result.
func runVxnQuiet(args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	_ = exec.CommandContext(ctx, vxnBin, args...).Run()
}

// pipe returns an os.Pipe whose ends are closed at the end of the test.
func (h *harness) pipe() (r, w *os.File) {
	h.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// eventually polls cond until it holds or timeout passes.
func eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}
