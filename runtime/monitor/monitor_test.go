package monitor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/monitor"
)

// TestMonitorHappyPath boots, starts, relays stdout and stderr separately,
// and ends with the process's exit code: recorded in the exit file before
// the guest is told to shut down, then the guest destroyed.
func TestMonitorHappyPath(t *testing.T) {
	t.Parallel()
	var exitAtShutdown []byte
	h := newHarness(t, withConfig(func(c *monitor.Config) {
		c.Files = []agent.File{{Destination: "/etc/hosts", Mode: 0o644, Data: []byte("127.0.0.1 localhost\n")}}
	}))
	h.hv.onShutdown = func() { exitAtShutdown, _ = os.ReadFile(h.cfg.ExitFile) }
	ch := h.bootAsync()
	cfg := h.handshake()
	if cfg.Spec == nil || cfg.Spec.Process == nil || strings.Join(cfg.Spec.Process.Args, " ") != "/bin/sh -c true" {
		t.Errorf("config spec: %+v", cfg.Spec)
	}
	if cfg.RootDevice != "xvda" || len(cfg.Files) != 1 || cfg.Files[0].Destination != "/etc/hosts" || string(cfg.Files[0].Data) != "127.0.0.1 localhost\n" {
		t.Errorf("config: root %q files %+v", cfg.RootDevice, cfg.Files)
	}
	if h.g.count(agent.TypeStart, 0) != 0 {
		t.Error("the monitor sent start before it was asked to")
	}
	h.g.mustSend(t, agent.TypeReady, 0, nil)
	if err := await(t, ch, "Boot"); err != nil {
		t.Fatalf("Boot: %v", err)
	}
	if st := h.m.Status(); st != specs.StateCreated {
		t.Errorf("status after boot: %s, want created", st)
	}
	if _, err := os.Stat(h.cfg.ControlSocket); err != nil {
		t.Errorf("control socket after boot: %v", err)
	}
	h.start()
	if st := h.m.Status(); st != specs.StateRunning {
		t.Errorf("status after start: %s, want running", st)
	}
	// No stdin: the process's stdin is closed at once.
	h.g.mustTake(t, agent.TypeStdinClose, 0)
	done := h.serve()

	h.g.mustSend(t, agent.TypeStdout, 0, []byte("out 1\n"))
	h.g.mustSend(t, agent.TypeStderr, 0, []byte("err 1\n"))
	h.g.mustSend(t, agent.TypeStdout, 0, []byte("out 2\n"))
	h.g.mustSend(t, agent.TypeStdout, 0, make([]byte, agent.ChunkSize)) // the largest chunk is fine
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 3})

	if st := await(t, done, "Serve"); st != 3 {
		t.Errorf("Serve: %d, want 3", st)
	}
	if got, want := h.out.String(), "out 1\nout 2\n"+string(make([]byte, agent.ChunkSize)); got != want {
		t.Errorf("stdout: %d bytes %q..., want %d bytes", len(got), got[:min(len(got), 20)], len(want))
	}
	if got := h.err.String(); got != "err 1\n" {
		t.Errorf("stderr: %q", got)
	}
	if st, err := h.exitFile(); err != nil || st != 3 {
		t.Errorf("exit file: %d, %v; want 3", st, err)
	}
	if string(exitAtShutdown) != `{"status":3}` {
		t.Errorf("exit file when the guest was told to shut down: %q, want it written first", exitAtShutdown)
	}
	if !h.g.gotShutdown() {
		t.Error("the guest got no shutdown frame")
	}
	if n := h.dom.destroys.Load(); n < 1 {
		t.Error("the domain was not destroyed")
	}
	if st := h.m.Status(); st != specs.StateStopped {
		t.Errorf("status after exit: %s, want stopped", st)
	}
	if _, err := h.call(monitor.Request{Op: monitor.OpState}); !errors.Is(err, monitor.ErrNoMonitor) {
		t.Errorf("control socket after exit: %v, want ErrNoMonitor", err)
	}
}

