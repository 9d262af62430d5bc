package monitor_test

// The harness of the monitor's unit tests: an in-test Hypervisor whose
// domains are a socketpair, the guest end driven by the test as a scripted
// (and, where a test wants it, hostile) guestinit speaking package agent.

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/monitor"
)

// hangGuard bounds every wait of the tests: reaching it means the monitor
// hung, never that it was slow.
const hangGuard = 20 * time.Second

func TestMain(m *testing.M) {
	// Most of these tests wait on the monitor, not on the CPU: run more
	// parallel tests at once than there are CPUs. An explicit -parallel
	// wins, and fuzzing (whose workers are -parallel processes) keeps the
	// default.
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["test.parallel"] && !set["test.fuzz"] {
		_ = flag.Set("test.parallel", "16")
	}
	os.Exit(m.Run())
}

// fakeHV is a Hypervisor whose guests are the test's fake guests.
type fakeHV struct {
	createErr error
	// connect, when set, replaces Connect (which otherwise returns the
	// monitor's end of the socketpair at once).
	connect func(ctx context.Context, d *fakeDomain) (io.ReadWriteCloser, error)
	// onShutdown runs in the guest when it receives a Shutdown frame,
	// before it powers off.
	onShutdown func()

	created chan *fakeDomain
	creates atomic.Int32
}

func newFakeHV() *fakeHV { return &fakeHV{created: make(chan *fakeDomain, 4)} }

