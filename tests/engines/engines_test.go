// Package engines runs container engines on vxn on real Xen: podman with
// conmon, Docker (dockerd + containerd) and containerd's ctr, as their
// users run them, on a busybox image made here (no registry). Each test is
// named after its engine and feature (TestPodmanExec, TestDockerRunRm,
// TestContainerdExec...).
//
// The tests configure the machine they run on: they mount tmpfs on the
// engines' storage directories and write /etc/vxn/config.json,
// /etc/containers/containers.conf, /etc/containers/storage.conf and
// /etc/docker/daemon.json. So they run only in the dom0 of the
// tests/xenvm machine (XENVM=1, everything written there is thrown away):
// `make engines`. Elsewhere they skip, except TestImageArchive, which
// checks the image archive the engines load.
//
// Daemons start once, when the first test of their engine needs them, and
// serve every test of that engine; their logs go to $XENVM_RESULTS.
package engines

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var (
	vxnBin    = flag.String("vxn", "", "vxn binary under test (absolute path)")
	initramfs = flag.String("initramfs", "", "guest initramfs (make guest)")
	kernel    = flag.String("kernel", "", "guest kernel (default: vxn's)")
)

// image is the busybox image every engine runs, loaded from imageArchive.
const image = "localhost/vxn-busybox:latest"

var (
	imageArchive string // docker-archive tarball (see image_test.go)
	dom0UUID     string // dom0's /sys/hypervisor/uuid: a container must not see it
	resultsDir   = os.Getenv("XENVM_RESULTS")
)

// vxnRoot is vxn's default state root, which podman uses.
const vxnRoot = "/run/vxn"

// storageDirs get a tmpfs each: dom0's root is an overlay on 9p, where
// the engines' overlay storage does not work.
var storageDirs = []string{"/var/lib/containers", "/var/lib/docker", "/var/lib/containerd"}

func TestMain(m *testing.M) {
	flag.Parse()
	caps, _ := os.ReadFile("/proc/xen/capabilities")
	inMachine = strings.Contains(string(caps), "control_d") && os.Getenv("XENVM") == "1"
	if !inMachine {
		// Only the tests that need no engine run (the image's).
		os.Exit(m.Run())
	}
	if !filepath.IsAbs(*vxnBin) || *initramfs == "" {
		fmt.Println("engines: -vxn (an absolute path) and -initramfs are required")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "vxn-engines")
	if err == nil {
		err = setupMachine(dir)
	}
	if err != nil {
		fmt.Println("engines: setting up the machine:", err)
		os.Exit(2)
	}
	code := m.Run()
	stopDaemons()
	os.RemoveAll(dir)
	os.Exit(code)
}

// inMachine says that the tests run in the dom0 of the tests/xenvm machine.
var inMachine bool

// needMachine skips a test that runs an engine outside the machine.
func needMachine(t testing.TB) {
	t.Helper()
	if !inMachine {
		t.Skip("not in the dom0 of the tests/xenvm machine (run `make engines`)")
	}
}

// setupMachine prepares storage, the configuration files and the image.
func setupMachine(dir string) error {
	uuid, err := os.ReadFile(domainUUIDFile)
	if err != nil {
		return err
	}
	dom0UUID = strings.TrimSpace(string(uuid))
	for _, d := range storageDirs {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "mode=0711"); err != nil {
			return fmt.Errorf("mounting a tmpfs on %s: %w", d, err)
		}
	}
	vxnConfig := fmt.Sprintf(`{"initramfs": %q, "kernel": %q, "memoryMiB": 128, "bootTimeout": "300s"}`, *initramfs, *kernel)
	files := map[string]string{
		"/etc/vxn/config.json":            vxnConfig + "\n",
		"/etc/containers/containers.conf": podmanConf(*vxnBin),
		"/etc/containers/storage.conf":    podmanStorageConf,
		"/etc/docker/daemon.json":         dockerDaemonJSON(*vxnBin),
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	imageArchive = filepath.Join(dir, "vxn-busybox.tar")
	return writeImageArchive(imageArchive, image)
}

// result is what a command did.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout: %q\nstderr: %q", r.code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
}

// cmdTimeout bounds every engine command: a container boot takes 10-40 s
// under QEMU's emulation, a stop up to the 10 s stop timeout more.
const cmdTimeout = 4 * time.Minute

// run runs a command with stdin (may be empty) and logs what it did.
func run(t testing.TB, stdin string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// The daemons' children must not hold the pipes: wait for the
	// command alone.
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v (%s)", name, strings.Join(args, " "), err, r)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: no answer in %s (%s)", name, strings.Join(args, " "), cmdTimeout, r)
	}
	t.Logf("TIMING %s %s: %s (exit %d)", filepath.Base(name), strings.Join(args, " "), r.took.Round(time.Millisecond), r.code)
	return r
}