// TestMonitorExitStatus checks the status of each way a process ends.
func TestMonitorExitStatus(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		exit agent.Exit
		want int
	}{
		{"code 0", agent.Exit{}, 0},
		{"code 255", agent.Exit{Code: 255}, 255},
		{"SIGKILL", agent.Exit{Signal: 9}, 137},
		{"SIGTERM", agent.Exit{Signal: 15}, 143},
		{"signal 64", agent.Exit{Signal: 64}, 192},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			h.boot()
			h.start()
			done := h.serve()
			h.g.mustSendJSON(t, agent.TypeExit, 0, c.exit)
			if st := await(t, done, "Serve"); st != c.want {
				t.Errorf("Serve: %d, want %d", st, c.want)
			}
			if st, err := h.exitFile(); err != nil || st != c.want {
				t.Errorf("exit file: %d, %v; want %d", st, err, c.want)
			}
			if !h.g.gotShutdown() || h.dom.destroys.Load() < 1 {
				t.Errorf("shutdown sent %v, destroyed %d times", h.g.gotShutdown(), h.dom.destroys.Load())
			}
		})
	}
}

// TestMonitorExitReportedBeforeCrash: an exit report the monitor has read
// wins over the guest stopping right after it.
func TestMonitorExitReportedBeforeCrash(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 7})
	// Frames are handled in order: once the marker is out, the exit has
	// been taken in.
	h.g.mustSend(t, agent.TypeStdout, 0, []byte("marker"))
	if !eventually(func() bool { return strings.Contains(h.out.String(), "marker") }) {
		t.Fatal("the monitor did not relay the marker")
	}
	h.dom.die(hypervisor.ReasonCrash)
	if st := await(t, h.serve(), "Serve"); st != 7 {
		t.Errorf("Serve: %d, want 7", st)
	}
}

// TestMonitorExitReportedBeforeChannelLoss: an exit report the monitor has
// read wins over the agent channel ending right after it (as when the
// guest goes away at once). Serve picks at random among ready events, so
// the test repeats the race a few times.
//
// (Serve's failCh case once finished with StatusGuestDied without looking
// at an exit report already waiting in init.exitCh.)
func TestMonitorExitReportedBeforeChannelLoss(t *testing.T) {
	t.Parallel()
	for i := 0; i < 12; i++ {
		h := newHarness(t)
		h.boot()
		h.start()
		h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 7})
		h.g.mustSend(t, agent.TypeStdout, 0, []byte("marker"))
		if !eventually(func() bool { return strings.Contains(h.out.String(), "marker") }) {
			t.Fatal("the monitor did not relay the marker")
		}
		if err := h.g.c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		// Let the monitor's reader see the end of the channel, so that both
		// events wait for Serve. (Should it not have yet, Serve sees the
		// exit alone and the attempt passes: the sleep cannot make the test
		// fail.)
		time.Sleep(20 * time.Millisecond)
		if st := await(t, h.serve(), "Serve"); st != 7 {
			t.Fatalf("attempt %d: Serve: %d, want the reported 7", i, st)
		}
	}
}

// TestMonitorGuestCrashWhileRunning: the guest stops without an exit
// report.
func TestMonitorGuestCrashWhileRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	done := h.serve()
	h.dom.crash()
	h.wantEnded(done, monitor.StatusGuestDied)
}

// TestMonitorGuestClosesChannel: the agent channel ends (EOF) without an
// exit report.
func TestMonitorGuestClosesChannel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	done := h.serve()
	if err := h.g.c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if st := await(t, done, "Serve"); st != monitor.StatusGuestDied {
		t.Errorf("Serve: %d, want %d", st, monitor.StatusGuestDied)
	}
	if !h.g.gotShutdown() || h.dom.destroys.Load() < 1 {
		t.Errorf("shutdown sent %v, destroyed %d times", h.g.gotShutdown(), h.dom.destroys.Load())
	}
	if !strings.Contains(h.log.String(), "connection to the guest lost") {
		t.Errorf("log does not say the connection was lost:\n%s", h.log.String())
	}
}

