package lifecycle_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hookLine is one line a hook appended to the hook log.
type hookLine struct {
	name  string
	raw   string
	state specs.State
}

// hookScript writes a hook on the host (outside the rootfs) that appends
// "<name> <state JSON from stdin>" to log and exits with status code.
func (h *harness) hookScript(log string, code int) string {
	h.t.Helper()
	p := h.path(fmt.Sprintf("hook%d.sh", h.next()))
	script := fmt.Sprintf(`#!/bin/sh
state=$(cat)
printf '%%s %%s\n' "$1" "$state" >> %s
if [ %d -ne 0 ]; then echo "hook $1 says no" >&2; fi
exit %d
`, log, code, code)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// readHookLog parses the hook log.
func readHookLog(t *testing.T, log string) []hookLine {
	t.Helper()
	var out []hookLine
	for _, l := range strings.Split(strings.TrimSuffix(readFile(t, log), "\n"), "\n") {
		if l == "" {
			continue
		}
		name, js, _ := strings.Cut(l, " ")
		hl := hookLine{name: name, raw: js}
		if err := json.Unmarshal([]byte(js), &hl.state); err != nil {
			t.Errorf("hook %s got state %q on stdin: not JSON: %v", name, js, err)
		}
		out = append(out, hl)
	}
	return out
}

func hookNames(ls []hookLine) string {
	var n []string
	for _, l := range ls {
		n = append(n, l.name)
	}
	return strings.Join(n, " ")
}

// hook is a specs.Hook running script with name as its argument.
func hook(script, name string) specs.Hook {
	return specs.Hook{Path: script, Args: []string{script, name}}
}

// TestHooks checks that every hook kind runs, in the runtime-spec's order,
// with the state on stdin.
func TestHooks(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	log := h.path("hooks.log")
	sh := h.hookScript(log, 0)
	b := h.bundle(withArgs("sh", "-c", "echo ran"), func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			Prestart:        []specs.Hook{hook(sh, "prestart-1"), hook(sh, "prestart-2")}, //nolint:staticcheck // deprecated, still used by Docker
			CreateRuntime:   []specs.Hook{hook(sh, "createRuntime")},
			CreateContainer: []specs.Hook{hook(sh, "createContainer")},
			StartContainer:  []specs.Hook{hook(sh, "startContainer")},
			Poststart:       []specs.Hook{hook(sh, "poststart")},
			Poststop:        []specs.Hook{hook(sh, "poststop")},
		}
	})
	c := h.mustCreate("hk", b, nil)
	pid := c.pid()

	// The create-time hooks have all run when create returns.
	lines := readHookLog(t, log)
	if got, want := hookNames(lines), "prestart-1 prestart-2 createRuntime createContainer"; got != want {
		t.Fatalf("hooks run by create: %q, want %q", got, want)
	}
	for _, l := range lines {
		st := l.state
		if st.ID != "hk" || st.Status != specs.StateCreating || st.Pid != pid || st.Bundle != b || st.Version == "" {
			t.Errorf("%s hook state %s: want id hk, status creating, pid %d (the pid file's), bundle %s, an ociVersion",
				l.name, l.raw, pid, b)
		}
	}

	h.mustVxn("start", "hk")
	h.waitStatus("hk", specs.StateStopped, 10*time.Second)
	if out := c.output(); out != "ran\n" {
		t.Errorf("container output %q, want %q", out, "ran\n")
	}
	lines = readHookLog(t, log)
	if got, want := hookNames(lines), "prestart-1 prestart-2 createRuntime createContainer startContainer poststart"; got != want {
		t.Fatalf("hooks run by create and start: %q, want %q", got, want)
	}
	for _, l := range lines[4:] {
		if l.state.ID != "hk" || l.state.Pid != pid {
			t.Errorf("%s hook state %s: want id hk and pid %d", l.name, l.raw, pid)
		}
	}

	h.mustVxn("delete", "hk")
	lines = readHookLog(t, log)
	if got, want := hookNames(lines), "prestart-1 prestart-2 createRuntime createContainer startContainer poststart poststop"; got != want {
		t.Fatalf("hooks after delete: %q, want %q", got, want)
	}
	if st := lines[6].state; st.ID != "hk" || st.Status != specs.StateStopped {
		t.Errorf("poststop hook state %s: want id hk, status stopped", lines[6].raw)
	}
	h.assertGone("hk")
}

