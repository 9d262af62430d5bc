// Package e2e runs vxn on real Xen: every test boots real DomUs through
// libxl. It runs inside a Xen dom0 (`make e2e` boots Xen 4.17 in QEMU for
// it with tests/xenvm) and skips everywhere else.
package e2e

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/monitor"
	"github.com/vxn-runtime/vxn/tests/testutil"
)

var (
	vxnBin    = flag.String("vxn", "", "vxn binary under test")
	initramfs = flag.String("initramfs", "", "guest initramfs (make guest)")
	kernel    = flag.String("kernel", "", "guest kernel (default: vxn's, the newest generic /boot/vmlinuz-*-amd64)")
)

// configFile is the vxn config every test uses.
var configFile string

func TestMain(m *testing.M) {
	testutil.RunWaiterIfAsked()
	flag.Parse()
	caps, _ := os.ReadFile("/proc/xen/capabilities")
	if !strings.Contains(string(caps), "control_d") {
		fmt.Println("e2e: not in a Xen dom0; skipping (run `make e2e`)")
		os.Exit(0)
	}
	if *vxnBin == "" || *initramfs == "" {
		fmt.Println("e2e: -vxn and -initramfs are required")
		os.Exit(2)
	}
	dir, err := os.MkdirTemp("", "vxn-e2e")
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	configFile = filepath.Join(dir, "config.json")
	cfg, _ := json.Marshal(map[string]any{"kernel": *kernel, "initramfs": *initramfs, "memoryMiB": 128, "bootTimeout": "300s"})
	if err := os.WriteFile(configFile, cfg, 0o644); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli returns a vxn CLI with its own state root.
func cli(t *testing.T) testutil.CLI {
	t.Helper()
	c := testutil.CLI{Bin: *vxnBin, Root: t.TempDir(), Global: []string{"--config", configFile, "--debug"}}
	t.Cleanup(func() {
		if t.Failed() {
			saveLogs(t, c.Root)
		}
	})
	return c
}

// saveLogs keeps the monitor and guest console logs of a failed test in
// the results directory.
func saveLogs(t *testing.T, root string) {
	res := os.Getenv("XENVM_RESULTS")
	ents, _ := os.ReadDir(root)
	for _, e := range ents {
		for _, f := range []string{"monitor.log", "console.log"} {
			b, err := os.ReadFile(filepath.Join(root, e.Name(), f))
			if err != nil {
				continue
			}
			t.Logf("=== %s/%s (last 3000 bytes):\n%s", e.Name(), f, tail(b, 3000))
			if res != "" {
				_ = os.WriteFile(filepath.Join(res, t.Name()+"-"+e.Name()+"-"+f), b, 0o644)
			}
		}
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// assertClean checks that nothing of a deleted container is left: no
// domain, no loop device on its image, no state directory.
func assertClean(t *testing.T, c testutil.CLI, id string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(c.Root, id)); !os.IsNotExist(err) {
		t.Errorf("state directory of %s left behind (%v)", id, err)
	}
	out, _ := exec.Command("xl", "list").CombinedOutput()
	if strings.Contains(string(out), "vxn-"+id+" ") || strings.Contains(string(out), "vxn-"+id+"\n") {
		t.Errorf("domain vxn-%s left behind:\n%s", id, out)
	}
	loops, _ := exec.Command("losetup", "-a").CombinedOutput()
	if strings.Contains(string(loops), c.Root) {
		t.Errorf("loop device left behind:\n%s", loops)
	}
}

func TestRunEcho(t *testing.T) {
	c := cli(t)
	b, _ := testutil.Bundle(t, "/bin/echo", "hello from xen")
	start := time.Now()
	r := c.Run(t, nil, "run", "--bundle", b, "echo1")
	t.Logf("vxn run took %s", time.Since(start))
	if r.Code != 0 || r.Stdout != "hello from xen\n" {
		t.Fatalf("run: %v", r)
	}
	assertClean(t, c, "echo1")
}

func TestLifecycleTimes(t *testing.T) {
	c := cli(t)
	b, _ := testutil.Bundle(t, "sh", "-c", "exit 0")
	step := func(name string, args ...string) {
		start := time.Now()
		c.MustRun(t, args...)
		t.Logf("TIMING %s: %s", name, time.Since(start).Round(time.Millisecond))
	}
	step("create", "create", "--bundle", b, "times")
	if st := c.State(t, "times"); st.Status != specs.StateCreated {
		t.Fatalf("after create: %s", st.Status)
	}
	step("start", "start", "times")
	c.WaitStatus(t, "times", specs.StateStopped, 2*time.Minute)
	step("delete", "delete", "times")
	assertClean(t, c, "times")
}

func TestExitStatus42(t *testing.T) {
	c := cli(t)
	b, _ := testutil.Bundle(t, "sh", "-c", "exit 42")
	if r := c.Run(t, nil, "run", "--bundle", b, "exit42"); r.Code != 42 {
		t.Fatalf("vxn run: %v, want exit 42", r)
	}
	if got := c.CreateStartWait(t, "exit42w", b); got != 42 {
		t.Fatalf("waiter on the pid-file PID saw %d, want 42", got)
	}
	c.MustRun(t, "delete", "exit42w")
	assertClean(t, c, "exit42")
	assertClean(t, c, "exit42w")
}

func TestStdoutStderrSeparate(t *testing.T) {
	c := cli(t)
	b, _ := testutil.Bundle(t, "sh", "-c", "echo to-out; echo to-err >&2")
	r := c.Run(t, nil, "run", "--bundle", b, "streams")
	if r.Code != 0 || r.Stdout != "to-out\n" || r.Stderr != "to-err\n" {
		t.Fatalf("run: %v", r)
	}
}

func TestStdinMiB(t *testing.T) {
	c := cli(t)
	data := make([]byte, 1<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	b, _ := testutil.Bundle(t, "sha256sum")
	start := time.Now()
	r := c.Run(t, bytes.NewReader(data), "run", "--bundle", b, "stdin")
	t.Logf("1 MiB through stdin: %s", time.Since(start))
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, hex.EncodeToString(sum[:])) {
		t.Fatalf("run: %v, want sum %x", r, sum)
	}
	b2, _ := testutil.Bundle(t, "cat")
	r = c.Run(t, bytes.NewReader(data), "run", "--bundle", b2, "stdin-cat")
	if got := sha256.Sum256([]byte(r.Stdout)); r.Code != 0 || got != sum {
		t.Fatalf("cat: exit %d, %d bytes back, checksum mismatch", r.Code, len(r.Stdout))
	}
}

func TestTerminal(t *testing.T) {
	c := cli(t)
	b, spec := testutil.Bundle(t, "sh", "-c", "tty; sleep 2; stty size; echo done")
	spec.Process.Terminal = true
	testutil.WriteSpec(t, b, spec)
	sock := filepath.Join(t.TempDir(), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan *os.File, 1)
	go func() {
		f, err := monitor.RecvConsole(ln)
		if err != nil {
			t.Error(err)
		}
		got <- f
	}()
	c.MustRun(t, "create", "--bundle", b, "--console-socket", sock, "tty1")
	master := <-got
	if master == nil {
		t.FailNow()
	}
	defer master.Close()
	c.MustRun(t, "start", "tty1")
	time.Sleep(500 * time.Millisecond)
	if err := unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 101}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 4096)
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "done") && time.Now().Before(deadline) {
		_ = master.SetReadDeadline(deadline)
		n, err := master.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	s := out.String()
	if !strings.Contains(s, "/dev/pts/") || !strings.Contains(s, "33 101") {
		t.Fatalf("terminal output %q: want a /dev/pts tty and size 33 101", s)
	}
	c.WaitStatus(t, "tty1", specs.StateStopped, time.Minute)
	c.MustRun(t, "delete", "tty1")
	assertClean(t, c, "tty1")
}