// bootFailure runs a Boot that must fail and checks nothing is left.
func bootFailure(t *testing.T, h *harness, ch <-chan error, want ...string) {
	t.Helper()
	err := await(t, ch, "Boot")
	if err == nil {
		t.Fatal("Boot succeeded")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Boot error %q does not contain %q", err, w)
		}
	}
	if h.dom != nil {
		if n := h.dom.destroys.Load(); n < 1 {
			t.Error("the guest of a failed boot was not destroyed")
		}
		// The monitor closed its end of the channel.
		if !h.g.wait(func() bool { return h.g.readErr != nil }) {
			t.Error("the monitor left the agent channel open")
		}
	}
	if _, err := os.Stat(h.cfg.ControlSocket); err == nil {
		t.Error("a failed boot left a control socket")
	}
	if _, err := os.Stat(h.cfg.ExitFile); err == nil {
		t.Error("a failed boot wrote an exit file")
	}
}

func TestMonitorBootGuestError(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ch := h.bootAsync()
	h.handshake()
	h.g.mustSendJSON(t, agent.TypeError, 0, agent.Error{Message: "mounting the rootfs: no such device\x1b[2J"})
	bootFailure(t, h, ch, "could not set the container up", "mounting the rootfs: no such device")
}

func TestMonitorBootGuestErrorSanitised(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ch := h.bootAsync()
	h.handshake()
	h.g.mustSendJSON(t, agent.TypeError, 0, agent.Error{Message: "bad\x1b[2Jthing\n" + strings.Repeat("x", 10000)})
	err := await(t, ch, "Boot")
	if err == nil {
		t.Fatal("Boot succeeded")
	}
	if strings.ContainsAny(err.Error(), "\x1b\n") || len(err.Error()) > agent.MaxErrorLen+200 {
		t.Errorf("guest error passed on unsanitised (%d bytes): %q", len(err.Error()), err.Error()[:min(80, len(err.Error()))])
	}
}

func TestMonitorBootCreateFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withHV(func(hv *fakeHV) { hv.createErr = errors.New("out of memory") }))
	bootFailure(t, h, h.bootAsync(), "creating the guest", "out of memory")
}

func TestMonitorBootConnectFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withHV(func(hv *fakeHV) {
		hv.connect = func(context.Context, *fakeDomain) (io.ReadWriteCloser, error) {
			return nil, errors.New("no vchan")
		}
	}))
	ch := h.bootAsync()
	h.domain()
	bootFailure(t, h, ch, "connecting to the guest agent", "no vchan")
}

// TestMonitorBootGuestDiesBeforeConnect: the guest stops while the
// monitor waits for its agent; the error says so and shows the console.
func TestMonitorBootGuestDiesBeforeConnect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withHV(func(hv *fakeHV) {
		hv.connect = func(ctx context.Context, d *fakeDomain) (io.ReadWriteCloser, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
	}))
	if err := os.WriteFile(h.cfg.Domain.ConsoleLog, []byte("booting\nKernel panic - not syncing: VFS\x07\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := h.bootAsync()
	h.domain().crash()
	bootFailure(t, h, ch, "the guest stopped while booting (crash)", "Kernel panic - not syncing: VFS?")
}

// TestMonitorBootGuestDiesDuringSetup: the guest stops after the config.
func TestMonitorBootGuestDiesDuringSetup(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ch := h.bootAsync()
	h.handshake()
	h.dom.die(hypervisor.ReasonCrash) // the channel stays open: only Wait tells
	bootFailure(t, h, ch, "the guest stopped while setting the container up (crash)")
}

func TestMonitorBootTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withConfig(func(c *monitor.Config) { c.BootTimeout = 300 * time.Millisecond }))
	ch := h.bootAsync()
	h.handshake() // and never answer
	bootFailure(t, h, ch, "did not get ready within 300ms")
}