// failingCreate makes a container whose createRuntime hook fails, checks
// that create fails naming the hook and leaves nothing behind, and returns
// the names of the hooks that ran.
func failingCreate(t *testing.T, h *harness) string {
	t.Helper()
	log := h.path("hooks.log")
	ok := h.hookScript(log, 0)
	bad := h.hookScript(log, 1)
	b := h.bundle(withArgs("sh", "-c", "echo must-not-run"), func(s *specs.Spec) {
		s.Hooks = &specs.Hooks{
			Prestart:        []specs.Hook{hook(ok, "prestart")}, //nolint:staticcheck // deprecated, still used by Docker
			CreateRuntime:   []specs.Hook{hook(bad, "createRuntime")},
			CreateContainer: []specs.Hook{hook(ok, "createContainer")},
			Poststop:        []specs.Hook{hook(ok, "poststop")},
		}
	})
	c, r := h.create("hf", b, nil)
	wantFail(t, r, "createRuntime", bad, "hook createRuntime says no")
	if _, err := os.Stat(c.pidFile); err == nil {
		t.Errorf("a failed create wrote the pid file")
	}
	h.assertNothingCreated()
	if !eventually(5*time.Second, func() bool { return len(h.procs()) == 0 }) {
		t.Errorf("a failed create left processes: %v", h.procs())
	}
	_, sr := h.state("hf")
	wantFail(t, sr, "does not exist")
	if strings.Contains(c.output(), "must-not-run") {
		t.Errorf("the container process ran although create failed")
	}
	return hookNames(readHookLog(t, log))
}

// TestHookFailure checks what a failing hook does at each point.
func TestHookFailure(t *testing.T) {
	t.Parallel()
	t.Run("createRuntime", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		names := failingCreate(t, h)
		if !strings.HasPrefix(names, "prestart createRuntime") || strings.Contains(names, "createContainer") {
			t.Errorf("hooks run by the failed create: %q, want prestart and createRuntime, and no createContainer", names)
		}
	})
	t.Run("createRuntime-then-poststop", func(t *testing.T) {
		// runtime-spec runtime.md, lifecycle steps 4, 12 and 13: a failed
		// createRuntime hook stops the container and continues at step
		// 12 (destroy), then 13: the poststop hooks MUST run. runc runs
		// them (libcontainer destroy() calls runPoststopHooks).
		t.Parallel()
		h := newHarness(t)
		if names := failingCreate(t, h); names != "prestart createRuntime poststop" {
			t.Errorf("hooks run by the failed create: %q, want %q", names, "prestart createRuntime poststop")
		}
	})
	// A failing startContainer or poststart hook (runtime-spec 1.3 steps
	// 7 and 9): start fails, the container is stopped, delete completes.
	for _, kind := range []string{"startContainer", "poststart"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			log := h.path("hooks.log")
			ok := h.hookScript(log, 0)
			bad := h.hookScript(log, 1)
			b := h.bundle(withArgs("sleep", "100"), func(s *specs.Spec) {
				s.Hooks = &specs.Hooks{Poststop: []specs.Hook{hook(ok, "poststop")}}
				if kind == "startContainer" {
					s.Hooks.StartContainer = []specs.Hook{hook(bad, kind)}
				} else {
					s.Hooks.Poststart = []specs.Hook{hook(bad, kind)}
				}
			})
			h.mustCreate("hs", b, nil)
			wantFail(t, h.vxn("start", "hs"), kind, bad)
			h.waitStatus("hs", specs.StateStopped, 5*time.Second)
			h.mustVxn("delete", "hs")
			h.assertGone("hs")
			if names := hookNames(readHookLog(t, log)); names != kind+" poststop" {
				t.Errorf("hooks run: %q, want %q", names, kind+" poststop")
			}
		})
	}
}
