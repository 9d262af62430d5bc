// Package monitor is the per-container host process. `vxn create` starts
// it detached; it creates the guest, talks to guestinit over the agent
// channel, relays the container's stdio, forwards signals, answers the other
// vxn commands on a control socket, and exits with the container's exit
// status (its code, or 128+signal), so that an engine waiting on its PID
// (conmon, containerd-shim) sees the container's result.
//
// Every frame from the guest is untrusted input: it is decoded with the
// bounds of package agent and anything unexpected ends the container.
package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/state"
)

// Exit statuses the monitor uses when the container process did not report
// one itself.
const (
	// StatusGuestDied: the guest stopped (crash, destroy) without reporting
	// the container process's exit.
	StatusGuestDied = 255
	// StatusStartFailed: the guest could not start the container process.
	StatusStartFailed = 127
)

// startFailGrace is how long a failed start waits for the guest's exit
// report before ending the container itself.
const startFailGrace = 2 * time.Second

// ExitRecord is what the monitor writes to Config.ExitFile.
type ExitRecord struct {
	Status int `json:"status"`
}

// Config is what create hands the monitor (saved as monitor.json).
type Config struct {
	ID            string                `json:"id"`
	Spec          *specs.Spec           `json:"spec"`
	Domain        hypervisor.DomainSpec `json:"domain"`
	RootDevice    string                `json:"rootDevice"`
	Files         []agent.File          `json:"files,omitempty"`
	Shares        []agent.Share         `json:"shares,omitempty"`
	ConsoleSocket string                `json:"consoleSocket,omitempty"`
	ControlSocket string                `json:"controlSocket"`
	// ExitFile receives the container's exit status the moment it is
	// known, before the guest is torn down.
	ExitFile    string        `json:"exitFile"`
	BootTimeout time.Duration `json:"bootTimeout"`
	// Netns is the network namespace whose interfaces the guest takes
	// (AttachNetwork); "" leaves it loopback only.
	Netns string `json:"netns,omitempty"`
}

// Stdio is the container's stdio as the monitor received it.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Monitor runs one container.
type Monitor struct {
	cfg Config
	hv  hypervisor.Hypervisor
	log logrus.FieldLogger

	dom     hypervisor.Domain
	conn    *agent.Conn
	tty     *os.File // host side of the terminal (the slave), in terminal mode
	domDead chan hypervisor.ShutdownReason

	init    *session   // session 0: the container's process
	readyCh chan error // the guest's answer to the config
	psCh    chan agent.PsReply
	updCh   chan agent.Error
	failCh  chan error // protocol violation or lost connection

	configured  atomic.Bool // the guest answered the config
	netAsked    atomic.Bool // the network has been sent to the guest
	netAnswered atomic.Bool // and the guest has answered
	netCh       chan agent.Error

	mu      sync.Mutex
	started bool
	paused  bool
	// startFailed: the guest refused to start the process.
	startFailed bool
	stopping    bool
	credit      *sync.Cond // signalled when a stdin window opens
	sessions    map[uint32]*session
	nextExec    uint32
	ctlLn       net.Listener
	// netns and joined: the container's network namespace and its
	// interfaces that AttachNetwork joined to the guest's NICs.
	netns    string
	joined   []int
	done     chan struct{}
	exitOnce sync.Once
	status   int
}

// New prepares a monitor; Run does the work.
func New(cfg Config, hv hypervisor.Hypervisor, stdio Stdio, log logrus.FieldLogger) *Monitor {
	m := &Monitor{
		cfg: cfg, hv: hv, log: log,
		domDead: make(chan hypervisor.ShutdownReason, 1),
		readyCh: make(chan error, 1),
		psCh:    make(chan agent.PsReply, 1),
		updCh:   make(chan agent.Error, 1),
		failCh:  make(chan error, 1),
		netCh:   make(chan agent.Error, 1),
		done:    make(chan struct{}),
	}
	m.credit = sync.NewCond(&m.mu)
	m.init = newSession(0, stdio.In, stdio.Out, stdio.Err, true)
	m.sessions = map[uint32]*session{0: m.init}
	return m
}

