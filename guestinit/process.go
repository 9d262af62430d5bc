package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/procfs"
)

// session is one process of the container: the init (session 0) or an exec.
type session struct {
	id      uint32
	pid     int
	pty     *os.File // terminal master, when the process has a terminal
	stdin   *stdinQueue
	outputs sync.WaitGroup // stdout/stderr relays still running
	started chan struct{}  // closed once the start request is answered
}

// start creates a session's process through the exec shim and answers the
// request with Started, or returns the error for an Error reply.
func (s *server) start(id uint32, proc *specs.Process) error {
	s.mu.Lock()
	root, cgroup := s.root, s.cgroup
	if s.cfg == nil {
		s.mu.Unlock()
		return errors.New("container is not configured")
	}
	if _, dup := s.sessions[id]; dup || (id == 0 && s.initDone) {
		s.mu.Unlock()
		return fmt.Errorf("session %d already has a process", id)
	}
	if s.initDone {
		s.mu.Unlock()
		return errors.New("the container has stopped")
	}
	ss := &session{id: id, started: make(chan struct{})}
	s.sessions[id] = ss
	s.mu.Unlock()

	err := s.spawn(ss, root, cgroup, proc)
	if err != nil {
		s.mu.Lock()
		if ss.pid == 0 { // never forked: nothing will reap it
			delete(s.sessions, id)
		}
		s.mu.Unlock()
	} else {
		err = s.conn.SendJSON(agent.TypeStarted, id, agent.Started{Pid: ss.pid})
	}
	close(ss.started)
	return err
}

// spawn forks the shim with the session's stdio, in the container's cgroup
// when it has one, and waits until it has exec'd the container process (or
// failed to).
func (s *server) spawn(ss *session, root string, cgroup *os.File, proc *specs.Process) error {
	var parentEnds, childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			f.Close()
		}
	}()
	closeParent := func() {
		for _, f := range parentEnds {
			f.Close()
		}
	}
	var stdio [3]*os.File
	attr := &syscall.SysProcAttr{Setsid: true}
	if cgroup != nil {
		attr.UseCgroupFD, attr.CgroupFD = true, int(cgroup.Fd())
	}
	if proc.Terminal {
		master, tty, err := openPty(root)
		if err != nil {
			return fmt.Errorf("allocating a terminal: %w", err)
		}
		if cs := proc.ConsoleSize; cs != nil {
			_ = pty.Setsize(master, &pty.Winsize{Rows: uint16(cs.Height), Cols: uint16(cs.Width)})
		}
		stdio = [3]*os.File{tty, tty, tty}
		childEnds = append(childEnds, tty)
		parentEnds = append(parentEnds, master)
		attr.Setctty = true
		attr.Ctty = 0
		ss.pty = master
		ss.stdin = newStdinQueue(s.conn, ss.id, master, false)
		s.relay(ss, master, agent.TypeStdout)
	} else {
		var ends [3][2]*os.File
		for i := range ends {
			r, w, err := os.Pipe()
			if err != nil {
				closeParent()
				return err
			}
			ends[i] = [2]*os.File{r, w}
		}
		stdio = [3]*os.File{ends[0][0], ends[1][1], ends[2][1]}
		childEnds = append(childEnds, stdio[:]...)
		parentEnds = append(parentEnds, ends[0][1], ends[1][0], ends[2][0])
		ss.stdin = newStdinQueue(s.conn, ss.id, ends[0][1], true)
		s.relay(ss, ends[1][0], agent.TypeStdout)
		s.relay(ss, ends[2][0], agent.TypeStderr)
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		closeParent()
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		specR.Close()
		specW.Close()
		closeParent()
		return err
	}
	childEnds = append(childEnds, specR, errW)
	defer errR.Close()

	files := []uintptr{stdio[0].Fd(), stdio[1].Fd(), stdio[2].Fd(), specR.Fd(), errW.Fd()}
	s.mu.Lock()
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"vxn-exec", shimArg}, &syscall.ProcAttr{
		Env:   []string{},
		Files: files,
		Sys:   attr,
	})
	if err == nil {
		ss.pid = pid
		s.byPid[pid] = ss
	}
	s.mu.Unlock()
	if err != nil {
		specW.Close()
		closeParent()
		return fmt.Errorf("starting the process: %w", err)
	}
	for _, f := range childEnds {
		f.Close()
	}
	childEnds = nil

	enc := json.NewEncoder(specW)
	werr := enc.Encode(shimRequest{Root: root, Process: proc, CgroupNS: cgroup != nil})
	specW.Close()
	msg, _ := io.ReadAll(io.LimitReader(errR, 4096))
	if len(msg) > 0 {
		return errors.New(string(msg))
	}
	if werr != nil {
		return fmt.Errorf("sending the process spec: %w", werr)
	}
	return nil
}

