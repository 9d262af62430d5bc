package lifecycle_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The supervisor is what conmon and containerd-shim are to the runtime: a
// child subreaper that runs `vxn create`, then waits (wait4) on the
// pid-file PID, which must have been re-parented to it, and reports that
// process's exit as the container's: exit N is N, signal S is 128+S.
//
// It runs as this test binary re-executed with helperEnv set, so that only
// that short-lived process is a subreaper, never `go test` itself.

// helperEnv holds the helper's arguments (JSON) in its environment.
const helperEnv = "VXN_LIFECYCLE_HELPER"

// helperArgs tells the helper what to create.
type helperArgs struct {
	Vxn     string   `json:"vxn"`
	Root    string   `json:"root"`
	Bundle  string   `json:"bundle"`
	ID      string   `json:"id"`
	PidFile string   `json:"pidFile"`
	Stdout  string   `json:"stdout"`
	Stderr  string   `json:"stderr"`
	Extra   []string `json:"extra,omitempty"`
}

// helperEvent is one line the helper prints on its stdout.
type helperEvent struct {
	Event string `json:"event"` // "created", "exited" or "error"
	// created:
	CreateCode int    `json:"createCode"`
	PidFileRaw string `json:"pidFileRaw"`
	Pid        int    `json:"pid"`
	PPid       int    `json:"ppid"` // parent of Pid once create has exited
	Self       int    `json:"self"` // the helper's own PID
	// exited:
	Status int    `json:"status"`
	Wait   string `json:"wait"` // the raw wait status, described
	// error:
	Error string `json:"error,omitempty"`
}

// runHelper is the helper process's main.
func runHelper() int {
	enc := json.NewEncoder(os.Stdout)
	fail := func(format string, args ...any) int {
		_ = enc.Encode(helperEvent{Event: "error", Error: fmt.Sprintf(format, args...)})
		return 1
	}
	var a helperArgs
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &a); err != nil {
		return fail("helper arguments: %v", err)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	stdout, err := os.OpenFile(a.Stdout, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fail("%v", err)
	}
	stderr, err := os.OpenFile(a.Stderr, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fail("%v", err)
	}
	args := append([]string{"--root", a.Root, "create", "--bundle", a.Bundle, "--pid-file", a.PidFile}, a.Extra...)
	cmd := exec.Command(a.Vxn, append(args, a.ID)...)
	cmd.Stdout, cmd.Stderr = stdout, stderr // stdin: /dev/null
	err = cmd.Run()
	stdout.Close()
	stderr.Close()
	ev := helperEvent{Event: "created", Self: os.Getpid()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		ev.CreateCode = ee.ExitCode()
		_ = enc.Encode(ev)
		return 0
	case err != nil:
		return fail("running vxn create: %v", err)
	}
	raw, err := os.ReadFile(a.PidFile)
	if err != nil {
		return fail("reading the pid file: %v", err)
	}
	ev.PidFileRaw = string(raw)
	ev.Pid, err = strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		return fail("pid file %q: %v", raw, err)
	}
	if f := procStat(ev.Pid); len(f) > 1 {
		ev.PPid, _ = strconv.Atoi(f[1])
	}
	_ = enc.Encode(ev)
	// Reap everything re-parented here until the pid-file process exits.
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fail("wait4 before pid %d exited: %v (it is not a descendant of this subreaper)", ev.Pid, err)
		}
		if pid != ev.Pid {
			continue
		}
		out := helperEvent{Event: "exited"}
		switch {
		case ws.Exited():
			out.Status = ws.ExitStatus()
			out.Wait = fmt.Sprintf("exited with status %d", ws.ExitStatus())
		case ws.Signaled():
			out.Status = 128 + int(ws.Signal())
			out.Wait = fmt.Sprintf("killed by signal %d", ws.Signal())
		default:
			out.Wait = fmt.Sprintf("wait status %#x", uint32(ws))
		}
		_ = enc.Encode(out)
		return 0
	}
}

// supervised is a container created through the helper.
type supervised struct {
	*ctr
	created helperEvent
	events  chan helperEvent
	cmd     *exec.Cmd
}

// supervise creates a container from a subreaper helper, as conmon does,
// and returns once create has finished (created.CreateCode says how).
func (h *harness) supervise(id, bundle string, extra ...string) *supervised {
	h.t.Helper()
	n := h.next()
	c := &ctr{
		h: h, id: id, bundle: bundle,
		pidFile: h.path(fmt.Sprintf("s%d.pid", n)),
		outFile: h.path(fmt.Sprintf("s%d.out", n)),
		errFile: h.path(fmt.Sprintf("s%d.err", n)),
	}
	a, err := json.Marshal(helperArgs{
		Vxn: vxnBin, Root: h.root, Bundle: bundle, ID: id, PidFile: c.pidFile,
		Stdout: c.outFile, Stderr: c.errFile, Extra: extra,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(a))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	s := &supervised{ctr: c, events: make(chan helperEvent, 4), cmd: cmd}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev helperEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = helperEvent{Event: "error", Error: fmt.Sprintf("helper printed %q", sc.Text())}
			}
			s.events <- ev
		}
	}()
	h.t.Cleanup(func() {
		// A helper still waiting means the test gave up on its container.
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if stderr.Len() > 0 {
			h.t.Logf("helper stderr: %s", stderr.String())
		}
	})
	s.created = s.next("created", cmdTimeout)
	return s
}

// next waits for the helper's next event, which must be of kind want.
func (s *supervised) next(want string, timeout time.Duration) helperEvent {
	t := s.h.t
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatalf("the helper exited without reporting %q", want)
		}
		if ev.Event != want {
			t.Fatalf("helper: want %q, got %+v", want, ev)
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("the helper did not report %q within %s", want, timeout)
	}
	return helperEvent{}
}

// mustCreated fails the test unless create succeeded, and checks what an
// engine relies on: the pid file holds only the PID, and that process was
// re-parented to the subreaper (it is a descendant of create).
func (s *supervised) mustCreated() {
	t := s.h.t
	t.Helper()
	ev := s.created
	if ev.CreateCode != 0 {
		t.Fatalf("vxn create exited %d; stderr: %q", ev.CreateCode, s.errOutput())
	}
	if out, errOut := s.output(), s.errOutput(); out != "" || errOut != "" {
		t.Errorf("a successful create must print nothing: stdout %q, stderr %q", out, errOut)
	}
	if ev.PidFileRaw != strconv.Itoa(ev.Pid) {
		t.Errorf("pid file holds %q: want the decimal PID alone, no newline", ev.PidFileRaw)
	}
	if ev.PPid != ev.Self {
		t.Errorf("pid-file process %d has parent %d after create exited, want the subreaper %d: it is not a descendant of create",
			ev.Pid, ev.PPid, ev.Self)
	}
}

// exitStatus waits for the pid-file process to exit and returns the status
// the subreaper saw.
func (s *supervised) exitStatus(timeout time.Duration) int {
	s.h.t.Helper()
	ev := s.next("exited", timeout)
	s.h.t.Logf("%s: pid-file process %s", s.id, ev.Wait)
	return ev.Status
}