func TestProcessEnvironment(t *testing.T) {
	c := cli(t)
	b, spec := testutil.Bundle(t, "sh", "-c", `echo "env=$GREETING cwd=$(pwd) id=$(id -u):$(id -g) host=$(hostname) nofile=$(ulimit -n)"`)
	spec.Process.Env = append(spec.Process.Env, "GREETING=hi-there")
	spec.Process.Cwd = "/tmp"
	spec.Process.User = specs.User{UID: 1000, GID: 1000}
	spec.Hostname = "xen-box"
	spec.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 777, Hard: 888}}
	testutil.WriteSpec(t, b, spec)
	r := c.Run(t, nil, "run", "--bundle", b, "env1")
	want := "env=hi-there cwd=/tmp id=1000:1000 host=xen-box nofile=777\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("run: %v, want stdout %q", r, want)
	}
}

func TestKill(t *testing.T) {
	for _, tc := range []struct {
		sig    string
		status int
	}{{"TERM", 143}, {"KILL", 137}} {
		t.Run(tc.sig, func(t *testing.T) {
			c := cli(t)
			// The shell traps nothing: TERM kills it (it is not PID 1 of
			// the guest, so default actions apply).
			b, _ := testutil.Bundle(t, "sleep", "600")
			id := "kill-" + strings.ToLower(tc.sig)
			c.MustRun(t, "create", "--bundle", b, id)
			c.MustRun(t, "start", id)
			c.WaitStatus(t, id, specs.StateRunning, time.Minute)
			c.MustRun(t, "kill", id, tc.sig)
			c.WaitStatus(t, id, specs.StateStopped, time.Minute)
			c.MustRun(t, "delete", id)
			assertClean(t, c, id)
		})
	}
}

