package monitor_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/monitor"
)

// execStdio is what an exec client passes: stdin a pipe holding input,
// stdout and stderr files.
type execStdio struct {
	files    [3]*os.File
	out, err string // paths
}

func newExecStdio(t *testing.T, dir, input string) *execStdio {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(input); err != nil {
		t.Fatal(err)
	}
	w.Close()
	s := &execStdio{out: filepath.Join(dir, "exec.out"), err: filepath.Join(dir, "exec.err")}
	o, err := os.Create(s.out)
	if err != nil {
		t.Fatal(err)
	}
	e, err := os.Create(s.err)
	if err != nil {
		t.Fatal(err)
	}
	s.files = [3]*os.File{r, o, e}
	t.Cleanup(func() {
		for _, f := range s.files {
			f.Close()
		}
	})
	return s
}

type execResult struct {
	c   *monitor.ExecClient
	err error
}

func (h *harness) startExec(proc *specs.Process, stdio [3]*os.File) <-chan execResult {
	ch := make(chan execResult, 1)
	go func() {
		c, err := monitor.StartExec(h.cfg.ControlSocket, proc, stdio)
		ch <- execResult{c, err}
	}()
	return ch
}

// TestMonitorExec runs a process through the control socket: its stdio
// are the client's files, signals and resizes reach its session, and Wait
// returns its exit status.
func TestMonitorExec(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	done := h.serve()
	stdio := newExecStdio(t, h.dir, "exec input")
	res := h.startExec(&specs.Process{Args: []string{"/bin/echo", "hi"}, Cwd: "/", Env: []string{"A=b"}}, stdio.files)

	f := h.g.mustTake(t, agent.TypeExec, 1)
	var e agent.Exec
	if err := agent.Unmarshal(f.Payload, &e); err != nil || e.Process == nil || strings.Join(e.Process.Args, " ") != "/bin/echo hi" || e.Process.Env[0] != "A=b" {
		t.Fatalf("exec frame: %+v, %v", e.Process, err)
	}
	h.g.mustSendJSON(t, agent.TypeStarted, 1, agent.Started{Pid: 42})
	r := await(t, res, "StartExec")
	if r.err != nil {
		t.Fatalf("StartExec: %v", r.err)
	}
	c := r.c

	if !h.g.wait(func() bool { return h.g.closed[1] }) {
		t.Fatal("the exec's stdin was not closed at its end")
	}
	if got := string(h.g.stdinOf(1)); got != "exec input" {
		t.Errorf("exec stdin: %q", got)
	}
	h.g.mustSend(t, agent.TypeStdinAck, 1, agent.EncodeCount(10))

	if err := c.Signal(2); err != nil {
		t.Fatal(err)
	}
	f = h.g.mustTake(t, agent.TypeSignal, 1)
	if sig, err := agent.DecodeSignal(f.Payload); err != nil || sig != 2 {
		t.Errorf("signal: %d, %v", sig, err)
	}
	if err := c.Signal(0); err != nil { // not passed on
		t.Fatal(err)
	}
	if err := c.Resize(30, 100); err != nil {
		t.Fatal(err)
	}
	f = h.g.mustTake(t, agent.TypeWinsize, 1)
	if ws, err := agent.DecodeWinsize(f.Payload); err != nil || ws != (agent.Winsize{Rows: 30, Cols: 100}) {
		t.Errorf("winsize: %+v, %v", ws, err)
	}
	if n := h.g.count(agent.TypeSignal, 1); n != 1 {
		t.Errorf("%d signal frames for the exec, want 1 (signal 0 is not passed on)", n)
	}

	h.g.mustSend(t, agent.TypeStdout, 1, []byte("exec out\n"))
	h.g.mustSend(t, agent.TypeStderr, 1, []byte("exec err\n"))
	h.g.mustSend(t, agent.TypeStdout, 0, []byte("init out\n"))
	h.g.mustSendJSON(t, agent.TypeExit, 1, agent.Exit{Code: 5})
	st, err := c.Wait()
	if err != nil || st != 5 {
		t.Fatalf("Wait: %d, %v; want 5", st, err)
	}
	if b, _ := os.ReadFile(stdio.out); string(b) != "exec out\n" {
		t.Errorf("exec stdout file: %q", b)
	}
	if b, _ := os.ReadFile(stdio.err); string(b) != "exec err\n" {
		t.Errorf("exec stderr file: %q", b)
	}

	// Late news of the ended session is dropped, the container lives on.
	h.g.mustSend(t, agent.TypeStdout, 1, []byte("late"))
	h.g.mustSend(t, agent.TypeStdinAck, 1, agent.EncodeCount(1))
	h.g.mustSendJSON(t, agent.TypeExit, 1, agent.Exit{Code: 6})
	h.g.mustSend(t, agent.TypeStdout, 0, []byte("after\n"))
	if !eventually(func() bool { return strings.Contains(h.out.String(), "after\n") }) {
		t.Fatalf("the container did not survive late frames of an ended exec; log:\n%s", h.log.String())
	}
	if got := h.out.String(); got != "init out\nafter\n" {
		t.Errorf("container stdout %q: exec output leaked into it?", got)
	}
	if b, _ := os.ReadFile(stdio.out); string(b) != "exec out\n" {
		t.Errorf("exec stdout file after late frames: %q", b)
	}
	if r, err := h.call(monitor.Request{Op: monitor.OpState}); err != nil || r.Status != specs.StateRunning {
		t.Errorf("state: %+v, %v", r, err)
	}

	// Sessions are numbered on; the next one the guest refuses.
	stdio2 := newExecStdio(t, shortDir(t), "")
	res = h.startExec(&specs.Process{Args: []string{"nope"}}, stdio2.files)
	h.g.mustTake(t, agent.TypeExec, 2)
	h.g.mustSendJSON(t, agent.TypeError, 2, agent.Error{Message: `exec: "nope": executable file not found`})
	if r := await(t, res, "StartExec"); !errContains(r.err, "executable file not found") {
		t.Errorf("StartExec refused by the guest: %v", r.err)
	}
	// A frame for a session not allocated yet is a violation, but for 2,
	// allocated and ended, it is late news.
	h.g.mustSend(t, agent.TypeStdout, 2, []byte("late"))

	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 0})
	if st := await(t, done, "Serve"); st != 0 {
		t.Errorf("Serve: %d; log:\n%s", st, h.log.String())
	}
}

