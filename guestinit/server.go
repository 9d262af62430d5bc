package main

import (
	"errors"
	"fmt"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"io"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/procfs"
)

// prepareFunc sets the container up and returns its root directory and,
// in a guest, the cgroup its processes go into.
type prepareFunc func(*agent.Config) (prepared, error)

// prepared is a container set up by a prepareFunc.
type prepared struct {
	root   string
	cgroup *os.File // nil: processes stay in guestinit's cgroup
}

// outputGrace bounds how long a session's exit report waits for its output
// streams to drain (a background grandchild may hold them open).
const outputGrace = 2 * time.Second

// server is the guest side of one agent connection.
type server struct {
	conn    *agent.Conn
	prepare prepareFunc

	mu       sync.Mutex
	root     string   // container root; set once prepared
	cgroup   *os.File // the container's cgroup (see prepared)
	cfg      *agent.Config
	sessions map[uint32]*session
	byPid    map[int]*session
	initDone bool // session 0 has exited
	// networked: the network request has come (it is answered once).
	networked bool
}

func newServer(rw io.ReadWriteCloser, prepare prepareFunc) *server {
	return &server{
		conn:     agent.NewConn(rw),
		prepare:  prepare,
		sessions: map[uint32]*session{},
		byPid:    map[int]*session{},
	}
}

// serve runs the protocol until the monitor says shutdown or goes away.
// Every process still running when it returns has been killed.
func (s *server) serve() error {
	defer s.conn.Close()
	defer s.killAll()

	chld := make(chan os.Signal, 16)
	signal.Notify(chld, unix.SIGCHLD)
	defer signal.Stop(chld)
	go s.reap(chld)

	if err := s.conn.SendJSON(agent.TypeHello, 0, agent.Hello{Version: agent.Version, Role: "guest"}); err != nil {
		return err
	}
	for {
		f, err := s.conn.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading from monitor: %w", err)
		}
		if f.Type == agent.TypeShutdown {
			return nil
		}
		if err := s.handle(f); err != nil {
			s.sendError(f.Session, err)
		}
	}
}

func (s *server) sendError(session uint32, err error) {
	logf("guestinit: session %d: %v", session, err)
	_ = s.conn.SendJSON(agent.TypeError, session, agent.Error{Message: err.Error()})
}

func (s *server) handle(f agent.Frame) error {
	switch f.Type {
	case agent.TypeHello:
		return agent.CheckHello(f.Payload)
	case agent.TypeConfig:
		return s.configure(f.Payload)
	case agent.TypeStart:
		return s.startInit()
	case agent.TypeNetwork:
		return s.network(f.Payload)
	case agent.TypeExec:
		var e agent.Exec
		if err := agent.Unmarshal(f.Payload, &e); err != nil {
			return err
		}
		if f.Session == 0 || e.Process == nil {
			return errors.New("exec needs a session above 0 and a process")
		}
		return s.start(f.Session, e.Process)
	case agent.TypeStdin, agent.TypeStdinClose:
		ss := s.session(f.Session)
		if ss == nil {
			return nil // late data for a finished session
		}
		if f.Type == agent.TypeStdinClose {
			ss.stdin.close()
			return nil
		}
		return ss.stdin.push(f.Payload)
	case agent.TypeSignal:
		sig, err := agent.DecodeSignal(f.Payload)
		if err != nil {
			return err
		}
		return s.signal(f.Session, unix.Signal(sig))
	case agent.TypeWinsize:
		w, err := agent.DecodeWinsize(f.Payload)
		if err != nil {
			return err
		}
		if ss := s.session(f.Session); ss != nil && ss.pty != nil {
			return unix.IoctlSetWinsize(int(ss.pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: w.Rows, Col: w.Cols})
		}
		return nil
	case agent.TypePsRequest:
		return s.conn.SendJSON(agent.TypePsReply, f.Session, agent.PsReply{Processes: listProcesses()})
	case agent.TypeUpdate:
		var reply agent.Error
		if err := s.update(f.Payload); err != nil {
			reply.Message = err.Error()
		}
		return s.conn.SendJSON(agent.TypeUpdated, f.Session, reply)
	}
	return fmt.Errorf("unexpected %s message", f.Type)
}

// update applies new limits (`vxn update`) to the container's cgroup.
func (s *server) update(p []byte) error {
	var res specs.LinuxResources
	if err := agent.Unmarshal(p, &res); err != nil {
		return err
	}
	s.mu.Lock()
	cgroup := s.cgroup
	s.mu.Unlock()
	if cgroup == nil {
		return errors.New("the container has no cgroup of its own here (host mode, or not set up yet)")
	}
	return applyCgroupLimits(fdPath(cgroup), &res)
}

