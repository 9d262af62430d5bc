package main

import (
	"errors"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/bundle"
	"github.com/vxn-runtime/vxn/runtime/monitor"
)

// consoleRelay connects `vxn run`'s own terminal to a container that asks
// for one (process.terminal) when no --console-socket is given: it receives
// the terminal master as an engine would and relays it.
type consoleRelay struct {
	Path   string
	dir    string
	ln     *net.UnixListener
	master chan *os.File
	errc   chan error
	copied chan struct{}
	saved  *unix.Termios
}

// newConsoleRelay returns nil when the bundle's process has no terminal.
func newConsoleRelay(bundleDir string) (*consoleRelay, error) {
	b, err := bundle.Load(bundleDir)
	if err != nil {
		return nil, err
	}
	if !b.Spec.Process.Terminal {
		return nil, nil
	}
	if _, err := unix.IoctlGetTermios(int(os.Stdin.Fd()), unix.TCGETS); err != nil {
		return nil, errNoTerminal
	}
	dir, err := os.MkdirTemp("", "vxn-console")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r := &consoleRelay{Path: p, dir: dir, ln: ln, master: make(chan *os.File, 1), errc: make(chan error, 1), copied: make(chan struct{})}
	go func() {
		f, err := monitor.RecvConsole(ln)
		if err != nil {
			r.errc <- err
			return
		}
		r.master <- f
	}()
	return r, nil
}

// Start relays this terminal to the container's, in raw mode.
func (r *consoleRelay) Start() error {
	var master *os.File
	select {
	case master = <-r.master:
	case err := <-r.errc:
		return err
	case <-time.After(10 * time.Second):
		return errors.New("the container's terminal never arrived")
	}
	in := int(os.Stdin.Fd())
	saved, err := monitor.MakeRaw(in)
	if err != nil {
		return err
	}
	r.saved = saved
	resize := func() {
		if ws, err := unix.IoctlGetWinsize(in, unix.TIOCGWINSZ); err == nil {
			_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
		}
	}
	resize()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		for range winch {
			resize()
		}
	}()
	go func() { _, _ = io.Copy(master, os.Stdin) }()
	go func() {
		_, _ = io.Copy(os.Stdout, master)
		close(r.copied)
	}()
	return nil
}

// Drain waits for the container's last output.
func (r *consoleRelay) Drain(d time.Duration) {
	select {
	case <-r.copied:
	case <-time.After(d):
	}
}

// Close restores the terminal and removes the socket.
func (r *consoleRelay) Close() {
	if r.saved != nil {
		_ = unix.IoctlSetTermios(int(os.Stdin.Fd()), unix.TCSETS, r.saved)
	}
	r.ln.Close()
	os.RemoveAll(r.dir)
}