func TestKillStatusSeenByWaiter(t *testing.T) {
	c := cli(t)
	b, _ := testutil.Bundle(t, "sh", "-c", "kill -9 $$")
	if got := c.CreateStartWait(t, "selfkill", b); got != 137 {
		t.Fatalf("waiter saw %d, want 137", got)
	}
	c.MustRun(t, "delete", "selfkill")
	assertClean(t, c, "selfkill")
}

func TestDeleteForceRunning(t *testing.T) {
	c := cli(t)
	b, _ := testutil.Bundle(t, "sleep", "600")
	c.MustRun(t, "create", "--bundle", b, "busy")
	c.MustRun(t, "start", "busy")
	if r := c.Run(t, nil, "delete", "busy"); r.Code == 0 || !strings.Contains(r.Stderr, "not stopped") {
		t.Fatalf("delete of a running container: %v", r)
	}
	c.MustRun(t, "delete", "--force", "busy")
	assertClean(t, c, "busy")
}

func TestTenInARow(t *testing.T) {
	c := cli(t)
	b, _ := testutil.Bundle(t, "echo", "ok")
	before := domains(t)
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("row%d", i)
		if r := c.Run(t, nil, "run", "--bundle", b, id); r.Code != 0 || r.Stdout != "ok\n" {
			t.Fatalf("run %d: %v", i, r)
		}
		assertClean(t, c, id)
	}
	if after := domains(t); after != before {
		t.Fatalf("domains before %d, after %d", before, after)
	}
	if ents, _ := os.ReadDir(c.Root); len(ents) > 1 { // only the fake/xen registry may stay
		t.Fatalf("state root not empty: %v", ents)
	}
}

func domains(t *testing.T) int {
	out, err := exec.Command("xl", "list").Output()
	if err != nil {
		t.Fatalf("xl list: %v", err)
	}
	return strings.Count(string(out), "\n")
}

func TestGuestKernelCrash(t *testing.T) {
	c := cli(t)
	b, spec := testutil.Bundle(t, "sh", "-c", "echo c > /proc/sysrq-trigger; sleep 60")
	// The default spec makes /proc/sysrq-trigger read-only, as runc's does.
	spec.Linux.ReadonlyPaths = nil
	testutil.WriteSpec(t, b, spec)
	r := c.Run(t, nil, "run", "--bundle", b, "crash")
	if r.Code == 0 {
		t.Fatalf("a crashed guest reported success: %v", r)
	}
	t.Logf("crash reported as exit %d", r.Code)
	assertClean(t, c, "crash")
}

