package monitor

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// setupTerminal makes the host side of the container's terminal: a pty
// whose master goes to the engine over --console-socket (runc's protocol:
// one message "/dev/ptmx" carrying the fd) and whose slave the monitor
// relays to the guest's own terminal. The slave is raw (the guest's pty
// does the line discipline) and is the monitor's controlling terminal, so
// the engine's window-size changes arrive as SIGWINCH.
func (m *Monitor) setupTerminal() error {
	if m.cfg.ConsoleSocket == "" {
		return fmt.Errorf("process.terminal is true but no --console-socket was given")
	}
	master, slave, err := pty.Open()
	if err != nil {
		return fmt.Errorf("allocating the terminal: %w", err)
	}
	defer master.Close()
	if _, err := MakeRaw(int(slave.Fd())); err != nil {
		slave.Close()
		return fmt.Errorf("setting the terminal raw: %w", err)
	}
	if err := unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0); err != nil {
		m.log.Debugf("terminal: not the controlling terminal: %v", err)
	}
	if err := SendConsole(m.cfg.ConsoleSocket, master); err != nil {
		slave.Close()
		return err
	}
	m.tty = slave
	m.init.in, m.init.out, m.init.err, m.init.closeIn = slave, slave, slave, false
	return nil
}

// SendConsole sends a pty master over a console socket.
func SendConsole(socket string, master *os.File) error {
	uc, err := dialUnix(socket, 0)
	if err != nil {
		return fmt.Errorf("connecting to the console socket %s: %w", socket, err)
	}
	defer uc.Close()
	oob := unix.UnixRights(int(master.Fd()))
	if _, _, err := uc.WriteMsgUnix([]byte("/dev/ptmx"), oob, nil); err != nil {
		return fmt.Errorf("sending the terminal over %s: %w", socket, err)
	}
	return nil
}

// RecvConsole accepts one connection on a console socket and returns the
// terminal master sent over it.
func RecvConsole(ln *net.UnixListener) (*os.File, error) {
	c, err := ln.AcceptUnix()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("receiving the terminal: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, errors.New("receiving the terminal: no file descriptor sent")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, errors.New("receiving the terminal: no file descriptor sent")
	}
	return os.NewFile(uintptr(fds[0]), "console"), nil
}

// MakeRaw puts a terminal in raw mode and returns its previous settings.
func MakeRaw(fd int) (*unix.Termios, error) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	saved := *t
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return &saved, unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

// sendWinsize passes the host terminal's size to the guest's.
func (m *Monitor) sendWinsize() {
	if m.tty == nil {
		return
	}
	ws, err := unix.IoctlGetWinsize(int(m.tty.Fd()), unix.TIOCGWINSZ)
	if err != nil || (ws.Row == 0 && ws.Col == 0) {
		return
	}
	_ = m.conn.Send(agent.TypeWinsize, 0, agent.EncodeWinsize(agent.Winsize{Rows: ws.Row, Cols: ws.Col}))
}
