package lifecycle_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestLifecycle walks one container through create, start, exit and
// delete, checking `vxn state` at every step.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("cat"))
	in, inW := h.pipe()
	c := h.mustCreate("life", b, in)
	in.Close() // the monitor holds its own copy

	raw, err := os.ReadFile(c.pidFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.HasSuffix(raw, []byte("\n")) || len(bytes.TrimSpace(raw)) != len(raw) {
		t.Errorf("pid file %q: want the PID with no trailing newline", raw)
	}
	pid := c.pid()
	if !alive(pid) {
		t.Fatalf("pid-file process %d is not alive after create", pid)
	}
	st := h.wantStatus("life", specs.StateCreated)
	if st.Pid != pid {
		t.Errorf("state pid %d, pid file %d", st.Pid, pid)
	}
	if st.Bundle != b {
		t.Errorf("state bundle %q, want %q", st.Bundle, b)
	}

	if r := h.mustVxn("start", "life"); r.stdout != "" {
		t.Errorf("start printed %q", r.stdout)
	}
	st = h.wantStatus("life", specs.StateRunning)
	if st.Pid != pid {
		t.Errorf("running: state pid %d, pid file %d", st.Pid, pid)
	}
	// The container's stdin and stdout are create's.
	if _, err := inW.Write([]byte("hello vxn\n")); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool { return c.output() == "hello vxn\n" }) {
		t.Fatalf("container stdout %q, want the line written to its stdin", c.output())
	}
	h.wantStatus("life", specs.StateRunning)

	inW.Close() // cat exits
	h.waitStatus("life", specs.StateStopped, 10*time.Second)
	if !eventually(5*time.Second, func() bool { return !alive(pid) }) {
		t.Errorf("pid-file process %d still alive after the container stopped", pid)
	}
	if r := h.mustVxn("delete", "life"); r.stdout != "" || r.stderr != "" {
		t.Errorf("delete printed: %v", r)
	}
	h.assertGone("life")
}

// exitCases are container commands and the status each must end with.
var exitCases = []struct {
	name   string
	script string
	want   int
}{
	{"exit0", "exit 0", 0},
	{"exit3", "exit 3", 3},
	{"sigkill", "kill -9 $$", 137},
}

// TestExitStatus checks the container's exit status as `vxn run` reports
// it, and as a subreaper waiting on the pid-file PID (conmon,
// containerd-shim) sees it.
func TestExitStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range exitCases {
		t.Run("run/"+tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			b := h.bundle(withArgs("sh", "-c", "echo before; "+tc.script))
			r := h.vxn("run", "--bundle", b, "x"+tc.name)
			if r.code != tc.want {
				t.Errorf("vxn run: exit %d, want %d: %v", r.code, tc.want, r)
			}
			if r.stdout != "before\n" {
				t.Errorf("vxn run stdout %q, want %q", r.stdout, "before\n")
			}
			if r.stderr != "" {
				t.Errorf("vxn run stderr %q, want none", r.stderr)
			}
			h.assertGone("x" + tc.name)
		})
		t.Run("pidfile/"+tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			b := h.bundle(withArgs("sh", "-c", "echo before; "+tc.script))
			id := "p" + tc.name
			s := h.supervise(id, b)
			s.mustCreated()
			if st := h.wantStatus(id, specs.StateCreated); st.Pid != s.created.Pid {
				t.Errorf("state pid %d, pid file %d", st.Pid, s.created.Pid)
			}
			h.mustVxn("start", id)
			if got := s.exitStatus(30 * time.Second); got != tc.want {
				t.Errorf("the pid-file process ended with %d, want %d", got, tc.want)
			}
			if out := s.output(); out != "before\n" {
				t.Errorf("container stdout %q, want %q", out, "before\n")
			}
			h.wantStatus(id, specs.StateStopped)
			h.mustVxn("delete", id)
			h.assertGone(id)
		})
	}
}