func TestExec(t *testing.T) {
	c := cli(t)
	b, _ := testutil.Bundle(t, "sleep", "600")
	c.MustRun(t, "create", "--bundle", b, "exec1")
	c.MustRun(t, "start", "exec1")
	c.WaitStatus(t, "exec1", specs.StateRunning, time.Minute)
	start := time.Now()
	r := c.Run(t, nil, "exec", "exec1", "sh", "-c", "echo out; echo err >&2; exit 5")
	t.Logf("TIMING exec: %s", time.Since(start).Round(time.Millisecond))
	if r.Code != 5 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Fatalf("exec: %v", r)
	}
	if r := c.Run(t, strings.NewReader("through exec\n"), "exec", "exec1", "cat"); r.Code != 0 || r.Stdout != "through exec\n" {
		t.Fatalf("exec with stdin: %v", r)
	}
	if r := c.Run(t, nil, "ps", "exec1"); r.Code != 0 || !strings.Contains(r.Stdout, "sleep 600") {
		t.Fatalf("ps: %v", r)
	}
	c.MustRun(t, "delete", "--force", "exec1")
	assertClean(t, c, "exec1")
}

// TestResources: linux.resources size the domain (memory = limit + the
// guest's overhead, credit2 cap and weight, vCPUs) and the container's
// cgroup in the guest shows the same limits at /sys/fs/cgroup.
func TestResources(t *testing.T) {
	c := cli(t)
	b, spec := testutil.Bundle(t, "sleep", "600")
	limit, quota, period, shares, pids := int64(96<<20), int64(150000), uint64(100000), uint64(2048), int64(99)
	spec.Linux.Resources = &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit},
		CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period, Shares: &shares},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid"}})
	testutil.WriteSpec(t, b, spec)
	c.MustRun(t, "create", "--bundle", b, "res1")
	defer c.Run(t, nil, "delete", "--force", "res1")
	c.MustRun(t, "start", "res1")
	c.WaitStatus(t, "res1", specs.StateRunning, time.Minute)
	r := c.Run(t, nil, "exec", "res1", "sh", "-c",
		"cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max /sys/fs/cgroup/pids.max /proc/self/cgroup; grep -c ^processor /proc/cpuinfo")
	want := "100663296\n150000 100000\n99\n0::/\n2\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("in the guest: %v, want stdout %q", r, want)
	}
	out, err := exec.Command("xl", "list", "-l", "vxn-res1").Output()
	if err != nil {
		t.Fatalf("xl list -l: %v", err)
	}
	var doms []struct {
		Config struct {
			BInfo struct {
				MaxMemKB uint64 `json:"max_memkb"`
				MaxVCPUs int    `json:"max_vcpus"`
				Sched    struct {
					Weight int `json:"weight"`
					Cap    int `json:"cap"`
				} `json:"sched_params"`
			} `json:"b_info"`
		} `json:"config"`
	}
	if err := json.Unmarshal(out, &doms); err != nil || len(doms) != 1 {
		t.Fatalf("xl list -l: %v\n%s", err, out)
	}
	bi := doms[0].Config.BInfo
	// 96 MiB limit + 96 MiB default overhead; 1.5 CPUs: 2 vCPUs capped at
	// 150%; shares 2048: weight 512.
	if bi.MaxMemKB != 192<<10 || bi.MaxVCPUs != 2 || bi.Sched.Cap != 150 || bi.Sched.Weight != 512 {
		t.Errorf("domain: %+v", bi)
	}

	// update: smaller limits reach the guest's cgroup and the domain.
	c.MustRun(t, "update", "--memory", "32m", "--cpu-quota", "50000", "--pids-limit", "-1", "res1")
	r = c.Run(t, nil, "exec", "res1", "cat", "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/pids.max")
	if want := "33554432\n50000 100000\nmax\n"; r.Code != 0 || r.Stdout != want {
		t.Errorf("after update, in the guest: %v, want stdout %q", r, want)
	}
	out, _ = exec.Command("xl", "sched-credit2", "-d", "vxn-res1").CombinedOutput()
	if f := strings.Fields(string(out)); len(f) < 2 || f[len(f)-1] != "50" {
		t.Errorf("credit2 cap after update (want 50):\n%s", out)
	}
	out, _ = exec.Command("xl", "list", "vxn-res1").CombinedOutput()
	t.Logf("after update:\n%s", out)
	if r := c.Run(t, nil, "update", "--memory", "1g", "res1"); r.Code == 0 || !strings.Contains(r.Stderr, "booted with 192 MiB") {
		t.Errorf("update beyond the boot size: %v", r)
	}
	c.MustRun(t, "delete", "--force", "res1")
	assertClean(t, c, "res1")
}