// TestMonitorBootHostileGuest: a broken frame during boot fails it.
func TestMonitorBootHostileGuest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ch := h.bootAsync()
	h.handshake()
	_ = h.g.sendRaw(rawFrame("XX", agent.Version, byte(agent.TypeReady), 0, 0, nil))
	bootFailure(t, h, ch, "bad frame magic")
}

func TestMonitorBootWrongProtocolVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ch := h.bootAsync()
	h.domain()
	h.g.mustSendJSON(t, agent.TypeHello, 0, agent.Hello{Version: agent.Version + 1, Role: "guest"})
	bootFailure(t, h, ch, fmt.Sprintf("guest speaks protocol %d", agent.Version+1))
}

// TestMonitorBootControlSocketFails: the last step of boot failing still
// takes the guest down.
func TestMonitorBootControlSocketFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withConfig(func(c *monitor.Config) { c.ControlSocket = "/nonexistent-dir/ctl.sock" }))
	ch := h.bootAsync()
	h.handshake()
	h.g.mustSend(t, agent.TypeReady, 0, nil)
	bootFailure(t, h, ch, "control socket")
}

func TestMonitorBootTerminalWithoutConsoleSocket(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withConfig(func(c *monitor.Config) {
		c.Spec = &specs.Spec{Process: &specs.Process{Args: []string{"sh"}, Terminal: true}}
	}))
	ch := h.bootAsync()
	h.handshake()
	h.g.mustSend(t, agent.TypeReady, 0, nil)
	bootFailure(t, h, ch, "no --console-socket")
}

// TestMonitorKillBeforeStart: a created container has no process; a
// terminating signal stops it with 128+sig, and harmless ones do nothing.
func TestMonitorKillBeforeStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	done := h.serve()
	for _, sig := range []int{17, 18, 23, 28} { // SIGCHLD SIGCONT SIGURG SIGWINCH
		if err := h.m.Kill(sig, false); err != nil {
			t.Errorf("Kill(%d): %v", sig, err)
		}
	}
	if st := h.m.Status(); st != specs.StateCreated {
		t.Fatalf("after harmless signals: %s", st)
	}
	if err := h.m.Kill(15, false); err != nil {
		t.Fatalf("Kill(15): %v", err)
	}
	if st := await(t, done, "Serve"); st != 128+15 {
		t.Errorf("Serve: %d, want 143", st)
	}
	if h.g.count(agent.TypeSignal, 0)+h.g.count(agent.TypeSignal, agent.SessionAll) != 0 {
		t.Error("a signal frame was sent for a container that has no process")
	}
	if st, err := h.exitFile(); err != nil || st != 143 {
		t.Errorf("exit file: %d, %v", st, err)
	}
	if h.dom.destroys.Load() < 1 {
		t.Error("not destroyed")
	}
	if err := h.m.Kill(9, false); err == nil {
		t.Error("Kill after the container stopped succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if err := h.m.Start(ctx); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Start after stop: %v", err)
	}
}

// TestMonitorKillAfterStart: signals go to the guest, to session 0 or, for
// all, to agent.SessionAll.
func TestMonitorKillAfterStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	done := h.serve()
	if err := h.m.Kill(15, false); err != nil {
		t.Fatal(err)
	}
	f := h.g.mustTake(t, agent.TypeSignal, 0)
	if sig, err := agent.DecodeSignal(f.Payload); err != nil || sig != 15 {
		t.Errorf("signal frame: %d, %v", sig, err)
	}
	if _, err := h.call(monitor.Request{Op: monitor.OpKill, Signal: 9, All: true}); err != nil {
		t.Fatal(err)
	}
	f = h.g.mustTake(t, agent.TypeSignal, agent.SessionAll)
	if sig, err := agent.DecodeSignal(f.Payload); err != nil || sig != 9 {
		t.Errorf("signal frame: %d, %v", sig, err)
	}
	if st := h.m.Status(); st != specs.StateRunning {
		t.Errorf("a signal alone changed the status to %s", st)
	}
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Signal: 9})
	if st := await(t, done, "Serve"); st != 137 {
		t.Errorf("Serve: %d, want 137", st)
	}
}