// TestStdio checks that stdout and stderr stay apart and that stdin is
// delivered intact (1 MiB of random bytes: 8-bit clean, nothing lost).
func TestStdio(t *testing.T) {
	t.Parallel()
	data := make([]byte, 1<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	t.Run("cat", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("sh", "-c", "echo err1 >&2; cat; echo err2 >&2"))
		r := h.vxnIn(bytes.NewReader(data), "run", "--bundle", b, "cat")
		if r.code != 0 {
			t.Fatalf("%v", r.String()[:min(len(r.String()), 2000)])
		}
		got := sha256.Sum256([]byte(r.stdout))
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("stdout: %d bytes with sha256 %x; want the %d bytes of stdin (sha256 %s)", len(r.stdout), got, len(data), want)
		}
		if r.stderr != "err1\nerr2\n" {
			t.Errorf("stderr %q, want %q", r.stderr, "err1\nerr2\n")
		}
		h.assertGone("cat")
	})
	t.Run("sha256sum", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("sh", "-c", "sha256sum; echo to-stderr >&2"))
		r := h.vxnIn(bytes.NewReader(data), "run", "--bundle", b, "sum")
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
		if f := strings.Fields(r.stdout); len(f) == 0 || f[0] != want {
			t.Errorf("sha256sum in the container printed %q, want %s", r.stdout, want)
		}
		if r.stderr != "to-stderr\n" {
			t.Errorf("stderr %q, want %q", r.stderr, "to-stderr\n")
		}
		h.assertGone("sum")
	})
	t.Run("interleaved", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		var script strings.Builder
		var wantOut, wantErr strings.Builder
		for i := 0; i < 50; i++ {
			fmt.Fprintf(&script, "echo out%d; echo err%d >&2; ", i, i)
			fmt.Fprintf(&wantOut, "out%d\n", i)
			fmt.Fprintf(&wantErr, "err%d\n", i)
		}
		b := h.bundle(withArgs("sh", "-c", script.String()))
		r := h.vxn("run", "--bundle", b, "mix")
		if r.code != 0 {
			t.Fatalf("%v", r)
		}
		if r.stdout != wantOut.String() {
			t.Errorf("stdout %q, want %q", r.stdout, wantOut.String())
		}
		if r.stderr != wantErr.String() {
			t.Errorf("stderr %q, want %q", r.stderr, wantErr.String())
		}
		h.assertGone("mix")
	})
}

// TestDelete checks delete's refusals and --force.
func TestDelete(t *testing.T) {
	t.Parallel()
	t.Run("running", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("sleep", "100"))
		c := h.mustCreate("run1", b, nil)
		pid := c.pid()
		h.mustVxn("start", "run1")
		h.wantStatus("run1", specs.StateRunning)
		rootfs := filepath.Join(b, "rootfs")
		if !eventually(5*time.Second, func() bool { return len(procsIn(rootfs)) > 0 }) {
			t.Fatalf("no container process runs in %s", rootfs)
		}
		wantFail(t, h.vxn("delete", "run1"), "not stopped")
		h.wantStatus("run1", specs.StateRunning)
		if !alive(pid) {
			t.Errorf("a refused delete killed the monitor")
		}

		if r := h.mustVxn("delete", "--force", "run1"); r.stdout != "" || r.stderr != "" {
			t.Errorf("delete --force printed: %v", r)
		}
		h.assertGone("run1")
		if !eventually(5*time.Second, func() bool { return !alive(pid) }) {
			t.Errorf("monitor %d alive after delete --force", pid)
		}
		if ps := procsIn(rootfs); len(ps) > 0 {
			t.Errorf("container processes %v alive after delete --force", ps)
		}
	})
	t.Run("created", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("true"))
		pid := h.mustCreate("cr1", b, nil).pid()
		wantFail(t, h.vxn("delete", "cr1"), "not stopped")
		h.wantStatus("cr1", specs.StateCreated)
		h.mustVxn("delete", "--force", "cr1")
		h.assertGone("cr1")
		if !eventually(5*time.Second, func() bool { return !alive(pid) }) {
			t.Errorf("monitor alive after delete --force")
		}
	})
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		if r := h.vxn("delete", "--force", "nosuch"); r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("delete --force of an unknown container must succeed silently: %v", r)
		}
		wantFail(t, h.vxn("delete", "nosuch"), "does not exist")
		h.assertNothingCreated()
	})
}