// Boot creates the guest and sets the container up, up to "ready": the
// process is not started. On error everything it made is gone.
func (m *Monitor) Boot(ctx context.Context) (err error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.BootTimeout)
	defer cancel()
	dom, err := m.hv.Create(ctx, m.cfg.Domain)
	if err != nil {
		return fmt.Errorf("creating the guest: %w", err)
	}
	m.dom = dom
	defer func() {
		if err != nil {
			m.destroy()
		}
	}()
	go func() {
		reason, err := dom.Wait(context.Background())
		if err != nil {
			m.log.Warnf("waiting for the guest: %v", err)
			reason = hypervisor.ReasonUnknown
		}
		m.domDead <- reason
	}()

	type connResult struct {
		rw  io.ReadWriteCloser
		err error
	}
	cc := make(chan connResult, 1)
	go func() {
		rw, err := dom.Connect(ctx)
		cc <- connResult{rw, err}
	}()
	var rw io.ReadWriteCloser
	select {
	case r := <-cc:
		if r.err != nil {
			return fmt.Errorf("connecting to the guest agent: %w%s", r.err, m.consoleTail())
		}
		rw = r.rw
	case reason := <-m.domDead:
		m.domDead <- reason
		return fmt.Errorf("the guest stopped while booting (%s)%s", reason, m.consoleTail())
	}
	m.conn = agent.NewConn(rw)
	go m.readAgent()
	if err := m.conn.SendJSON(agent.TypeHello, 0, agent.Hello{Version: agent.Version, Role: "monitor"}); err != nil {
		return err
	}
	if err := m.conn.SendJSON(agent.TypeConfig, 0, agent.Config{Spec: m.cfg.Spec, RootDevice: m.cfg.RootDevice, Files: m.cfg.Files, Shares: m.cfg.Shares}); err != nil {
		return err
	}
	select {
	case err := <-m.readyCh:
		if err != nil {
			return fmt.Errorf("the guest could not set the container up: %w", err)
		}
	case err := <-m.failCh:
		return err
	case reason := <-m.domDead:
		m.domDead <- reason
		return fmt.Errorf("the guest stopped while setting the container up (%s)%s", reason, m.consoleTail())
	case <-ctx.Done():
		return fmt.Errorf("the guest did not get ready within %s%s", m.cfg.BootTimeout, m.consoleTail())
	}
	if m.cfg.Spec.Process.Terminal {
		if err := m.setupTerminal(); err != nil {
			return err
		}
	}
	return m.listenControl()
}

// consoleTailLines is how much of the guest's console a boot failure shows.
const consoleTailLines = 20