// TestMonitorControlSocket: state, start, start twice, pause, resume and
// ps through the control socket.
func TestMonitorControlSocket(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	done := h.serve()
	fi, err := os.Stat(h.cfg.ControlSocket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want 0600", fi.Mode().Perm())
	}
	r, err := h.call(monitor.Request{Op: monitor.OpState})
	if err != nil || r.Status != specs.StateCreated || r.Pid != os.Getpid() {
		t.Fatalf("state: %+v, %v", r, err)
	}
	if _, err := h.call(monitor.Request{Op: monitor.OpPause}); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("pause of a created container: %v", err)
	}

	startRes := h.callAsync(monitor.Request{Op: monitor.OpStart})
	h.g.mustTake(t, agent.TypeStart, 0)
	// A second start while the first waits for the guest.
	if _, err := h.call(monitor.Request{Op: monitor.OpStart}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second start: %v", err)
	}
	h.g.mustSendJSON(t, agent.TypeStarted, 0, agent.Started{Pid: 1})
	res := await(t, startRes, "start")
	if res.err != nil || res.resp.Status != specs.StateRunning {
		t.Fatalf("start: %+v, %v", res.resp, res.err)
	}
	if h.g.count(agent.TypeStart, 0) != 1 {
		t.Errorf("%d start frames, want 1", h.g.count(agent.TypeStart, 0))
	}
	if _, err := h.call(monitor.Request{Op: monitor.OpStart}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("start of a running container: %v", err)
	}

	r, err = h.call(monitor.Request{Op: monitor.OpPause})
	if err != nil || r.Status != "paused" || h.dom.pauses.Load() != 1 {
		t.Errorf("pause: %+v, %v, %d pauses", r, err, h.dom.pauses.Load())
	}
	if _, err := h.call(monitor.Request{Op: monitor.OpPause}); err == nil || !strings.Contains(err.Error(), "already paused") {
		t.Errorf("pause twice: %v", err)
	}
	r, err = h.call(monitor.Request{Op: monitor.OpResume})
	if err != nil || r.Status != specs.StateRunning || h.dom.unpauses.Load() != 1 {
		t.Errorf("resume: %+v, %v", r, err)
	}
	if _, err := h.call(monitor.Request{Op: monitor.OpResume}); err == nil || !strings.Contains(err.Error(), "not paused") {
		t.Errorf("resume of a running container: %v", err)
	}

	psRes := h.callAsync(monitor.Request{Op: monitor.OpPs})
	h.g.mustTake(t, agent.TypePsRequest, 0)
	h.g.mustSendJSON(t, agent.TypePsReply, 0, agent.PsReply{Processes: []agent.PsEntry{{Pid: 1, Command: "sh"}, {Pid: 7, Command: "sleep\x1b[31m 10"}}})
	res = await(t, psRes, "ps")
	if res.err != nil || len(res.resp.Processes) != 2 || res.resp.Processes[0] != (agent.PsEntry{Pid: 1, Command: "sh"}) ||
		res.resp.Processes[1].Command != "sleep?[31m 10" {
		t.Errorf("ps: %+v, %v", res.resp, res.err)
	}

	if _, err := h.call(monitor.Request{Op: "frobnicate"}); err == nil || !strings.Contains(err.Error(), "unknown request") {
		t.Errorf("unknown op: %v", err)
	}
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 0})
	if st := await(t, done, "Serve"); st != 0 {
		t.Errorf("Serve: %d", st)
	}
}

