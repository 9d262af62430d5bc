package procfs_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/procfs"
)

const hangGuard = 20 * time.Second

// eventually polls cond until it holds, failing at the hang guard.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, hangGuard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// state is the state letter of pid from /proc, or "" when gone.
func state(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+3 > len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

func parentOf(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	pp, _ := strconv.Atoi(f[1])
	return pp
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// spawn starts a command in its own process group, killed and reaped at
// the end of the test.
func spawn(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	return cmd
}

func TestStartTimeSelf(t *testing.T) {
	st, err := procfs.StartTime(os.Getpid())
	if err != nil || st == 0 {
		t.Fatalf("StartTime(self): %d, %v", st, err)
	}
	again, err := procfs.StartTime(os.Getpid())
	if err != nil || again != st {
		t.Errorf("StartTime(self) changed: %d then %d (%v)", st, again, err)
	}
	if !procfs.Alive(os.Getpid(), st) {
		t.Error("Alive(self) is false")
	}
	if procfs.Alive(os.Getpid(), st+1) {
		t.Error("Alive(self) with another start time is true: a reused PID would pass")
	}
	// The parent started no later than this process.
	if pst, err := procfs.StartTime(os.Getppid()); err != nil || pst > st {
		t.Errorf("StartTime(parent) %d, %v; self %d", pst, err, st)
	}
}

func TestAliveRejects(t *testing.T) {
	for _, pid := range []int{0, -1, -100} {
		if procfs.Alive(pid, 0) {
			t.Errorf("Alive(%d) is true", pid)
		}
	}
	if _, err := procfs.StartTime(1 << 30); err == nil {
		t.Error("StartTime of a PID that cannot exist succeeded")
	}
}

// TestStartTimeExitedChild: a child that has exited but is not reaped (a
// zombie) is dead to StartTime and Alive, and so is a reaped one.
func TestStartTimeExitedChild(t *testing.T) {
	cmd := spawn(t, "sleep", "100")
	pid := cmd.Process.Pid
	st, err := procfs.StartTime(pid)
	if err != nil {
		t.Fatalf("StartTime(child): %v", err)
	}
	self, _ := procfs.StartTime(os.Getpid())
	if st < self {
		t.Errorf("child started at %d, before this process (%d)", st, self)
	}
	if !procfs.Alive(pid, st) {
		t.Fatal("Alive(child) is false")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the child becomes a zombie", func() bool { return state(pid) == "Z" })
	if _, err := procfs.StartTime(pid); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("StartTime(zombie): %v, want an error saying it exited", err)
	}
	if procfs.Alive(pid, st) {
		t.Error("Alive(zombie) is true")
	}
	_ = cmd.Wait()
	if _, err := procfs.StartTime(pid); err == nil {
		t.Error("StartTime(reaped child) succeeded")
	}
	if procfs.Alive(pid, st) {
		t.Error("Alive(reaped child) is true")
	}
}

// TestStartTimeOddCommandName: the command name is in parentheses in
// /proc/PID/stat and may contain spaces and parentheses itself.
func TestStartTimeOddCommandName(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	name := filepath.Join(t.TempDir(), "a) Z 1 (b")
	if err := os.Symlink(sleep, name); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, "100")
	cmd.Args[0] = "sleep" // a multi-call binary picks its applet by argv[0]
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	eventually(t, "the child runs under its odd name", func() bool { return comm(pid) == "a) Z 1 (b" })
	st, err := procfs.StartTime(pid)
	if err != nil {
		t.Fatalf("StartTime: %v", err)
	}
	self, _ := procfs.StartTime(os.Getpid())
	if st < self || st > self+uint64(time.Hour.Seconds())*1000 {
		t.Errorf("StartTime %d, self %d: misparsed", st, self)
	}
	if !procfs.Alive(pid, st) {
		t.Error("a live process whose name looks like a zombie's stat is not Alive")
	}
	if got := procfs.Descendants(os.Getpid()); !slices.Contains(got, pid) {
		t.Errorf("Descendants(self) = %v lacks %d", got, pid)
	}
}

// TestDescendants: every process below a tree's root, at any depth, and
// nothing else.
func TestDescendants(t *testing.T) {
	cmd := spawn(t, "sh", "-c", `sleep 100 & sleep 100 & sh -c "sleep 100 & wait" & wait`)
	root := cmd.Process.Pid
	// sh, three children (two sleeps, an inner sh), one grandchild.
	var got []int
	eventually(t, "the tree forms", func() bool {
		got = procfs.Descendants(root)
		n := 0
		for _, p := range got {
			if comm(p) == "sleep" {
				n++
			}
		}
		return len(got) == 4 && n == 3
	})
	if slices.Contains(got, root) || slices.Contains(got, os.Getpid()) {
		t.Errorf("Descendants(%d) = %v includes the root or this process", root, got)
	}
	for _, p := range got {
		// Each descends from root.
		q := p
		for i := 0; i < 10 && q > 1 && q != root; i++ {
			q = parentOf(q)
		}
		if q != root {
			t.Errorf("%d (%s) in Descendants(%d) does not descend from it", p, comm(p), root)
		}
	}
	var inner int
	for _, p := range got {
		if comm(p) == "sh" {
			inner = p
		}
	}
	if inner == 0 {
		t.Fatalf("no inner sh in %v", got)
	}
	if sub := procfs.Descendants(inner); len(sub) != 1 || comm(sub[0]) != "sleep" {
		t.Errorf("Descendants(inner sh) = %v, want its one sleep", sub)
	}
	self := procfs.Descendants(os.Getpid())
	for _, p := range append(got, root) {
		if !slices.Contains(self, p) {
			t.Errorf("Descendants(self) lacks %d", p)
		}
	}
	leaf := got[0]
	if comm(leaf) != "sleep" {
		leaf = got[1]
	}
	if d := procfs.Descendants(leaf); len(d) != 0 {
		t.Errorf("Descendants(a sleep) = %v", d)
	}
	if d := procfs.Descendants(); len(d) != 0 {
		t.Errorf("Descendants() = %v", d)
	}
	if d := procfs.Descendants(1 << 30); len(d) != 0 {
		t.Errorf("Descendants(no such pid) = %v", d)
	}
}

// TestPidfdPid: the PID behind a pidfd, and errors for what is not one or
// no longer has a process.
func TestPidfdPid(t *testing.T) {
	cmd := spawn(t, "sleep", "100")
	pid := cmd.Process.Pid
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ENOSYS) {
		t.Skip("no pidfd_open")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if got, err := procfs.PidfdPid(fd); err != nil || got != pid {
		t.Errorf("PidfdPid: %d, %v; want %d", got, err, pid)
	}

	self, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(self)
	if got, err := procfs.PidfdPid(self); err != nil || got != os.Getpid() {
		t.Errorf("PidfdPid(self): %d, %v", got, err)
	}

	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := procfs.PidfdPid(int(f.Fd())); err == nil || !strings.Contains(err.Error(), "not a pidfd") {
		t.Errorf("PidfdPid(/dev/null): %v", err)
	}
	if _, err := procfs.PidfdPid(1 << 20); err == nil {
		t.Error("PidfdPid of a closed fd succeeded")
	}

	// Once the process is gone (reaped), its pidfd names no PID.
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	if got, err := procfs.PidfdPid(fd); err == nil {
		t.Errorf("PidfdPid of a reaped process: %d", got)
	}
}