func (s *server) configure(p []byte) error {
	var cfg agent.Config
	if err := agent.Unmarshal(p, &cfg); err != nil {
		return err
	}
	if cfg.Spec == nil || cfg.Spec.Process == nil {
		return errors.New("config has no process")
	}
	s.mu.Lock()
	configured := s.cfg != nil
	s.mu.Unlock()
	if configured {
		return errors.New("container already configured")
	}
	c, err := s.prepare(&cfg)
	if err != nil {
		return fmt.Errorf("setting up the container: %w", err)
	}
	s.mu.Lock()
	s.cfg, s.root, s.cgroup = &cfg, c.root, c.cgroup
	s.mu.Unlock()
	return s.conn.Send(agent.TypeReady, 0, nil)
}

// network sets the guest's network up (setupNetwork) and answers with
// TypeNetworkDone, whose message is empty on success.
func (s *server) network(p []byte) error {
	err := func() error {
		n, err := agent.DecodeNetwork(p)
		if err != nil {
			return err
		}
		s.mu.Lock()
		ok := s.cfg != nil && !s.networked
		s.networked = true
		s.mu.Unlock()
		if !ok {
			return errors.New("network before the container was configured, or twice")
		}
		return setupNetwork(n, nicTimeout)
	}()
	var e agent.Error
	if err != nil {
		e.Message = fmt.Sprintf("setting up the network: %v", err)
		logf("guestinit: %s", e.Message)
	}
	return s.conn.SendJSON(agent.TypeNetworkDone, 0, e)
}

func (s *server) startInit() error {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	if cfg == nil {
		return errors.New("start before the container was configured")
	}
	return s.start(0, cfg.Spec.Process)
}

func (s *server) session(id uint32) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// signal delivers sig to one session's process, or to every process of the
// container for agent.SessionAll.
func (s *server) signal(id uint32, sig unix.Signal) error {
	if id == agent.SessionAll {
		s.mu.Lock()
		pids := make([]int, 0, len(s.byPid))
		for pid := range s.byPid {
			pids = append(pids, pid)
		}
		s.mu.Unlock()
		for _, pid := range append(pids, procfs.Descendants(pids...)...) {
			_ = unix.Kill(pid, sig)
		}
		return nil
	}
	ss := s.session(id)
	if ss == nil {
		return fmt.Errorf("no process in session %d", id)
	}
	if err := unix.Kill(ss.pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signal %d to pid %d: %w", sig, ss.pid, err)
	}
	return nil
}

// reap is the only place that waits for children: guestinit is PID 1 and
// inherits every orphan of the container.
func (s *server) reap(chld <-chan os.Signal) {
	for range chld {
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
			// start holds s.mu from fork to registration, so a child
			// that dies at once is still found here.
			s.mu.Lock()
			ss := s.byPid[pid]
			delete(s.byPid, pid)
			s.mu.Unlock()
			if ss != nil {
				go s.finish(ss, ws)
			}
		}
	}
}

// finish reports a session's exit once its output has drained.
func (s *server) finish(ss *session, ws unix.WaitStatus) {
	<-ss.started // the start request has been answered
	if ss.id == 0 {
		s.mu.Lock()
		s.initDone = true
		s.mu.Unlock()
		// The container ends with its init: nothing else may outlive it.
		s.killAll()
	}
	done := make(chan struct{})
	go func() { ss.outputs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(outputGrace):
	}
	ss.stdin.close()
	if ss.pty != nil {
		ss.pty.Close()
	}
	e := agent.Exit{Code: ws.ExitStatus()}
	if ws.Signaled() {
		e = agent.Exit{Signal: int(ws.Signal())}
	}
	s.mu.Lock()
	delete(s.sessions, ss.id)
	s.mu.Unlock()
	if err := s.conn.SendJSON(agent.TypeExit, ss.id, e); err != nil {
		logf("guestinit: reporting exit of session %d: %v", ss.id, err)
	}
}

// killAll sends SIGKILL to every process of the container.
func (s *server) killAll() {
	s.mu.Lock()
	pids := make([]int, 0, len(s.byPid))
	for pid := range s.byPid {
		pids = append(pids, pid)
	}
	s.mu.Unlock()
	if os.Getpid() == 1 {
		// PID 1 of the guest (or of the fake's pid namespace): -1 reaches
		// every process but this one.
		_ = unix.Kill(-1, unix.SIGKILL)
		return
	}
	for _, pid := range append(procfs.Descendants(pids...), pids...) {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
}