// TestMonitorPauseFails: a hypervisor error is reported and the status
// does not change.
func TestMonitorPauseFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	h.dom.pauseErr = errors.New("xen says no")
	ctx := context.Background()
	if err := h.m.SetPaused(ctx, true); err == nil || !strings.Contains(err.Error(), "xen says no") {
		t.Errorf("SetPaused: %v", err)
	}
	if st := h.m.Status(); st != specs.StateRunning {
		t.Errorf("status: %s", st)
	}
}

// TestMonitorStartRefusedByGuest: the guest answers start with an error,
// which start reports.
func TestMonitorStartRefusedByGuest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	done := h.serve()
	res := h.callAsync(monitor.Request{Op: monitor.OpStart})
	h.g.mustTake(t, agent.TypeStart, 0)
	h.g.mustSendJSON(t, agent.TypeError, 0, agent.Error{Message: `exec: "nope": executable file not found in $PATH`})
	r := await(t, res, "start")
	if !errContains(r.err, "executable file not found") {
		t.Errorf("start: %v", r.err)
	}
	// guestinit reports the exit of the failed process.
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 127})
	if st := await(t, done, "Serve"); st != 127 {
		t.Errorf("Serve: %d, want 127", st)
	}
}

// TestMonitorUpdate: OpUpdate sends the limits to the guest and reports its
// refusal.
func TestMonitorUpdate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	h.serve()
	limit := int64(64 << 20)
	res := &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}
	r := h.callAsync(monitor.Request{Op: monitor.OpUpdate, Resources: res})
	f := h.g.mustTake(t, agent.TypeUpdate, 0)
	var got specs.LinuxResources
	if err := agent.Unmarshal(f.Payload, &got); err != nil || got.Memory == nil || *got.Memory.Limit != limit {
		t.Fatalf("guest got %s (%v)", f.Payload, err)
	}
	h.g.mustSendJSON(t, agent.TypeUpdated, 0, agent.Error{})
	if a := await(t, r, "update"); a.err != nil {
		t.Fatalf("update: %v", a.err)
	}
	r = h.callAsync(monitor.Request{Op: monitor.OpUpdate, Resources: res})
	h.g.mustTake(t, agent.TypeUpdate, 0)
	h.g.mustSendJSON(t, agent.TypeUpdated, 0, agent.Error{Message: "memory.max: device busy"})
	if a := await(t, r, "update"); !errContains(a.err, "refused the new limits: memory.max: device busy") {
		t.Fatalf("refused update: %v", a.err)
	}
	if _, err := h.call(monitor.Request{Op: monitor.OpUpdate}); !errContains(err, "no resources") {
		t.Fatalf("update without resources: %v", err)
	}
}

// TestMonitorPsWhenStopped: ps of a stopped container fails at once.
func TestMonitorPsWhenStopped(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	h.start()
	done := h.serve()
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{})
	await(t, done, "Serve")
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	if _, err := h.m.Ps(ctx); err == nil {
		t.Error("Ps of a stopped container succeeded")
	}
}

// TestMonitorCleanExitLogsNoGuestDeath: after a reported exit, the guest
// powering off as told is no error. Serve picks at random among ready
// events, so the test repeats the exit a few times.
//
// (Serve once looped again after finish and could take the domDead event
// that shutdownGuest put back instead of m.done: it then waited 200ms and
// logged "the guest stopped (poweroff) without reporting the container's
// exit" at error level, possibly several times.)
func TestMonitorCleanExitLogsNoGuestDeath(t *testing.T) {
	t.Parallel()
	for i := 0; i < 8; i++ {
		h := newHarness(t)
		h.boot()
		h.start()
		done := h.serve()
		h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 0})
		if st := await(t, done, "Serve"); st != 0 {
			t.Fatalf("Serve: %d", st)
		}
		if log := h.log.String(); strings.Contains(log, "without reporting the container's exit") {
			t.Fatalf("attempt %d: a clean exit logged a guest death:\n%s", i, log)
		}
	}
}