// TestMonitorExecEndsWithContainer: an exec still running when the
// container ends reports StatusGuestDied.
func TestMonitorExecEndsWithContainer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	done := h.serve()
	stdio := newExecStdio(t, h.dir, "")
	res := h.startExec(&specs.Process{Args: []string{"sleep", "100"}}, stdio.files)
	h.g.mustTake(t, agent.TypeExec, 1)
	h.g.mustSendJSON(t, agent.TypeStarted, 1, agent.Started{Pid: 9})
	r := await(t, res, "StartExec")
	if r.err != nil {
		t.Fatal(r.err)
	}
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Signal: 15})
	if st := await(t, done, "Serve"); st != 143 {
		t.Errorf("Serve: %d", st)
	}
	wait := make(chan int, 1)
	go func() {
		st, err := r.c.Wait()
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		wait <- st
	}()
	if st := await(t, wait, "Wait"); st != monitor.StatusGuestDied {
		t.Errorf("exec status %d, want %d", st, monitor.StatusGuestDied)
	}
}

// TestMonitorExecRefused: exec needs args and a running container.
func TestMonitorExecRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	stdio := newExecStdio(t, h.dir, "")
	if _, err := monitor.StartExec(h.cfg.ControlSocket, &specs.Process{Args: []string{"ls"}}, stdio.files); !errContains(err, "cannot exec in a container that is created") {
		t.Errorf("exec in a created container: %v", err)
	}
	h.start()
	if _, err := monitor.StartExec(h.cfg.ControlSocket, &specs.Process{}, stdio.files); !errContains(err, "no process args") {
		t.Errorf("exec without args: %v", err)
	}
	if n := h.g.count(agent.TypeExec, 1); n != 0 {
		t.Errorf("%d exec frames sent for refused execs", n)
	}
	// A guest sending frames for a session that was never allocated breaks
	// the protocol.
	done := h.serve()
	h.g.mustSend(t, agent.TypeStdout, 1, []byte("x"))
	if st := await(t, done, "Serve"); st != monitor.StatusGuestDied {
		t.Errorf("Serve: %d", st)
	}
	if _, err := monitor.StartExec(h.cfg.ControlSocket, &specs.Process{Args: []string{"ls"}}, stdio.files); !errContains(err, "not running") {
		t.Errorf("exec after the container stopped: %v", err)
	}
}

// pipeRefs counts this process's descriptors open on the pipe of f.
func pipeRefs(t *testing.T, f *os.File) int {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	want := "pipe:[" + strconv.FormatUint(st.Ino, 10) + "]"
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == want {
			n++
		}
	}
	return n
}

