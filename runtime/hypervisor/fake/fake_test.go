package fake_test

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/hypervisor/fake"
)

// standinEnv, when set, makes the test binary a stand-in for guestinit in
// host mode (the fake hypervisor runs it with -host-mode -agent-socket S
// -rootfs R). Its value says how it behaves:
//
//	exit=N     listen on S, echo lines on one connection, exit N at EOF
//	nolisten   never listen; wait to be killed
const standinEnv = "VXN_FAKE_TEST_STANDIN"

const hangGuard = 20 * time.Second

func TestMain(m *testing.M) {
	if mode := os.Getenv(standinEnv); mode != "" {
		// syscall.Exit: a -race binary exiting 0 through os.Exit sleeps a
		// second for the race detector's report.
		syscall.Exit(standin(mode))
	}
	os.Exit(m.Run())
}

func standin(mode string) int {
	fs := flag.NewFlagSet("guestinit", flag.ContinueOnError)
	hostMode := fs.Bool("host-mode", false, "")
	socket := fs.String("agent-socket", "", "")
	rootfs := fs.String("rootfs", "", "")
	if err := fs.Parse(os.Args[1:]); err != nil || !*hostMode || *socket == "" || *rootfs == "" {
		fmt.Println("standin: bad arguments", os.Args[1:])
		return 2
	}
	// Pause and resume arrive as SIGUSR1 and SIGUSR2: note them, live on.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range sigs {
			fmt.Println("standin: got", s)
		}
	}()
	fmt.Printf("standin: pid %d rootfs %s\n", os.Getpid(), *rootfs)
	if mode == "nolisten" {
		select {}
	}
	code, err := strconv.Atoi(strings.TrimPrefix(mode, "exit="))
	if err != nil {
		fmt.Println("standin: bad mode", mode)
		return 2
	}
	l, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Println("standin:", err)
		return 2
	}
	c, err := l.Accept()
	if err != nil {
		return 2
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		_, _ = c.Write([]byte("echo " + line))
	}
	fmt.Println("standin: connection closed, exiting", code)
	return code
}

// newHV is a fake hypervisor whose guestinit is this test binary acting
// as stand-in in the given mode.
func newHV(t *testing.T, mode string) *fake.Hypervisor {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the fake hypervisor needs root")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(standinEnv, mode)
	h, err := fake.New(filepath.Join(shortDir(t), "registry"), exe)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "vxnfake")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func spec(t *testing.T, name string) hypervisor.DomainSpec {
	dir := shortDir(t)
	return hypervisor.DomainSpec{
		Name: name, StateDir: dir, RootfsDir: dir, ConsoleLog: filepath.Join(dir, "console.log"),
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return c
}

// create makes a domain that is destroyed at the end of the test.
func create(t *testing.T, h *fake.Hypervisor, s hypervisor.DomainSpec) hypervisor.Domain {
	t.Helper()
	d, err := h.Create(ctx(t), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = d.Destroy(context.Background()) })
	return d
}

func record(h *fake.Hypervisor, name string) string { return filepath.Join(h.Dir, name+".json") }

func TestNewRefusesEmptyGuestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reg")
	if _, err := fake.New(dir, ""); err == nil || !strings.Contains(err.Error(), "no guestinit") {
		t.Errorf("New with no guestinit: %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("a refused New made its registry")
	}
}

func TestNewMakesRegistry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	dir := filepath.Join(t.TempDir(), "a", "reg")
	h, err := fake.New(dir, "/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if h.Dir != dir || h.GuestInit != "/bin/true" {
		t.Errorf("New: %+v", h)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("registry: %v, %v", st, err)
	}
	if err := h.Close(); err != nil {
		t.Error(err)
	}
}