// TestMonitorKillAfterFailedStartStopsContainer: when the guest refuses
// start without any process having been made (guestinit answers Error and
// no Exit when it fails before forking: no pty, no pipes, fork failing),
// the container has no process and is stopped; SIGKILL ends it at once.
//
// (Start once left the container "running" with no process, and Kill only
// sent a Signal frame the guest answers with "no process in session 0":
// nothing ended the container short of killing the monitor.)
func TestMonitorKillAfterFailedStartStopsContainer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	done := h.serve()
	res := h.callAsync(monitor.Request{Op: monitor.OpStart})
	h.g.mustTake(t, agent.TypeStart, 0)
	h.g.mustSendJSON(t, agent.TypeError, 0, agent.Error{Message: "allocating a terminal: no space left on device"})
	if r := await(t, res, "start"); !errContains(r.err, "no space left on device") {
		t.Fatalf("start: %v", r.err)
	}
	if r, err := h.call(monitor.Request{Op: monitor.OpState}); err != nil || r.Status != specs.StateStopped {
		t.Errorf("state after a refused start: %+v, %v; want stopped", r, err)
	}
	if err := h.m.Kill(9, false); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if st := await(t, done, "Serve"); st != 137 {
		t.Errorf("Serve: %d, want 137", st)
	}
	if n := h.g.count(agent.TypeSignal, 0); n != 0 {
		t.Errorf("%d signal frames sent for a process that never started", n)
	}
}

// TestMonitorStartRefusedWithoutExit: a refused start with no exit report
// ends the container by itself, with the shell's status for a failed exec.
func TestMonitorStartRefusedWithoutExit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	done := h.serve()
	res := h.callAsync(monitor.Request{Op: monitor.OpStart})
	h.g.mustTake(t, agent.TypeStart, 0)
	h.g.mustSendJSON(t, agent.TypeError, 0, agent.Error{Message: "fork: resource temporarily unavailable"})
	if r := await(t, res, "start"); !errContains(r.err, "resource temporarily unavailable") {
		t.Fatalf("start: %v", r.err)
	}
	if st := h.m.Status(); st != specs.StateStopped {
		t.Errorf("status after a refused start: %s", st)
	}
	stdio := newExecStdio(t, h.dir, "")
	if _, err := monitor.StartExec(h.cfg.ControlSocket, &specs.Process{Args: []string{"ls"}}, stdio.files); !errContains(err, "cannot exec") {
		t.Errorf("exec after a refused start: %v", err)
	}
	h.wantEnded(done, monitor.StatusStartFailed)
}

// TestMonitorKillBeforeStartStopSignals: the stop signals (SIGSTOP,
// SIGTSTP, SIGTTIN, SIGTTOU) never terminate a process, so by Kill's own
// rule ("a signal that would terminate one stops it") they must not end a
// created container. SIGTSTP is also among the signals the monitor
// forwards from itself.
func TestMonitorKillBeforeStartStopSignals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	done := h.serve()
	for _, sig := range []int{19, 20, 21, 22} { // SIGSTOP SIGTSTP SIGTTIN SIGTTOU
		if err := h.m.Kill(sig, false); err != nil {
			t.Errorf("Kill(%d): %v", sig, err)
		}
	}
	// Kill ends a container from a goroutine: let it run.
	settle()
	if st := h.m.Status(); st != specs.StateCreated {
		t.Fatalf("a created container got stop signals and is now %s", st)
	}
	h.start()
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Code: 0})
	if st := await(t, done, "Serve"); st != 0 {
		t.Errorf("Serve: %d, want 0", st)
	}
}