// TestMonitorExecReleasesStdinAtExit: once an exec'd process has exited,
// the monitor lets go of the client's stdin, which stays open (a terminal,
// or a pipe whose writer lives on). Otherwise it keeps a read pending on it
// and swallows the next input meant for whoever reads it after the exec:
// with `vxn exec` (no -t) from a shell, the user's next keystrokes. (The
// monitor reopens the stdin it receives non-blocking, so Close ends the
// pending read.)
func TestMonitorExecReleasesStdinAtExit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	stdio := newExecStdio(t, h.dir, "")
	// stdin: a pipe whose writer stays open, as a terminal would.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	stdio.files[0].Close()
	stdio.files[0] = r
	res := h.startExec(&specs.Process{Args: []string{"true"}}, stdio.files)
	h.g.mustTake(t, agent.TypeExec, 1)
	h.g.mustSendJSON(t, agent.TypeStarted, 1, agent.Started{Pid: 3})
	c := await(t, res, "StartExec")
	if c.err != nil {
		t.Fatal(c.err)
	}
	h.g.mustSendJSON(t, agent.TypeExit, 1, agent.Exit{})
	if st, err := c.c.Wait(); err != nil || st != 0 {
		t.Fatalf("Wait: %d, %v", st, err)
	}
	// Ours are r and w; the monitor's copy of r must go.
	deadline := time.Now().Add(2 * time.Second) // hang guard
	for pipeRefs(t, r) > 2 {
		if time.Now().After(deadline) {
			_, werr := w.Write([]byte("next command\n"))
			released := eventually(func() bool { return pipeRefs(t, r) == 2 })
			t.Fatalf("the monitor still holds the stdin of exec session 1 after it exited; a line written then "+
				"(write error %v) was taken by the monitor (which then let go: %v) and reached the guest in %d stdin frames",
				werr, released, h.g.count(agent.TypeStdin, 1))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMonitorConcurrentExecs: two exec sessions at once, each with its own
// output files and its own stdin window, while the container's own stdin
// window is full.
func TestMonitorConcurrentExecs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withStdin(&patternReader{n: 2 * agent.StdinWindow}))
	h.boot()
	h.start()
	done := h.serve()
	// The container's process reads nothing: its window fills.
	if !h.g.wait(func() bool { return h.g.stdin[0] != nil && h.g.stdin[0].Len() >= agent.StdinWindow-agent.ChunkSize }) {
		t.Fatal("no stdin for the container")
	}

	var clients [2]*monitor.ExecClient
	var stdios [2]*execStdio
	for i := range clients {
		stdios[i] = newExecStdio(t, shortDir(t), strconv.Itoa(i)+" in")
		res := h.startExec(&specs.Process{Args: []string{"cat"}}, stdios[i].files)
		id := uint32(i + 1)
		h.g.mustTake(t, agent.TypeExec, id)
		h.g.mustSendJSON(t, agent.TypeStarted, id, agent.Started{Pid: 10 + i})
		r := await(t, res, "StartExec")
		if r.err != nil {
			t.Fatal(r.err)
		}
		clients[i] = r.c
	}
	for i := range clients {
		id := uint32(i + 1)
		if !h.g.wait(func() bool { return h.g.closed[id] }) {
			t.Fatalf("exec %d: stdin not closed", id)
		}
		if got, want := string(h.g.stdinOf(id)), strconv.Itoa(i)+" in"; got != want {
			t.Errorf("exec %d stdin %q, want %q", id, got, want)
		}
	}
	for j := 0; j < 3; j++ {
		for i := range clients {
			h.g.mustSend(t, agent.TypeStdout, uint32(i+1), []byte("out"+strconv.Itoa(i)+" "))
			h.g.mustSend(t, agent.TypeStderr, uint32(i+1), []byte("err"+strconv.Itoa(i)+" "))
		}
	}
	h.g.mustSendJSON(t, agent.TypeExit, 2, agent.Exit{Code: 22})
	h.g.mustSendJSON(t, agent.TypeExit, 1, agent.Exit{Signal: 2})
	for i, want := range []int{130, 22} {
		if st, err := clients[i].Wait(); err != nil || st != want {
			t.Errorf("exec %d: Wait %d, %v; want %d", i+1, st, err, want)
		}
		o := "out" + strconv.Itoa(i) + " "
		e := "err" + strconv.Itoa(i) + " "
		if b, _ := os.ReadFile(stdios[i].out); string(b) != o+o+o {
			t.Errorf("exec %d stdout %q", i+1, b)
		}
		if b, _ := os.ReadFile(stdios[i].err); string(b) != e+e+e {
			t.Errorf("exec %d stderr %q", i+1, b)
		}
	}
	if h.out.String() != "" || h.err.String() != "" {
		t.Errorf("exec output reached the container's stdio: %q %q", h.out.String(), h.err.String())
	}
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{})
	if st := await(t, done, "Serve"); st != 0 {
		t.Errorf("Serve: %d", st)
	}
}