// openPty opens a terminal pair from the container's own devpts instance
// when it has one, so that the slave's path (/dev/pts/N) exists inside the
// container; otherwise (host mode) from /dev/ptmx.
func openPty(root string) (master, slave *os.File, err error) {
	ptmx := filepath.Join(root, "dev/pts/ptmx")
	if _, err := os.Stat(ptmx); err != nil {
		return pty.Open()
	}
	mfd, err := unix.Open(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	master = os.NewFile(uintptr(mfd), "ptmx")
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlocking the terminal: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master's own devpts.
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(mfd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("opening the terminal: %w", errno)
	}
	return master, os.NewFile(sfd, "pts"), nil
}

// relay copies one output stream of a session to the monitor.
func (s *server) relay(ss *session, r *os.File, t agent.Type) {
	ss.outputs.Add(1)
	go func() {
		defer ss.outputs.Done()
		if t != agent.TypeStdout || ss.pty == nil {
			defer r.Close() // the pty master is closed by finish
		}
		buf := make([]byte, agent.ChunkSize)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if s.conn.Send(t, ss.id, buf[:n]) != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
}

// stdinQueue buffers stdin data from the monitor so that a process that
// does not read its stdin never blocks the agent connection. The monitor
// keeps at most agent.StdinWindow bytes unacknowledged, which bounds it.
type stdinQueue struct {
	conn     *agent.Conn
	id       uint32
	w        io.WriteCloser
	closable bool // a pipe is closed at end of input; a pty master is not

	mu      sync.Mutex
	cond    *sync.Cond
	chunks  [][]byte
	queued  int
	closing bool
}

func newStdinQueue(conn *agent.Conn, id uint32, w io.WriteCloser, closable bool) *stdinQueue {
	q := &stdinQueue{conn: conn, id: id, w: w, closable: closable}
	q.cond = sync.NewCond(&q.mu)
	go q.run()
	return q
}

func (q *stdinQueue) push(p []byte) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing {
		return nil
	}
	if q.queued+len(p) > agent.StdinWindow {
		return fmt.Errorf("stdin window of %d bytes exceeded", agent.StdinWindow)
	}
	q.chunks = append(q.chunks, p)
	q.queued += len(p)
	q.cond.Signal()
	return nil
}

func (q *stdinQueue) close() {
	q.mu.Lock()
	q.closing = true
	q.cond.Signal()
	q.mu.Unlock()
}

func (q *stdinQueue) run() {
	broken := false
	for {
		q.mu.Lock()
		for len(q.chunks) == 0 && !q.closing {
			q.cond.Wait()
		}
		if len(q.chunks) == 0 {
			q.mu.Unlock()
			if q.closable {
				q.w.Close()
			}
			return
		}
		p := q.chunks[0]
		q.chunks = q.chunks[1:]
		q.queued -= len(p)
		q.mu.Unlock()
		if !broken {
			if _, err := q.w.Write(p); err != nil {
				broken = true // the process closed its stdin: drop the rest
			}
		}
		// Acknowledge even dropped data so the monitor never stalls.
		_ = q.conn.Send(agent.TypeStdinAck, q.id, agent.EncodeCount(uint32(len(p))))
	}
}

// listProcesses lists the container's processes: every descendant of
// guestinit except its own exec shims' parents (there are none: the shim
// becomes the process).
func listProcesses() []agent.PsEntry {
	var out []agent.PsEntry
	for _, pid := range procfs.Descendants(os.Getpid()) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ")
		out = append(out, agent.PsEntry{Pid: pid, Command: cmd})
	}
	return out
}

// prepareHostRoot is host mode's container setup: the root is a host
// directory and only what is safe on a host is applied: the hostname and
// the directory volumes, bind mounts of the directories in shares.
func prepareHostRoot(cfg *agent.Config, rootfs string, shares hostShares) (string, error) {
	if h := cfg.Spec.Hostname; h != "" {
		// The fake starts host mode in its own UTS namespace.
		if err := unix.Sethostname([]byte(h)); err != nil {
			return "", fmt.Errorf("setting hostname %q: %w", h, err)
		}
	}
	if len(cfg.Shares) > 0 && os.Getpid() != 1 {
		// Only in namespaces of its own do the mounts stay off the host.
		return "", errors.New("host mode mounts volumes only as PID 1 of new pid and mount namespaces (as the fake hypervisor starts it)")
	}
	if err := mountShares(rootfs, cfg, shares.mount); err != nil {
		return "", err
	}
	return rootfs, nil
}