// TestMonitorBootFailureConsoleTail: a failed boot shows the last 20 lines
// of the guest's console, sanitised and bounded.
func TestMonitorBootFailureConsoleTail(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var b strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "console line %02d\r\n", i)
	}
	b.WriteString("\x1b]0;evil title\x07" + strings.Repeat("y", 1000) + "\n")
	if err := os.WriteFile(h.cfg.Domain.ConsoleLog, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	ch := h.bootAsync()
	h.handshake()
	h.dom.die(hypervisor.ReasonCrash)
	err := await(t, ch, "Boot")
	if err == nil {
		t.Fatal("Boot succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "console line 11") || !strings.Contains(msg, "console line 12") || !strings.Contains(msg, "console line 30") {
		t.Errorf("console tail is not the last 20 lines:\n%s", msg)
	}
	if strings.ContainsAny(msg, "\x1b\x07\r") {
		t.Errorf("console tail not sanitised: %q", msg)
	}
	if strings.Contains(msg, strings.Repeat("y", 201)) {
		t.Error("a console line longer than 200 bytes was passed on whole")
	}
}

// TestMonitorControlSocketGarbage: a request that is not JSON gets no
// answer and does not disturb the monitor.
func TestMonitorControlSocketGarbage(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.boot()
	for _, junk := range []string{"not json\n", "{\"op\":", strings.Repeat("[", 10000)} {
		c, err := net.Dial("unix", h.cfg.ControlSocket)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte(junk))
		if uc, ok := c.(*net.UnixConn); ok {
			_ = uc.CloseWrite()
		}
		_ = c.SetDeadline(time.Now().Add(hangGuard))
		b, err := io.ReadAll(c)
		c.Close()
		if len(b) != 0 || err != nil {
			t.Errorf("answer to %.20q: %q, %v", junk, b, err)
		}
	}
	if r, err := h.call(monitor.Request{Op: monitor.OpState}); err != nil || r.Status != specs.StateCreated {
		t.Errorf("state after garbage: %+v, %v", r, err)
	}
}

// TestMonitorControlSocketLongPath: a state directory whose control socket
// path is longer than a unix socket address (Docker's state root and a
// 64-digit ID make 110 bytes) still serves state, start and kill, and the
// socket is gone after the exit.
func TestMonitorControlSocketLongPath(t *testing.T) {
	t.Parallel()
	var long string
	h := newHarness(t, withConfig(func(c *monitor.Config) {
		long = filepath.Join(c.Domain.StateDir, "runtime-vxn", "moby", strings.Repeat("f", 64))
		c.ControlSocket = filepath.Join(long, "monitor.sock")
	}))
	if err := os.MkdirAll(long, 0o700); err != nil {
		t.Fatal(err)
	}
	if n := len(h.cfg.ControlSocket); n <= 108 {
		t.Fatalf("the socket path is only %d bytes", n)
	}
	h.boot()
	r, err := h.call(monitor.Request{Op: monitor.OpState})
	if err != nil || r.Status != specs.StateCreated {
		t.Fatalf("state: %+v, %v", r, err)
	}
	done := h.serve()
	startRes := h.callAsync(monitor.Request{Op: monitor.OpStart})
	h.g.mustTake(t, agent.TypeStart, 0)
	h.g.mustSendJSON(t, agent.TypeStarted, 0, agent.Started{Pid: 1})
	if res := await(t, startRes, "start"); res.err != nil || res.resp.Status != specs.StateRunning {
		t.Fatalf("start: %+v, %v", res.resp, res.err)
	}
	if _, err := h.call(monitor.Request{Op: monitor.OpKill, Signal: 9}); err != nil {
		t.Fatal(err)
	}
	h.g.mustTake(t, agent.TypeSignal, 0)
	h.g.mustSendJSON(t, agent.TypeExit, 0, agent.Exit{Signal: 9})
	if st := await(t, done, "Serve"); st != 137 {
		t.Errorf("Serve: %d, want 137", st)
	}
	if _, err := os.Stat(h.cfg.ControlSocket); !os.IsNotExist(err) {
		t.Errorf("control socket after the exit: %v", err)
	}
}