// consoleTail returns the end of the guest's console log for an error
// message: a failed create removes the state directory with the log. The
// console is the guest's output, so it is sanitised and bounded.
func (m *Monitor) consoleTail() string {
	b, err := os.ReadFile(m.cfg.Domain.ConsoleLog)
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 8192 {
		b = b[len(b)-8192:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > consoleTailLines {
		lines = lines[len(lines)-consoleTailLines:]
	}
	for i, l := range lines {
		lines[i] = "  " + agent.Sanitize(strings.TrimRight(l, "\r"), 200)
	}
	return "; the guest's console ended with:\n" + strings.Join(lines, "\n")
}

// Serve runs the container until its process exits (or the guest dies) and
// returns the exit status the monitor must exit with.
func (m *Monitor) Serve() int {
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	for {
		select {
		case s := <-sigs:
			m.onSignal(s.(unix.Signal))
			continue
		case e := <-m.init.exitCh:
			m.exited(e)
		case err := <-m.failCh:
			// The reader reports an exit before it reports the loss of
			// the channel that carried it.
			select {
			case e := <-m.init.exitCh:
				m.exited(e)
			default:
				m.log.Errorf("agent channel: %v", err)
				m.finish(StatusGuestDied)
			}
		case reason := <-m.domDead:
			m.domDead <- reason
			// A last exit report may still be in flight.
			select {
			case e := <-m.init.exitCh:
				m.exited(e)
			case <-time.After(200 * time.Millisecond):
				m.log.Errorf("the guest stopped (%s) without reporting the container's exit", reason)
				m.finish(StatusGuestDied)
			}
		case <-m.done:
		}
		<-m.done
		return m.status
	}
}

// exited ends the container with its process's exit.
func (m *Monitor) exited(e agent.Exit) {
	m.endSession(m.init)
	m.log.Infof("container process exited: status %d", e.Status())
	m.finish(e.Status())
}

// finish ends the container once, with status.
func (m *Monitor) finish(status int) {
	m.exitOnce.Do(func() {
		m.mu.Lock()
		m.stopping = true
		m.credit.Broadcast()
		m.mu.Unlock()
		m.status = status
		if m.cfg.ExitFile != "" {
			b, _ := json.Marshal(ExitRecord{Status: status})
			if err := state.WriteFileAtomic(m.cfg.ExitFile, b, 0o600); err != nil {
				m.log.Errorf("recording the exit status: %v", err)
			}
		}
		m.shutdownGuest()
		m.detachNetwork()
		if m.ctlLn != nil {
			m.ctlLn.Close()
			os.Remove(m.cfg.ControlSocket)
		}
		close(m.done)
	})
}

// shutdownGuest asks guestinit to power off, waits a little, then destroys
// the domain whatever happened.
func (m *Monitor) shutdownGuest() {
	if m.conn != nil {
		_ = m.conn.Send(agent.TypeShutdown, 0, nil)
	}
	select {
	case reason := <-m.domDead:
		m.domDead <- reason
	case <-time.After(5 * time.Second):
		m.log.Warn("the guest did not power off within 5s; destroying it")
	}
	m.destroy()
}

func (m *Monitor) destroy() {
	if m.conn != nil {
		m.conn.Close()
	}
	if m.dom == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.dom.Destroy(ctx); err != nil {
		m.log.Errorf("destroying the guest: %v", err)
	}
}

// forwardedSignals are passed on to the container process, as runc's
// signal forwarding does for `runc run`.
var forwardedSignals = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGPIPE, unix.SIGALRM, unix.SIGWINCH, unix.SIGCONT, unix.SIGTSTP,
}

func (m *Monitor) onSignal(s unix.Signal) {
	switch s {
	case unix.SIGPIPE:
		return // a closed output pipe is seen as a write error
	case unix.SIGWINCH:
		m.sendWinsize()
		return
	}
	if err := m.Kill(int(s), false); err != nil {
		m.log.Warnf("forwarding %v: %v", s, err)
	}
}

// Kill delivers a signal to the container process (or, with all, to every
// process of the container). A container that was created but not started
// has no process yet: a signal that would terminate one stops it.
func (m *Monitor) Kill(sig int, all bool) error {
	m.mu.Lock()
	started, stopping := m.started && !m.startFailed, m.stopping
	m.mu.Unlock()
	if stopping {
		return errors.New("container is stopping")
	}
	if !started {
		switch unix.Signal(sig) {
		case unix.SIGCHLD, unix.SIGCONT, unix.SIGURG, unix.SIGWINCH,
			unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU: // no process to stop
			return nil
		}
		go m.finish(128 + sig)
		return nil
	}
	session := uint32(0)
	if all {
		session = agent.SessionAll
	}
	return m.conn.Send(agent.TypeSignal, session, agent.EncodeSignal(sig))
}

// Start starts the container process and its stdin relay.
func (m *Monitor) Start(ctx context.Context) error {
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		return errors.New("cannot start a container that has stopped")
	}
	if m.started {
		m.mu.Unlock()
		return errors.New("cannot start an already running container")
	}
	m.started = true
	m.mu.Unlock()
	if err := m.conn.Send(agent.TypeStart, 0, nil); err != nil {
		return err
	}
	if err := m.awaitStart(ctx, m.init); err != nil {
		// The process did not start: the container is over. An exit
		// report may follow (the exec failed after the fork); if none
		// does, stop it with the shell's status for a failed exec.
		m.mu.Lock()
		m.startFailed = true
		m.mu.Unlock()
		go func() {
			select {
			case <-m.done:
			case <-time.After(startFailGrace):
				m.finish(StatusStartFailed)
			}
		}()
		return fmt.Errorf("starting the container process: %w", err)
	}
	m.sendWinsize()
	go m.pumpStdin(m.init)
	return nil
}

