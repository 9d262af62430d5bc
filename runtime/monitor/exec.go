package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// serveExec runs one exec session for a client of the control socket.
func (m *Monitor) serveExec(c *net.UnixConn, dec *json.Decoder, req Request) {
	enc := json.NewEncoder(c)
	fail := func(err error) { _ = enc.Encode(Response{Status: m.Status(), Error: err.Error()}) }
	if req.Process == nil || len(req.Process.Args) == 0 {
		fail(errors.New("exec: no process args"))
		return
	}
	if st := m.Status(); st != specs.StateRunning {
		fail(fmt.Errorf("cannot exec in a container that is %s", st))
		return
	}
	if err := enc.Encode(Response{Status: m.Status()}); err != nil {
		return
	}
	stdio, err := recvStdio(c)
	if err != nil {
		fail(err)
		return
	}
	defer func() {
		for _, f := range stdio {
			f.Close()
		}
	}()
	m.mu.Lock()
	m.nextExec++
	s := newSession(m.nextExec, stdio[0], stdio[1], stdio[2], !req.Process.Terminal)
	m.sessions[s.id] = s
	m.mu.Unlock()
	defer m.endSession(s)

	if err := m.conn.SendJSON(agent.TypeExec, s.id, agent.Exec{Process: req.Process}); err != nil {
		fail(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	err = m.awaitStart(ctx, s)
	cancel()
	if err != nil {
		fail(fmt.Errorf("exec: %w", err))
		return
	}
	_ = c.SetDeadline(time.Time{})
	if err := enc.Encode(Response{Status: m.Status(), Session: s.id}); err != nil {
		return
	}
	go m.pumpStdin(s)
	go m.execRequests(dec, s)
	status := StatusGuestDied
	select {
	case e := <-s.exitCh:
		status = e.Status()
	case <-m.done:
	}
	_ = enc.Encode(Response{Status: m.Status(), Session: s.id, Exit: &status})
}

// execRequests applies the client's signal and resize requests to an exec
// session until the client closes the connection.
func (m *Monitor) execRequests(dec *json.Decoder, s *session) {
	for {
		var req Request
		if dec.Decode(&req) != nil {
			return
		}
		switch req.Op {
		case OpSignal:
			if req.Signal > 0 && req.Signal <= agent.MaxSignal {
				_ = m.conn.Send(agent.TypeSignal, s.id, agent.EncodeSignal(req.Signal))
			}
		case OpResize:
			_ = m.conn.Send(agent.TypeWinsize, s.id, agent.EncodeWinsize(agent.Winsize{Rows: req.Rows, Cols: req.Cols}))
		}
	}
}

// endSession forgets a session whose process has exited.
func (m *Monitor) endSession(s *session) {
	m.mu.Lock()
	s.ended = true
	if s.id != 0 {
		delete(m.sessions, s.id)
	}
	m.credit.Broadcast()
	m.mu.Unlock()
}

// recvStdio receives the three stdio files of an exec client.
func recvStdio(c *net.UnixConn) ([3]*os.File, error) {
	var files [3]*os.File
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(3*4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return files, fmt.Errorf("exec: receiving stdio: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return files, errors.New("exec: receiving stdio: no file descriptors")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 3 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return files, errors.New("exec: receiving stdio: want 3 file descriptors")
	}
	for i, fd := range fds {
		unix.CloseOnExec(fd)
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("exec-stdio-%d", i))
	}
	// The client's stdin is usually blocking, and closing a blocked read
	// does not end it: the monitor would go on swallowing the user's input
	// after the exec ended. A non-blocking open of its own can be closed.
	if in, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fds[0]), os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
		files[0].Close()
		files[0] = in
	}
	return files, nil
}

// ExecClient is the client side of an exec session.
type ExecClient struct {
	conn *net.UnixConn
	dec  *json.Decoder
	enc  *json.Encoder
}

// StartExec asks the monitor at socket to run proc with the given stdio and
// returns once the process runs.
func StartExec(socket string, proc *specs.Process, stdio [3]*os.File) (*ExecClient, error) {
	c, err := dialUnix(socket, 0)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoMonitor, err)
	}
	e := &ExecClient{conn: c, dec: json.NewDecoder(c), enc: json.NewEncoder(c)}
	ok := false
	defer func() {
		if !ok {
			c.Close()
		}
	}()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	if err := e.enc.Encode(Request{Op: OpExec, Process: proc}); err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	if _, err := e.answer(); err != nil {
		return nil, err
	}
	rights := unix.UnixRights(int(stdio[0].Fd()), int(stdio[1].Fd()), int(stdio[2].Fd()))
	if _, _, err := c.WriteMsgUnix([]byte{0}, rights, nil); err != nil {
		return nil, fmt.Errorf("exec: sending stdio: %w", err)
	}
	if _, err := e.answer(); err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	ok = true
	return e, nil
}

func (e *ExecClient) answer() (*Response, error) {
	var r Response
	if err := e.dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoMonitor, err)
	}
	if r.Error != "" {
		return &r, errors.New(r.Error)
	}
	return &r, nil
}

// Signal sends a signal to the exec'd process.
func (e *ExecClient) Signal(sig int) error { return e.enc.Encode(Request{Op: OpSignal, Signal: sig}) }

// Resize sets the exec'd process's terminal size.
func (e *ExecClient) Resize(rows, cols uint16) error {
	return e.enc.Encode(Request{Op: OpResize, Rows: rows, Cols: cols})
}

// Wait returns the process's exit status (code, or 128+signal).
func (e *ExecClient) Wait() (int, error) {
	defer e.conn.Close()
	r, err := e.answer()
	if err != nil {
		return 0, err
	}
	if r.Exit == nil {
		return 0, errors.New("exec: the monitor did not report an exit status")
	}
	return *r.Exit, nil
}