func (h *fakeHV) Create(_ context.Context, spec hypervisor.DomainSpec) (hypervisor.Domain, error) {
	h.creates.Add(1)
	if h.createErr != nil {
		return nil, h.createErr
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	mon, err := fileConn(fds[0])
	if err != nil {
		return nil, err
	}
	gc, err := fileConn(fds[1])
	if err != nil {
		return nil, err
	}
	d := &fakeDomain{hv: h, spec: spec, mon: mon, dead: make(chan struct{})}
	d.g = newGuest(gc, d, h.onShutdown)
	h.created <- d
	return d, nil
}

func (h *fakeHV) Lookup(context.Context, string) (hypervisor.Domain, error) {
	return nil, hypervisor.ErrNotFound
}

func (h *fakeHV) Close() error { return nil }

func fileConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// fakeDomain is one fake guest.
type fakeDomain struct {
	hv   *fakeHV
	spec hypervisor.DomainSpec
	mon  *net.UnixConn // the monitor's end of the agent channel
	g    *guest

	dead     chan struct{}
	dieOnce  sync.Once
	reason   hypervisor.ShutdownReason
	destroys atomic.Int32
	pauses   atomic.Int32
	unpauses atomic.Int32
	nics     atomic.Int32
	pauseErr error
}

func (d *fakeDomain) Name() string { return d.spec.Name }

func (d *fakeDomain) Connect(ctx context.Context) (io.ReadWriteCloser, error) {
	if d.hv.connect != nil {
		return d.hv.connect(ctx, d)
	}
	return d.mon, nil
}

func (d *fakeDomain) Wait(ctx context.Context) (hypervisor.ShutdownReason, error) {
	select {
	case <-d.dead:
		return d.reason, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (d *fakeDomain) Pause(context.Context) error {
	d.pauses.Add(1)
	return d.pauseErr
}

func (d *fakeDomain) Unpause(context.Context) error {
	d.unpauses.Add(1)
	return d.pauseErr
}

func (d *fakeDomain) Info(context.Context) (hypervisor.DomainInfo, error) {
	return hypervisor.DomainInfo{Name: d.spec.Name, State: hypervisor.StateRunning}, nil
}

// AddNIC records the NIC; the fake has no network, so it fails.
func (d *fakeDomain) AddNIC(_ context.Context, nic hypervisor.NIC) (hypervisor.NICBackend, error) {
	d.nics.Add(1)
	return hypervisor.NICBackend{}, fmt.Errorf("fake: no NIC for %s: %w", nic.MAC, hypervisor.ErrUnsupported)
}

// SetResources is not used by the monitor (`update` calls the hypervisor
// itself).
func (d *fakeDomain) SetResources(context.Context, hypervisor.Resources) error {
	return hypervisor.ErrUnsupported
}

func (d *fakeDomain) Destroy(context.Context) error {
	d.destroys.Add(1)
	d.g.c.Close()
	d.die(hypervisor.ReasonDestroyed)
	return nil
}

// die stops the domain: Wait returns reason.
func (d *fakeDomain) die(reason hypervisor.ShutdownReason) {
	d.dieOnce.Do(func() {
		d.reason = reason
		close(d.dead)
	})
}

// crash makes the guest crash: its end of the channel goes away and Wait
// reports a crash.
func (d *fakeDomain) crash() {
	d.g.c.Close()
	d.die(hypervisor.ReasonCrash)
}

func (d *fakeDomain) isDead() bool {
	select {
	case <-d.dead:
		return true
	default:
		return false
	}
}

// guest is the test's side of the agent channel. A reader goroutine records
// every frame the monitor sends; the test sends what it likes.
type guest struct {
	c    *net.UnixConn
	conn *agent.Conn
	dom  *fakeDomain

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever the record changes
	frames   []agent.Frame
	taken    []bool
	readErr  error // why the reader stopped
	shutdown bool
	stdin    map[uint32]*bytes.Buffer
	closed   map[uint32]bool // StdinClose received
}

func newGuest(c *net.UnixConn, d *fakeDomain, onShutdown func()) *guest {
	g := &guest{
		c: c, conn: agent.NewConn(c), dom: d, changed: make(chan struct{}),
		stdin: map[uint32]*bytes.Buffer{}, closed: map[uint32]bool{},
	}
	go g.read(onShutdown)
	return g
}

func (g *guest) read(onShutdown func()) {
	for {
		f, err := g.conn.Recv()
		g.mu.Lock()
		if err != nil {
			g.readErr = err
		} else {
			g.frames = append(g.frames, f)
			g.taken = append(g.taken, false)
			switch f.Type {
			case agent.TypeStdin:
				b := g.stdin[f.Session]
				if b == nil {
					b = new(bytes.Buffer)
					g.stdin[f.Session] = b
				}
				b.Write(f.Payload)
			case agent.TypeStdinClose:
				g.closed[f.Session] = true
			case agent.TypeShutdown:
				g.shutdown = true
			}
		}
		close(g.changed)
		g.changed = make(chan struct{})
		g.mu.Unlock()
		if err != nil {
			return
		}
		if f.Type == agent.TypeShutdown {
			// Power off, as guestinit does.
			if onShutdown != nil {
				onShutdown()
			}
			g.c.Close()
			g.dom.die(hypervisor.ReasonPoweroff)
			return
		}
	}
}

// wait waits until cond (called with g.mu held) holds; false at the hang
// guard.
func (g *guest) wait(cond func() bool) bool {
	deadline := time.NewTimer(hangGuard)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		ok := cond()
		ch := g.changed
		g.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return false
		}
	}
}

// take returns the first frame not taken yet of type typ for session.
func (g *guest) take(typ agent.Type, session uint32) (agent.Frame, bool) {
	var f agent.Frame
	ok := g.wait(func() bool {
		for i := range g.frames {
			if !g.taken[i] && g.frames[i].Type == typ && g.frames[i].Session == session {
				g.taken[i] = true
				f = g.frames[i]
				return true
			}
		}
		return false
	})
	return f, ok
}

// mustTake is take for the test goroutine.
func (g *guest) mustTake(t testing.TB, typ agent.Type, session uint32) agent.Frame {
	t.Helper()
	f, ok := g.take(typ, session)
	if !ok {
		t.Fatalf("the guest got no %s frame for session %d; it got: %s", typ, session, g.summary())
	}
	return f
}

// count returns how many frames of type typ for session the guest got.
func (g *guest) count(typ agent.Type, session uint32) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, f := range g.frames {
		if f.Type == typ && f.Session == session {
			n++
		}
	}
	return n
}

func (g *guest) summary() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var s []string
	for _, f := range g.frames {
		s = append(s, fmt.Sprintf("%s/%d(%dB)", f.Type, f.Session, len(f.Payload)))
	}
	if g.readErr != nil {
		s = append(s, "read error: "+g.readErr.Error())
	}
	return strings.Join(s, " ")
}

func (g *guest) gotShutdown() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.shutdown
}

func (g *guest) stdinOf(session uint32) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.stdin[session]; b != nil {
		return append([]byte(nil), b.Bytes()...)
	}
	return nil
}