// awaitStart waits for the guest's answer to a start or exec request.
func (m *Monitor) awaitStart(ctx context.Context, s *session) error {
	select {
	case err := <-s.startCh:
		return err
	case <-ctx.Done():
		return fmt.Errorf("the guest did not start the process: %w", ctx.Err())
	case <-m.done:
		return errors.New("the container stopped before the process started")
	}
}

// Status is the container's live status as the monitor knows it.
func (m *Monitor) Status() specs.ContainerState {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.stopping, m.startFailed:
		return specs.StateStopped
	case m.paused:
		return "paused"
	case m.started:
		return specs.StateRunning
	}
	return specs.StateCreated
}

// SetPaused pauses or resumes the whole guest.
func (m *Monitor) SetPaused(ctx context.Context, p bool) error {
	m.mu.Lock()
	started, paused, stopping := m.started, m.paused, m.stopping
	m.mu.Unlock()
	switch {
	case stopping:
		return errors.New("container is not running")
	case p && paused:
		return errors.New("container is already paused")
	case !p && !paused:
		return errors.New("container is not paused")
	case p && !started:
		return errors.New("container is not running")
	}
	var err error
	if p {
		err = m.dom.Pause(ctx)
	} else {
		err = m.dom.Unpause(ctx)
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.paused = p
	m.mu.Unlock()
	return nil
}

// Ps lists the processes of the guest.
func (m *Monitor) Ps(ctx context.Context) ([]agent.PsEntry, error) {
	if err := m.conn.Send(agent.TypePsRequest, 0, nil); err != nil {
		return nil, err
	}
	select {
	case r := <-m.psCh:
		return r.Processes, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("the guest did not list its processes: %w", ctx.Err())
	case <-m.done:
		return nil, errors.New("container is not running")
	}
}

// Update gives the container's cgroup in the guest the limits of res.
func (m *Monitor) Update(ctx context.Context, res *specs.LinuxResources) error {
	if res == nil {
		return errors.New("no resources to update")
	}
	if err := m.conn.SendJSON(agent.TypeUpdate, 0, res); err != nil {
		return err
	}
	select {
	case r := <-m.updCh:
		if r.Message != "" {
			return fmt.Errorf("the guest refused the new limits: %s", r.Message)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("the guest did not apply the new limits: %w", ctx.Err())
	case <-m.done:
		return errors.New("container is not running")
	}
}

// readAgent decodes every frame from the guest. Any frame that breaks the
// protocol ends the container: the guest is not trusted.
func (m *Monitor) readAgent() {
	for {
		f, err := m.conn.Recv()
		if err != nil {
			select {
			case m.failCh <- fmt.Errorf("connection to the guest lost: %w", err):
			default:
			}
			return
		}
		if err := m.handleFrame(f); err != nil {
			select {
			case m.failCh <- fmt.Errorf("protocol violation by the guest: %w", err):
			default:
			}
			return
		}
	}
}

func (m *Monitor) handleFrame(f agent.Frame) error {
	m.mu.Lock()
	s := m.sessions[f.Session]
	ended := f.Session != 0 && f.Session <= m.nextExec
	m.mu.Unlock()
	if s == nil {
		if ended {
			return nil // late news of an exec session that has ended
		}
		return fmt.Errorf("%s frame for unknown session %d", f.Type, f.Session)
	}
	switch f.Type {
	case agent.TypeHello:
		if err := agent.CheckHello(f.Payload); err != nil {
			return err
		}
	case agent.TypeReady:
		if s.id == 0 && !m.configured.Swap(true) {
			offer(m.readyCh, nil)
		}
	case agent.TypeStarted:
		if _, err := agent.DecodeStarted(f.Payload); err != nil {
			return err
		}
		offer(s.startCh, nil)
	case agent.TypeError:
		e, err := agent.DecodeError(f.Payload)
		if err != nil {
			return err
		}
		m.log.Errorf("guest: session %d: %s", s.id, e.Message)
		// Before Ready, an error answers the config; after, the start.
		if s.id == 0 && !m.configured.Swap(true) {
			offer(m.readyCh, errors.New(e.Message))
		} else {
			offer(s.startCh, errors.New(e.Message))
		}
	case agent.TypeStdout, agent.TypeStderr:
		if len(f.Payload) > agent.ChunkSize {
			return fmt.Errorf("%s chunk of %d bytes", f.Type, len(f.Payload))
		}
		w := s.out
		if f.Type == agent.TypeStderr {
			w = s.err
		}
		if _, err := w.Write(f.Payload); err != nil {
			m.log.Debugf("writing session %d %s: %v", s.id, f.Type, err)
		}
	case agent.TypeStdinAck:
		m.mu.Lock()
		n, err := agent.DecodeCount(f.Payload, uint32(s.unacked))
		if err == nil {
			s.unacked -= int(n)
			m.credit.Broadcast()
		}
		m.mu.Unlock()
		return err
	case agent.TypeExit:
		e, err := agent.DecodeExit(f.Payload)
		if err != nil {
			return err
		}
		offer(s.exitCh, e)
	case agent.TypeNetworkDone:
		if s.id != 0 || !m.netAsked.Load() {
			return errors.New("network-done frame without a network request")
		}
		e, err := agent.DecodeError(f.Payload)
		if err != nil {
			return err
		}
		if m.netAnswered.Swap(true) {
			return errors.New("second network-done frame")
		}
		offer(m.netCh, e)
	case agent.TypePsReply:
		r, err := agent.DecodePsReply(f.Payload)
		if err != nil {
			return err
		}
		offer(m.psCh, r)
	case agent.TypeUpdated:
		r, err := agent.DecodeError(f.Payload)
		if err != nil {
			return err
		}
		offer(m.updCh, r)
	default:
		return fmt.Errorf("unexpected %s frame", f.Type)
	}
	return nil
}

// offer sends v on a buffered channel of one without blocking; it reports
// whether v was taken.
func offer[T any](ch chan T, v T) bool {
	select {
	case ch <- v:
		return true
	default:
		return false
	}
}

// pumpStdin relays a session's stdin to the guest within its window.
func (m *Monitor) pumpStdin(s *session) {
	if s.in == nil {
		_ = m.conn.Send(agent.TypeStdinClose, s.id, nil)
		return
	}
	buf := make([]byte, agent.ChunkSize)
	for {
		n, err := s.in.Read(buf)
		if n > 0 {
			m.mu.Lock()
			for s.unacked+n > agent.StdinWindow && !m.stopping && !s.ended {
				m.credit.Wait()
			}
			stop := m.stopping || s.ended
			s.unacked += n
			m.mu.Unlock()
			if stop || m.conn.Send(agent.TypeStdin, s.id, buf[:n]) != nil {
				return
			}
		}
		if err != nil {
			if s.closeIn {
				_ = m.conn.Send(agent.TypeStdinClose, s.id, nil)
			}
			return
		}
	}
}

// listenControl opens the control socket the other vxn commands use.
func (m *Monitor) listenControl() error {
	os.Remove(m.cfg.ControlSocket)
	ln, err := listenUnix(m.cfg.ControlSocket)
	if err != nil {
		return fmt.Errorf("opening the control socket: %w", err)
	}
	if err := os.Chmod(m.cfg.ControlSocket, 0o600); err != nil {
		ln.Close()
		return err
	}
	m.ctlLn = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go m.serveControl(c)
		}
	}()
	return nil
}

func (m *Monitor) serveControl(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	dec := json.NewDecoder(io.LimitReader(c, 1<<20))
	var req Request
	if err := dec.Decode(&req); err != nil {
		return
	}
	if req.Op == OpExec {
		m.serveExec(c.(*net.UnixConn), dec, req)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var resp Response
	var err error
	switch req.Op {
	case OpState:
	case OpStart:
		err = m.Start(ctx)
	case OpKill:
		err = m.Kill(req.Signal, req.All)
	case OpPause:
		err = m.SetPaused(ctx, true)
	case OpResume:
		err = m.SetPaused(ctx, false)
	case OpPs:
		resp.Processes, err = m.Ps(ctx)
	case OpNetwork:
		err = m.AttachNetwork(ctx)
	case OpUpdate:
		err = m.Update(ctx, req.Resources)
	default:
		err = fmt.Errorf("unknown request %q", req.Op)
	}
	resp.Status = m.Status()
	resp.Pid = os.Getpid()
	if err != nil {
		resp.Error = err.Error()
	}
	_ = json.NewEncoder(c).Encode(resp)
}
