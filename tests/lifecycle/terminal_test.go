package lifecycle_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// consoleReceiver is the engine's end of --console-socket (conmon's): it
// accepts one connection and takes the pty master from one message whose
// payload is "/dev/ptmx" and which carries one fd (SCM_RIGHTS).
type consoleReceiver struct {
	path string
	ln   *net.UnixListener
	got  chan *os.File
	errc chan error
}

func (h *harness) consoleSocket() *consoleReceiver {
	h.t.Helper()
	p := h.path("console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		h.t.Fatal(err)
	}
	r := &consoleReceiver{path: p, ln: ln, got: make(chan *os.File, 1), errc: make(chan error, 1)}
	h.t.Cleanup(func() { ln.Close() })
	go func() {
		f, err := r.accept()
		if err != nil {
			r.errc <- err
			return
		}
		r.got <- f
	}()
	return r
}

func (r *consoleReceiver) accept() (*os.File, error) {
	c, err := r.ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	var fds []int
	for i := range msgs {
		f, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			return nil, err
		}
		fds = append(fds, f...)
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("got %d fds, want 1", len(fds))
	}
	f := os.NewFile(uintptr(fds[0]), "pty-master")
	if string(buf[:n]) != "/dev/ptmx" {
		f.Close()
		return nil, fmt.Errorf("console message payload %q, want %q", buf[:n], "/dev/ptmx")
	}
	return f, nil
}

// master waits for the terminal master.
func (r *consoleReceiver) master(t *testing.T, timeout time.Duration) *os.File {
	t.Helper()
	select {
	case f := <-r.got:
		t.Cleanup(func() { f.Close() })
		return f
	case err := <-r.errc:
		t.Fatalf("console socket: %v", err)
	case <-time.After(timeout):
		t.Fatalf("no terminal master arrived on the console socket within %s", timeout)
	}
	return nil
}

// ttyOutput collects what the container writes to its terminal.
type ttyOutput struct {
	mu   sync.Mutex
	buf  strings.Builder
	done chan struct{}
}

func readTTY(master *os.File) *ttyOutput {
	o := &ttyOutput{done: make(chan struct{})}
	go func() {
		defer close(o.done)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			o.mu.Lock()
			o.buf.Write(b[:n])
			o.mu.Unlock()
			if err != nil {
				return // EIO once the last slave holder closes it
			}
		}
	}()
	return o
}

func (o *ttyOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output contains s.
func (o *ttyOutput) waitFor(t *testing.T, s string, timeout time.Duration) {
	t.Helper()
	if !eventually(timeout, func() bool { return strings.Contains(o.String(), s) }) {
		t.Fatalf("terminal output %q does not show %q after %s", o.String(), s, timeout)
	}
}

// bindDevPts makes the host's /dev/pts visible (read-only) in rootfs. The
// fake's guest runs the container chrooted into the bundle's rootfs with
// no mounts of its own, and the terminal guestinit allocates comes from
// the host's /dev/pts: without it there, tty(1) cannot name its terminal.
// A real guest mounts its own devpts from config.json.
func (h *harness) bindDevPts(rootfs string) {
	h.t.Helper()
	dst := filepath.Join(rootfs, "dev", "pts")
	if err := os.MkdirAll(dst, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := unix.Mount("/dev/pts", dst, "", unix.MS_BIND, ""); err != nil {
		h.t.Fatalf("bind-mounting /dev/pts into the rootfs: %v", err)
	}
	// Registered after newHarness's cleanups: runs before the test
	// directory is removed.
	h.t.Cleanup(func() {
		if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil {
			h.t.Errorf("unmounting %s: %v", dst, err)
		}
	})
	if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		h.t.Fatalf("making %s read-only: %v", dst, err)
	}
}

// TestTerminal runs a container with process.terminal through a console
// socket, as podman (conmon) and containerd do, and checks the pty master,
// the output, stdin and window-size changes.
func TestTerminal(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	script := `tty; stty size; while read x; do [ "$x" = q ] && break; stty size; done; echo done`
	b := h.bundle(withArgs("sh", "-c", script), func(s *specs.Spec) { s.Process.Terminal = true })
	h.bindDevPts(filepath.Join(b, "rootfs"))
	cs := h.consoleSocket()

	h.mustCreate("tty", b, nil, "--console-socket", cs.path)
	// conmon gives up ("Runtime did not set up terminal") unless the
	// master has been sent when create exits.
	var master *os.File
	select {
	case master = <-cs.got:
		t.Cleanup(func() { master.Close() })
	case err := <-cs.errc:
		t.Fatalf("console socket: %v", err)
	case <-time.After(time.Second):
		t.Fatalf("create returned without sending the terminal master")
	}
	if _, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN); err != nil {
		t.Fatalf("the fd received is not a pty master: TIOCGPTN: %v", err)
	}
	if ws, err := unix.IoctlGetWinsize(int(master.Fd()), unix.TIOCGWINSZ); err != nil || ws.Row != 0 || ws.Col != 0 {
		t.Errorf("initial window size %+v (%v): want 0x0, the engine sets it", ws, err)
	}
	out := readTTY(master)
	setSize := func(rows, cols uint16) {
		t.Helper()
		if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
			t.Fatalf("TIOCSWINSZ on the master: %v", err)
		}
	}
	setSize(40, 100) // before start, as conmon does

	h.mustVxn("start", "tty")
	h.wantStatus("tty", specs.StateRunning)
	out.waitFor(t, "/dev/pts/", 10*time.Second)
	if !eventually(5*time.Second, func() bool { return strings.Count(out.String(), "\n") >= 2 }) {
		t.Fatalf("terminal output %q: want the tty line and the size line", out.String())
	}
	first := strings.Split(out.String(), "\n")[1]
	if !strings.Contains(first, "40 100") {
		// The size set before start reaches the guest after the process
		// has started: the first stty may race with it.
		t.Logf("first stty size in the container: %q (the size set before start had not arrived yet)", first)
	}

	// A resize: the container must see the new size. Each line sent makes
	// the container print its size again.
	setSize(50, 120)
	if !eventually(10*time.Second, func() bool {
		if _, err := master.Write([]byte("s\n")); err != nil {
			t.Fatalf("writing to the terminal: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
		return strings.Contains(out.String(), "50 120")
	}) {
		t.Errorf("after TIOCSWINSZ 50x120 on the master the container's stty size still says: %q", out.String())
	}
	if _, err := master.Write([]byte("q\n")); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "done", 10*time.Second)
	h.waitStatus("tty", specs.StateStopped, 10*time.Second)
	select {
	case <-out.done:
	case <-time.After(5 * time.Second):
		t.Errorf("the terminal master did not reach EOF/EIO after the container stopped")
	}
	if s := out.String(); strings.Contains(s, "not a tty") {
		t.Errorf("the container's stdin is not a terminal: %q", s)
	}
	h.mustVxn("delete", "tty")
	h.assertGone("tty")
	if _, err := os.Stat(cs.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Error(err)
	}
}