func (g *guest) stdinLen(session uint32) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.stdin[session]; b != nil {
		return b.Len()
	}
	return 0
}

func (g *guest) stdinClosed(session uint32) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed[session]
}

// send sends one frame; errors are the monitor having gone, which some
// tests expect.
func (g *guest) send(t agent.Type, session uint32, payload []byte) error {
	return g.conn.Send(t, session, payload)
}

func (g *guest) sendJSON(t agent.Type, session uint32, v any) error {
	return g.conn.SendJSON(t, session, v)
}

func (g *guest) mustSend(tb testing.TB, t agent.Type, session uint32, payload []byte) {
	tb.Helper()
	if err := g.send(t, session, payload); err != nil {
		tb.Fatalf("guest: sending %s: %v", t, err)
	}
}

func (g *guest) mustSendJSON(tb testing.TB, t agent.Type, session uint32, v any) {
	tb.Helper()
	if err := g.sendJSON(t, session, v); err != nil {
		tb.Fatalf("guest: sending %s: %v", t, err)
	}
}

// sendRaw writes bytes as they are: frames the agent package would refuse
// to encode.
func (g *guest) sendRaw(b []byte) error {
	_, err := g.c.Write(b)
	return err
}

// rawFrame encodes a frame header by hand (any magic, version, type and
// declared length) followed by payload.
func rawFrame(magic string, version, typ byte, session, length uint32, payload []byte) []byte {
	b := []byte{magic[0], magic[1], version, typ}
	b = append(b, byte(session>>24), byte(session>>16), byte(session>>8), byte(session))
	b = append(b, byte(length>>24), byte(length>>16), byte(length>>8), byte(length))
	return append(b, payload...)
}

// frame encodes a valid frame.
func frame(t agent.Type, session uint32, payload []byte) []byte {
	b, err := agent.AppendFrame(nil, agent.Frame{Type: t, Session: session, Payload: payload})
	if err != nil {
		panic(err)
	}
	return b
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// syncBuffer is a goroutine-safe bytes.Buffer.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shortDir is a temporary directory with a short path: unix socket paths
// are limited to 108 bytes, and subtest names make t.TempDir long.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vxnmon")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// harness is one monitor and its fake guest.
type harness struct {
	t        testing.TB
	dir      string
	hv       *fakeHV
	cfg      monitor.Config
	m        *monitor.Monitor
	out, err *syncBuffer
	log      *syncBuffer
	dom      *fakeDomain
	g        *guest
}

type option func(*harness, *monitor.Stdio)

func withStdin(r io.Reader) option { return func(_ *harness, s *monitor.Stdio) { s.In = r } }

func withConfig(f func(*monitor.Config)) option {
	return func(h *harness, _ *monitor.Stdio) { f(&h.cfg) }
}

func withHV(f func(*fakeHV)) option { return func(h *harness, _ *monitor.Stdio) { f(h.hv) } }

func newHarness(t testing.TB, opts ...option) *harness {
	t.Helper()
	dir := shortDir(t)
	h := &harness{
		t: t, dir: dir, hv: newFakeHV(),
		out: new(syncBuffer), err: new(syncBuffer), log: new(syncBuffer),
		cfg: monitor.Config{
			ID:   "c1",
			Spec: &specs.Spec{Version: specs.Version, Process: &specs.Process{Args: []string{"/bin/sh", "-c", "true"}, Cwd: "/"}},
			Domain: hypervisor.DomainSpec{
				Name: "vxn-c1", Type: hypervisor.GuestPVH, ConsoleLog: filepath.Join(dir, "console.log"),
				StateDir: dir,
			},
			RootDevice:    "xvda",
			ControlSocket: filepath.Join(dir, "ctl.sock"),
			ExitFile:      filepath.Join(dir, "exit.json"),
			BootTimeout:   hangGuard,
		},
	}
	stdio := monitor.Stdio{Out: h.out, Err: h.err}
	for _, o := range opts {
		o(h, &stdio)
	}
	logger := logrus.New()
	logger.SetOutput(h.log)
	logger.SetLevel(logrus.DebugLevel)
	h.m = monitor.New(h.cfg, h.hv, stdio, logger)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("monitor log:\n%s", h.log.String())
			if h.g != nil {
				t.Logf("frames the guest got: %s", h.g.summary())
			}
		}
		// Whatever the test left running goes away with its guest.
		if h.dom != nil {
			_ = h.dom.Destroy(context.Background())
		}
	})
	return h
}

