package monitor_test

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/monitor"
)

// TestMonitorTerminal: with process.terminal the engine gets a pty master
// over the console socket; what it writes reaches the guest as stdin (raw,
// never closed), the guest's output comes out of it, and its size is
// passed on at start.
func TestMonitorTerminal(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		t.Skip("no /dev/ptmx")
	}
	dir := shortDir(t)
	sock := filepath.Join(dir, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := newHarness(t, withConfig(func(c *monitor.Config) {
		c.Spec = &specs.Spec{Process: &specs.Process{Args: []string{"sh"}, Terminal: true}}
		c.ConsoleSocket = sock
	}))
	consoles := make(chan *os.File, 1)
	go func() {
		m, err := monitor.RecvConsole(ln)
		if err != nil {
			t.Errorf("RecvConsole: %v", err)
		}
		consoles <- m
	}()
	ch := h.bootAsync()
	h.handshake()
	h.g.mustSend(t, agent.TypeReady, 0, nil)
	if err := await(t, ch, "Boot"); err != nil {
		t.Fatalf("Boot: %v", err)
	}
	master := await(t, consoles, "RecvConsole")
	if master == nil {
		t.FailNow()
	}
	defer master.Close()
	if err := pty.Setsize(master, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	h.start()
	f := h.g.mustTake(t, agent.TypeWinsize, 0)
	if ws, err := agent.DecodeWinsize(f.Payload); err != nil || ws != (agent.Winsize{Rows: 40, Cols: 120}) {
		t.Errorf("winsize at start: %+v, %v", ws, err)
	}
	done := h.serve()

	if _, err := master.Write([]byte("ls\r\x03")); err != nil {
		t.Fatal(err)
	}
	if !h.g.wait(func() bool { return h.g.stdin[0] != nil && h.g.stdin[0].Len() >= 4 }) {
		t.Fatalf("terminal input did not reach the guest: %q", h.g.stdinOf(0))
	}
	if got := string(h.g.stdinOf(0)); got != "ls\r\x03" {
		t.Errorf("terminal input %q, want it raw", got)
	}

	h.g.mustSend(t, agent.TypeStdout, 0, []byte("hello\r\n"))
	buf := make([]byte, 7)
	read := make(chan error, 1)
	go func() { _, err := io.ReadFull(master, buf); read <- err }()
	if err := await(t, read, "reading the terminal"); err != nil || string(buf) != "hello\r\n" {
		t.Errorf("terminal output %q, %v", buf, err)
	}
	if h.g.stdinClosed(0) {
		t.Error("a terminal's input was closed")
	}
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 2})
	if st := await(t, done, "Serve"); st != 2 {
		t.Errorf("Serve: %d", st)
	}
}

func TestSendConsoleNoSocket(t *testing.T) {
	t.Parallel()
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := monitor.SendConsole(filepath.Join(t.TempDir(), "none.sock"), f); err == nil {
		t.Error("SendConsole to a missing socket succeeded")
	}
}