// TestStoppedIsFinal checks that once `vxn state` has said "stopped" it
// never says anything else, and that delete then succeeds, even while the
// monitor is still exiting. The window is short: several containers, each
// watched by several concurrent `vxn state`, make hitting it likely.
func TestStoppedIsFinal(t *testing.T) {
	t.Parallel()
	const (
		containers = 12
		pollers    = 3
	)
	for i := 0; i < containers; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			b := h.bundle(withArgs("true"))
			id := fmt.Sprintf("fin%d", i)
			h.mustCreate(id, b, nil)
			h.mustVxn("start", id)
			type obs struct {
				start, end time.Time
				status     specs.ContainerState
			}
			var (
				mu   sync.Mutex
				seen []obs
				wg   sync.WaitGroup
				errs = make(chan error, pollers)
			)
			deadline := time.Now().Add(10 * time.Second)
			for p := 0; p < pollers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					after := 0
					for after < 3 && time.Now().Before(deadline) {
						o := obs{start: time.Now()}
						r, err := execVxn(nil, "--root", h.root, "state", id)
						o.end = time.Now()
						if err != nil || r.code != 0 {
							errs <- fmt.Errorf("%v %v", err, r)
							return
						}
						var st specs.State
						if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
							errs <- err
							return
						}
						o.status = st.Status
						mu.Lock()
						seen = append(seen, o)
						mu.Unlock()
						if st.Status == specs.StateStopped && h.monitorGone(id) {
							after++
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			var firstStopped *obs
			for k := range seen {
				if o := &seen[k]; o.status == specs.StateStopped && (firstStopped == nil || o.end.Before(firstStopped.end)) {
					firstStopped = o
				}
			}
			if firstStopped == nil {
				t.Fatalf("%s never stopped", id)
			}
			var back []string
			var last time.Duration
			for _, o := range seen {
				if d := o.start.Sub(firstStopped.end); o.status != specs.StateStopped && d > 0 {
					if len(back) < 3 {
						back = append(back, fmt.Sprintf("%s %s later", o.status, d.Round(time.Millisecond)))
					}
					last = max(last, d)
				}
			}
			if len(back) > 0 {
				t.Errorf("state of %s went back from stopped to: %s ... (until %s later)", id, strings.Join(back, ", "), last.Round(time.Millisecond))
			}
			h.waitStatus(id, specs.StateStopped, 10*time.Second)
			h.mustVxn("delete", id)
			h.assertGone(id)
		})
	}
}

// TestEngineEnvironment runs the commands with the environment podman
// gives kill, delete, pause and resume: no PATH, no HOME, only an empty
// XDG_RUNTIME_DIR (plus what selects the fake hypervisor).
func TestEngineEnvironment(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("sleep", "100"))
	env := []string{"XDG_RUNTIME_DIR=", "VXN_HYPERVISOR=fake", "VXN_FAKE_GUESTINIT=" + guestinitBin}
	run := func(args ...string) {
		t.Helper()
		r, err := execVxnEnv(env, nil, append([]string{"--root", h.root}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if r.code != 0 {
			t.Fatalf("with no PATH or HOME: %v", r)
		}
	}
	h.mustCreate("env", b, nil)
	run("start", "env")
	run("pause", "env")
	h.wantStatus("env", "paused")
	run("resume", "env")
	h.wantStatus("env", specs.StateRunning)
	run("kill", "env", "9")
	h.waitStatus("env", specs.StateStopped, 10*time.Second)
	run("delete", "env")
	h.assertGone("env")

	// create itself (mke2fs, the monitor) with the same environment.
	_, r, err := h.createRaw(env, nil, "env2", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.code != 0 {
		t.Fatalf("create with no PATH or HOME: %v", r)
	}
	run("start", "env2")
	run("delete", "--force", "env2")
	h.assertGone("env2")
}

// TestRunForwardsSignals checks that `vxn run` passes a signal it gets on
// to the container, as `runc run` does, and exits with 128+signal.
func TestRunForwardsSignals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("sleep", "100"))
	rootfs := filepath.Join(b, "rootfs")
	cmd := exec.Command(vxnBin, "--root", h.root, "run", "--bundle", b, "fwd")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	if !eventually(10*time.Second, func() bool { return len(procsIn(rootfs)) == 1 }) {
		t.Fatalf("the container of vxn run does not run")
	}
	h.wantStatus("fwd", specs.StateRunning)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("vxn run did not exit after SIGTERM; stderr %q", stderr.String())
	}
	if code := cmd.ProcessState.ExitCode(); code != 143 {
		t.Errorf("vxn run exited %d after SIGTERM (%v), want 143; stderr %q", code, cmd.ProcessState, stderr.String())
	}
	h.assertGone("fwd")
}