// bootAsync starts Boot and returns its result channel and, once the
// monitor has created it, the domain.
func (h *harness) bootAsync() <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- h.m.Boot(context.Background()) }()
	return ch
}

// domain waits for the monitor to create its guest.
func (h *harness) domain() *fakeDomain {
	h.t.Helper()
	select {
	case d := <-h.hv.created:
		h.dom, h.g = d, d.g
		return d
	case <-time.After(hangGuard):
		h.t.Fatal("the monitor did not create a guest")
		return nil
	}
}

// handshake plays the guest's part of the boot up to the config, which it
// returns.
func (h *harness) handshake() agent.Config {
	h.t.Helper()
	h.domain()
	h.g.mustSendJSON(h.t, agent.TypeHello, 0, agent.Hello{Version: agent.Version, Role: "guest"})
	hello := h.g.mustTake(h.t, agent.TypeHello, 0)
	var hm agent.Hello
	if err := agent.Unmarshal(hello.Payload, &hm); err != nil || hm.Version != agent.Version || hm.Role != "monitor" {
		h.t.Fatalf("monitor hello %q: %v", hello.Payload, err)
	}
	f := h.g.mustTake(h.t, agent.TypeConfig, 0)
	var cfg agent.Config
	if err := agent.Unmarshal(f.Payload, &cfg); err != nil {
		h.t.Fatalf("config: %v", err)
	}
	return cfg
}

// boot boots the container to ready.
func (h *harness) boot() {
	h.t.Helper()
	ch := h.bootAsync()
	h.handshake()
	h.g.mustSend(h.t, agent.TypeReady, 0, nil)
	if err := await(h.t, ch, "Boot"); err != nil {
		h.t.Fatalf("Boot: %v", err)
	}
}

// start starts the container process, the guest answering with pid.
func (h *harness) start() {
	h.t.Helper()
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		ch <- h.m.Start(ctx)
	}()
	h.g.mustTake(h.t, agent.TypeStart, 0)
	h.g.mustSendJSON(h.t, agent.TypeStarted, 0, agent.Started{Pid: 1})
	if err := await(h.t, ch, "Start"); err != nil {
		h.t.Fatalf("Start: %v", err)
	}
}

// serve runs Serve; the channel gets its status.
func (h *harness) serve() <-chan int {
	ch := make(chan int, 1)
	go func() { ch <- h.m.Serve() }()
	return ch
}

// exitFile reads the status the monitor recorded.
func (h *harness) exitFile() (int, error) {
	b, err := os.ReadFile(h.cfg.ExitFile)
	if err != nil {
		return 0, err
	}
	var r monitor.ExitRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return 0, fmt.Errorf("%s: %q: %w", h.cfg.ExitFile, b, err)
	}
	return r.Status, nil
}

// await receives from ch, failing the test at the hang guard.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hangGuard):
		t.Fatalf("%s did not return", what)
		var zero T
		return zero
	}
}

// call sends a control request.
func (h *harness) call(req monitor.Request) (*monitor.Response, error) {
	return monitor.Call(h.cfg.ControlSocket, req, hangGuard)
}

// callAsync sends a control request from another goroutine.
func (h *harness) callAsync(req monitor.Request) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		r, err := h.call(req)
		ch <- callResult{r, err}
	}()
	return ch
}

type callResult struct {
	resp *monitor.Response
	err  error
}

func errContains(err error, sub string) bool {
	return err != nil && strings.Contains(err.Error(), sub)
}

// eventually polls cond until it holds; false at the hang guard. For
// conditions the guest's record does not signal (what the monitor wrote).
func eventually(cond func() bool) bool {
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

// wantEnded checks that Serve ended with status, recorded it in the exit
// file and destroyed the domain.
func (h *harness) wantEnded(done <-chan int, status int) {
	h.t.Helper()
	if st := await(h.t, done, "Serve"); st != status {
		h.t.Errorf("Serve: %d, want %d", st, status)
	}
	if st, err := h.exitFile(); err != nil || st != status {
		h.t.Errorf("exit file: %d, %v", st, err)
	}
	if h.dom.destroys.Load() < 1 {
		h.t.Error("the domain was not destroyed")
	}
}
