package lifecycle_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestKill sends signals by name, full name and number, checks the exit
// status the engine's waiter sees (128+signal), and that a stopped
// container cannot be killed.
func TestKill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  []string // kill's signal argument(s)
		want int
	}{
		{"TERM", []string{"TERM"}, 143},
		{"SIGTERM", []string{"SIGTERM"}, 143},
		{"15", []string{"15"}, 143},
		{"9", []string{"9"}, 137},
		{"KILL", []string{"KILL"}, 137},
		{"default-is-TERM", nil, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			b := h.bundle(withArgs("sleep", "100"))
			rootfs := filepath.Join(b, "rootfs")
			s := h.supervise("k", b)
			s.mustCreated()
			h.mustVxn("start", "k")
			h.wantStatus("k", specs.StateRunning)
			if !eventually(5*time.Second, func() bool { return len(procsIn(rootfs)) == 1 }) {
				t.Fatalf("want the container's sleep running in %s, have %v", rootfs, procsIn(rootfs))
			}
			if r := h.mustVxn(append([]string{"kill", "k"}, tc.sig...)...); r.stdout != "" || r.stderr != "" {
				t.Errorf("kill printed: %v", r)
			}
			if got := s.exitStatus(10 * time.Second); got != tc.want {
				t.Errorf("after kill %v: exit status %d, want %d", tc.sig, got, tc.want)
			}
			h.wantStatus("k", specs.StateStopped)
			wantFail(t, h.vxn("kill", "k", "9"), "not running")
			h.mustVxn("delete", "k")
			h.assertGone("k")
		})
	}
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("sh", "-c", "sleep 100 & sleep 100 & wait"))
		rootfs := filepath.Join(b, "rootfs")
		s := h.supervise("ka", b)
		s.mustCreated()
		h.mustVxn("start", "ka")
		if !eventually(5*time.Second, func() bool { return len(procsIn(rootfs)) == 3 }) {
			t.Fatalf("want sh and two sleeps in the container, have %v", procsIn(rootfs))
		}
		h.mustVxn("kill", "--all", "ka", "KILL")
		if got := s.exitStatus(10 * time.Second); got != 137 {
			t.Errorf("after kill --all KILL: exit status %d, want 137", got)
		}
		if !eventually(5*time.Second, func() bool { return len(procsIn(rootfs)) == 0 }) {
			t.Errorf("container processes %v survived kill --all", procsIn(rootfs))
		}
		h.wantStatus("ka", specs.StateStopped)
		h.mustVxn("delete", "ka")
		h.assertGone("ka")
	})
	t.Run("all-reaches-every-process", func(t *testing.T) {
		// The init traps TERM and lives on: only --all can reach the
		// two sleeps.
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("sh", "-c", `trap "echo trapped" TERM; sleep 100 & sleep 100 & while true; do wait; done`))
		rootfs := filepath.Join(b, "rootfs")
		s := h.supervise("kt", b)
		s.mustCreated()
		h.mustVxn("start", "kt")
		if !eventually(5*time.Second, func() bool { return len(procsIn(rootfs)) == 3 }) {
			t.Fatalf("want sh and two sleeps in the container, have %s", describeProcs(procsIn(rootfs)))
		}
		h.mustVxn("kill", "--all", "kt", "TERM")
		if !eventually(5*time.Second, func() bool { return len(procsIn(rootfs)) == 1 }) {
			t.Errorf("after kill --all TERM: want only the trapping sh left, have %s", describeProcs(procsIn(rootfs)))
		}
		if !eventually(5*time.Second, func() bool { return strings.Contains(s.output(), "trapped") }) {
			t.Errorf("the container's init did not get TERM: output %q", s.output())
		}
		h.wantStatus("kt", specs.StateRunning)
		h.mustVxn("kill", "kt", "KILL")
		if got := s.exitStatus(10 * time.Second); got != 137 {
			t.Errorf("after kill KILL: exit status %d, want 137", got)
		}
		h.mustVxn("delete", "kt")
		h.assertGone("kt")
	})
	t.Run("created", func(t *testing.T) {
		// A container that was never started can be killed (runc allows
		// it; engines do it to clean up a failed start).
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("sh", "-c", "echo must-not-run"))
		s := h.supervise("kc", b)
		s.mustCreated()
		h.mustVxn("kill", "kc", "9")
		if got := s.exitStatus(10 * time.Second); got != 137 {
			t.Errorf("kill 9 of a created container: exit status %d, want 137", got)
		}
		h.wantStatus("kc", specs.StateStopped)
		wantFail(t, h.vxn("start", "kc"), "cannot start a container that has stopped")
		if out := s.output(); out != "" {
			t.Errorf("the process of a killed, never started container ran: %q", out)
		}
		h.mustVxn("delete", "kc")
		h.assertGone("kc")
	})
	t.Run("bad-signal", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		b := h.bundle(withArgs("sleep", "100"))
		h.mustCreate("kb", b, nil)
		wantFail(t, h.vxn("kill", "kb", "NOSUCHSIG"), "NOSUCHSIG")
		wantFail(t, h.vxn("kill", "kb", "0"), "invalid signal")
		h.wantStatus("kb", specs.StateCreated)
		wantFail(t, h.vxn("kill", "nosuch", "9"), "does not exist")
		h.mustVxn("delete", "--force", "kb")
		h.assertGone("kb")
	})
}