// TestCreateConnectWaitPoweroff: a guest that exits 0 when its agent
// connection closes has powered off.
func TestCreateConnectWaitPoweroff(t *testing.T) {
	h := newHV(t, "exit=0")
	s := spec(t, "vxn-poweroff")
	d := create(t, h, s)
	if d.Name() != "vxn-poweroff" {
		t.Errorf("Name: %q", d.Name())
	}
	st, err := os.Stat(record(h, s.Name))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("registry record: %v, %v", st, err)
	}
	rw, err := d.Connect(ctx(t))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	if _, err := rw.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(rw).ReadString('\n')
	if err != nil || line != "echo ping\n" {
		t.Fatalf("through the agent socket: %q, %v", line, err)
	}

	info, err := d.Info(ctx(t))
	if err != nil || info.Name != s.Name || info.State != hypervisor.StateRunning || info.ID == 0 {
		t.Fatalf("Info: %+v, %v", info, err)
	}
	// The guest is PID 1 of a pid namespace of its own; ID is its host PID.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", info.ID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), fmt.Sprintf("NSpid:\t%d\t1\n", info.ID)) {
		t.Errorf("guest %d is not PID 1 of its own namespace:\n%s", info.ID, status)
	}
	if l, err := h.Lookup(ctx(t), s.Name); err != nil || l.Name() != s.Name {
		t.Errorf("Lookup of a running guest: %v", err)
	}

	waited := make(chan hypervisor.ShutdownReason, 1)
	go func() {
		r, err := d.Wait(context.Background())
		if err != nil {
			t.Errorf("Wait: %v", err)
		}
		waited <- r
	}()
	rw.Close()
	select {
	case r := <-waited:
		if r != hypervisor.ReasonPoweroff {
			t.Errorf("Wait: %s, want poweroff", r)
		}
	case <-time.After(hangGuard):
		t.Fatal("Wait did not return after the guest exited")
	}
	if _, err := os.Stat(record(h, s.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the record of a stopped guest remains: %v", err)
	}
	if _, err := h.Lookup(ctx(t), s.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup of a stopped guest: %v", err)
	}
	if _, err := d.Info(ctx(t)); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Info of a stopped guest: %v", err)
	}
	if err := d.Pause(ctx(t)); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Pause of a stopped guest: %v", err)
	}
	if err := d.Destroy(ctx(t)); err != nil {
		t.Errorf("Destroy of a stopped guest: %v", err)
	}
	log, _ := os.ReadFile(s.ConsoleLog)
	if !strings.Contains(string(log), "standin: pid 1 rootfs "+s.RootfsDir) || !strings.Contains(string(log), "exiting 0") {
		t.Errorf("console log:\n%s", log)
	}
}

// TestWaitCrash: a guest that exits non-zero has crashed.
func TestWaitCrash(t *testing.T) {
	h := newHV(t, "exit=1")
	d := create(t, h, spec(t, "vxn-crash"))
	rw, err := d.Connect(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	rw.Close()
	r, err := d.Wait(ctx(t))
	if err != nil || r != hypervisor.ReasonCrash {
		t.Errorf("Wait: %s, %v; want crash", r, err)
	}
}

// TestLookupDestroy: another process (here another Domain value) finds the
// guest by name in the registry and destroys it.
func TestLookupDestroy(t *testing.T) {
	h := newHV(t, "exit=0")
	s := spec(t, "vxn-orphan")
	d := create(t, h, s)
	info, err := d.Info(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	// As delete does: a hypervisor of its own on the same registry.
	h2, err := fake.New(h.Dir, h.GuestInit)
	if err != nil {
		t.Fatal(err)
	}
	l, err := h2.Lookup(ctx(t), s.Name)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if li, err := l.Info(ctx(t)); err != nil || li.ID != info.ID || li.State != hypervisor.StateRunning {
		t.Errorf("Info through Lookup: %+v, %v; want ID %d", li, err, info.ID)
	}
	if err := l.Destroy(ctx(t)); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/status", info.ID)); err == nil {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", info.ID)); !strings.Contains(string(b), ") Z ") {
			t.Errorf("the guest lives on after Destroy: %s", b)
		}
	}
	r, err := d.Wait(ctx(t))
	if err != nil || r != hypervisor.ReasonDestroyed {
		t.Errorf("creator's Wait: %s, %v; want destroyed", r, err)
	}
	if r, err := l.Wait(ctx(t)); err != nil || r != hypervisor.ReasonUnknown {
		t.Errorf("Wait through Lookup: %s, %v", r, err)
	}
	if _, err := h2.Lookup(ctx(t), s.Name); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup after Destroy: %v", err)
	}
	if _, err := os.Stat(record(h, s.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record after Destroy: %v", err)
	}
	if err := l.Destroy(ctx(t)); err != nil {
		t.Errorf("Destroy twice: %v", err)
	}
	if _, err := l.Connect(ctx(t)); err == nil {
		t.Error("Connect to a destroyed guest succeeded")
	}
}

// TestCreateSameNameTwice: names are unique.
func TestCreateSameNameTwice(t *testing.T) {
	h := newHV(t, "exit=0")
	s := spec(t, "vxn-dup")
	d := create(t, h, s)
	s2 := spec(t, "vxn-dup")
	if d2, err := h.Create(ctx(t), s2); err == nil || !strings.Contains(err.Error(), "already exists") {
		if d2 != nil {
			_ = d2.Destroy(context.Background())
		}
		t.Errorf("second Create of a name: %v", err)
	}
	if _, err := d.Info(ctx(t)); err != nil {
		t.Errorf("the first guest after a refused second: %v", err)
	}
	if _, err := os.Stat(s2.ConsoleLog); err == nil {
		t.Error("the refused Create started a guest (it has a console log)")
	}
}