// mustRun runs a command that must succeed.
func mustRun(t testing.TB, name string, args ...string) result {
	t.Helper()
	r := run(t, "", name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: %s", name, strings.Join(args, " "), r)
	}
	return r
}

// domainUUIDFile gives the UUID of the Xen domain a kernel runs in; dom0
// and a guest may run the same kernel, but not in the same domain.
const domainUUIDFile = "/sys/hypervisor/uuid"

// printDomain is shell that prints the UUID of the domain it runs in.
const printDomain = "cat " + domainUUIDFile

var uuidRegexp = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// checkInGuest checks what printDomain printed in a container: the UUID of
// a domain that is not dom0.
func checkInGuest(t testing.TB, uuid string) {
	t.Helper()
	if !uuidRegexp.MatchString(uuid) || uuid == dom0UUID {
		t.Errorf("the container's domain UUID is %q: not a guest's (dom0's is %s)", uuid, dom0UUID)
	}
}

// checkGuestOutput checks the output of guestCommand(want).
func checkGuestOutput(t testing.TB, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(r.stdout, "\r", "")), "\n")
	if r.code != 0 || len(lines) != 2 || lines[0] != want {
		t.Fatalf("want %q and the guest's domain UUID: %s", want, r)
	}
	checkInGuest(t, lines[1])
}

// guestCommand prints want and the UUID of the container's domain.
func guestCommand(want string) []string {
	return []string{"sh", "-c", "echo " + want + "; " + printDomain}
}

// checkNoDomain checks that the container's guest is gone.
func checkNoDomain(t testing.TB, id string) {
	t.Helper()
	if id == "" {
		t.Fatal("no container id to check")
	}
	out, err := exec.Command("xl", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("xl list: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "vxn-"+id {
			t.Errorf("domain vxn-%s left behind:\n%s", id, out)
		}
	}
}

// waitFor polls f until it returns true or the timeout passes.
func waitFor(t testing.TB, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !f(); time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
	}
}

// saveVxnLogs keeps the monitor and guest console logs of the containers
// under a vxn state root when a test failed.
func saveVxnLogs(t testing.TB, root string) {
	if !t.Failed() || resultsDir == "" {
		return
	}
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		for _, f := range []string{"monitor.log", "console.log"} {
			b, err := os.ReadFile(filepath.Join(root, e.Name(), f))
			if err == nil {
				_ = os.WriteFile(filepath.Join(resultsDir, t.Name()+"-"+e.Name()+"-"+f), b, 0o644)
			}
		}
	}
}

// daemon is a long-running engine process, started once.
type daemon struct {
	once   sync.Once
	err    error
	cmd    *exec.Cmd
	exited chan struct{}
}

var (
	daemonsMu sync.Mutex
	daemons   []*daemon
)

// start runs the daemon's command with its output in RESULTS/log and
// waits until ready says it answers.
func (d *daemon) start(t testing.TB, log string, ready func() error, name string, args ...string) {
	t.Helper()
	d.once.Do(func() {
		d.err = d.launch(log, ready, name, args...)
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
}

func (d *daemon) launch(log string, ready func() error, name string, args ...string) error {
	logDir := resultsDir
	if logDir == "" {
		logDir = os.TempDir()
	}
	f, err := os.Create(filepath.Join(logDir, log))
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	d.cmd = exec.Command(name, args...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	daemonsMu.Lock()
	daemons = append(daemons, d)
	daemonsMu.Unlock()
	d.exited = make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	for {
		err := ready()
		if err == nil {
			fmt.Printf("engines: %s ready in %s\n", filepath.Base(name), time.Since(start).Round(time.Millisecond))
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("%s exited at start (%v); see %s", name, err, f.Name())
		case <-time.After(500 * time.Millisecond):
		}
		if time.Since(start) > 3*time.Minute {
			return fmt.Errorf("%s not ready after 3 minutes: %v; see %s", name, err, f.Name())
		}
	}
}

// stopDaemons stops the daemons, the last started first.
func stopDaemons() {
	daemonsMu.Lock()
	defer daemonsMu.Unlock()
	for i := len(daemons) - 1; i >= 0; i-- {
		d := daemons[i]
		_ = d.cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
		}
	}
}

// setupOnce runs a setup (load an image, start a shared container) for the
// first test that needs it and hands its value to the later ones. When it
// fails, every later test that needs it fails too, naming the first.
type setupOnce struct {
	mu       sync.Mutex
	value    string
	failedIn string
}

func (o *setupOnce) do(t testing.TB, setup func(testing.TB) string) string {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failedIn != "" {
		t.Fatalf("needs what %s failed to set up", o.failedIn)
	}
	if o.value == "" {
		// Still set if setup fails the test (t.Fatal leaves through here).
		o.failedIn = t.Name()
		o.value = setup(t)
		o.failedIn = ""
	}
	return o.value
}

// quietRun runs a command for a readiness check, without logging it.
func quietRun(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