func TestCreateInvalidName(t *testing.T) {
	h := newHV(t, "exit=0")
	for _, name := range []string{"", "a/b", "../x"} {
		if d, err := h.Create(ctx(t), spec(t, name)); err == nil {
			_ = d.Destroy(context.Background())
			t.Errorf("Create(%q) succeeded", name)
		}
	}
}

func TestCreateMissingGuestInit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	h, err := fake.New(shortDir(t), "/nonexistent/guestinit")
	if err != nil {
		t.Fatal(err)
	}
	s := spec(t, "vxn-missing")
	if d, err := h.Create(ctx(t), s); err == nil {
		_ = d.Destroy(context.Background())
		t.Fatal("Create with a missing guestinit succeeded")
	}
	if _, err := os.Stat(record(h, s.Name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Create left a record: %v", err)
	}
}

// TestConnectGuestGone: Connect gives up when the guest stops before its
// agent listens, and when its context ends.
func TestConnectGuestGone(t *testing.T) {
	h := newHV(t, "nolisten")
	d := create(t, h, spec(t, "vxn-nolisten"))
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := d.Connect(short); err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Connect with an ending context: %v", err)
	}
	res := make(chan error, 1)
	go func() {
		_, err := d.Connect(ctx(t))
		res <- err
	}()
	if err := d.Destroy(ctx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err == nil || !strings.Contains(err.Error(), "stopped before its agent listened") {
			t.Errorf("Connect to a guest that stopped: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Connect did not notice the guest stopped")
	}
}

// TestPauseUnpause: the pause state is kept in the registry, so another
// process sees it.
func TestPauseUnpause(t *testing.T) {
	h := newHV(t, "exit=0")
	s := spec(t, "vxn-pause")
	d := create(t, h, s)
	// Once its agent listens the guest handles the pause signals (as
	// guestinit, which sets that up first).
	rw, err := d.Connect(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Pause(ctx(t)); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if info, err := d.Info(ctx(t)); err != nil || info.State != hypervisor.StatePaused {
		t.Errorf("Info after Pause: %+v, %v", info, err)
	}
	l, err := h.Lookup(ctx(t), s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := l.Info(ctx(t)); err != nil || info.State != hypervisor.StatePaused {
		t.Errorf("Info through Lookup after Pause: %+v, %v", info, err)
	}
	if err := l.Unpause(ctx(t)); err != nil {
		t.Fatalf("Unpause: %v", err)
	}
	if info, err := d.Info(ctx(t)); err != nil || info.State != hypervisor.StateRunning {
		t.Errorf("Info after Unpause: %+v, %v", info, err)
	}
	// The guest got both signals and lives.
	deadline := time.Now().Add(hangGuard)
	for {
		log, _ := os.ReadFile(s.ConsoleLog)
		if strings.Contains(string(log), "user defined signal 1") && strings.Contains(string(log), "user defined signal 2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guest did not get SIGUSR1 and SIGUSR2; console:\n%s", log)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rw.Close()
	if r, err := d.Wait(ctx(t)); err != nil || r != hypervisor.ReasonPoweroff {
		t.Errorf("Wait: %s, %v", r, err)
	}
}

// TestLookupStaleRecords: a record that is corrupt or names a process that
// is gone is not a guest, and is removed.
func TestLookupStaleRecords(t *testing.T) {
	h := newHV(t, "exit=0")
	if _, err := h.Lookup(ctx(t), "vxn-none"); !errors.Is(err, hypervisor.ErrNotFound) {
		t.Errorf("Lookup of an unknown name: %v", err)
	}
	for name, rec := range map[string]string{
		"vxn-corrupt": "{not json",
		"vxn-dead":    `{"pid":1073741823,"start":1,"socket":"/nonexistent"}`,
		"vxn-reused":  fmt.Sprintf(`{"pid":%d,"start":1,"socket":"/nonexistent"}`, os.Getpid()),
	} {
		if err := os.WriteFile(record(h, name), []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Lookup(ctx(t), name); !errors.Is(err, hypervisor.ErrNotFound) {
			t.Errorf("Lookup(%s): %v", name, err)
		}
		if _, err := os.Stat(record(h, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale record %s kept: %v", name, err)
		}
	}
}

var _ io.Closer = (*fake.Hypervisor)(nil)
