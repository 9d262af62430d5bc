// Command xenvm boots real Xen 4.17 with a Linux dom0 inside QEMU (TCG,
// never KVM), runs one command line in dom0 as root and exits with the
// command's exit status. It is the test machine for vxn's end-to-end tests
// on hosts without Xen.
//
// Usage, from the repository root:
//
//	go run ./tests/xenvm [flags] -- CMD [ARGS...]
//
// for example
//
//	go run ./tests/xenvm -- xl info
//	go run ./tests/xenvm -- sh tests/xenvm/smoke-domu.sh
//
// A test suite is compiled on the host and its binary run in dom0:
//
//	go test -c -o out/e2e.test ./tests/e2e
//	go run ./tests/xenvm -env VXN_E2E=1 -- out/e2e.test -test.v
//
// The machine: xenvm unpacks /boot/xen-4.17-amd64.gz and boots it with
// the newest non-cloud /boot/vmlinuz-* as dom0 and a small busybox
// initramfs that it builds and caches under -work (default out/xenvm; it
// is rebuilt when its inputs change). Dom0 sees the host's root filesystem
// at the same paths (virtio-9p, read-only, with a tmpfs overlay on top, so
// everything is writable and every write is lost at the end); /run, /tmp
// and /var/tmp are fresh tmpfs (a /tmp or /var/tmp that holds the cwd or an
// absolute path in the arguments or -env values is kept from the host
// instead, so the path stays visible). Put big disk images in /tmp or
// /var/tmp. Dom0 has the Xen toolstack running (xenstored, xen-init-dom0,
// xenconsoled; xl works), the Xen backend, loop, bridge, tun, veth and
// vsock_loopback modules loaded (modprobe works for the rest), lo up,
// devpts, cgroup2 at /sys/fs/cgroup, and /dev/fd, /dev/stdin for the Xen
// hotplug scripts. No systemd and no udev run there.
//
// The command: it runs as root under /bin/sh in dom0 with the host's cwd
// (-C), stdin /dev/null, and a clean environment: PATH (the usual sbin and
// bin directories, then the host's PATH entries), HOME=/root, TERM=dumb,
// LANG=C.UTF-8, XENVM=1, XENVM_RESULTS and the -env settings. Its stdout
// and stderr, merged, are xenvm's stdout (streamed while it runs) and are
// also kept in RESULTS/command.log.
//
// Results (-results, default out/xenvm/results) is a host directory that
// dom0 mounts writable at the same absolute path; the command finds it in
// $XENVM_RESULTS and should leave its logs there (guest consoles, etc.).
// xenvm writes the serial console (Xen and dom0) to RESULTS/console.log,
// never to stdout, and with -guest-logs (default on) xenconsoled logs
// every guest console to RESULTS/xenconsoled/guest-NAME.log. Files from
// earlier runs in RESULTS are kept, except the ones xenvm itself writes
// (console.log, command.log, .xenvm/, xenconsoled/).
//
// Exit status: the command's (with "go run" every non-zero status becomes
// 1; build the tool with "go build -o out/xenvm-run ./tests/xenvm" to see
// the exact status). If the machine does not boot, the command does not
// report back or -timeout (default 40m) passes, xenvm says so on stderr,
// prints the last 60 lines of the console log and exits with 125. On
// stderr it also prints "xenvm: xen+dom0 ready in N.Ns" once the toolstack
// is up and "xenvm: command finished in N.Ns status S".
//
// Only one QEMU runs at a time: xenvm holds an exclusive flock on
// /tmp/vxn-qemu.lock while QEMU runs and waits for it if it is busy (the
// wait does not count against -timeout). Give each suite its own -results
// so that runs of different suites do not clear each other's logs.
//
// Debugging: -v copies the console to stderr as it comes; without systemd
// in dom0, tools that default to it need cgroupfs settings (podman
// --cgroup-manager=cgroupfs); dom0 has no network beyond lo.
//
// Host packages: qemu-system-x86, xen-hypervisor-4.17-amd64,
// xen-utils-4.17, linux-image-amd64 (dom0), busybox-static; the command
// may need more (linux-image-cloud-amd64 for guests, cpio, e2fsprogs...).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// exitInfra is xenvm's exit status when the machine, not the command, failed.
const exitInfra = 125

type options struct {
	timeout   time.Duration
	work      string
	results   string
	dir       string
	env       stringList
	memMiB    int
	dom0Mem   string
	smp       int
	xenGz     string
	kernel    string
	busybox   string
	qemu      string
	xenArgs   string
	dom0Args  string
	quiet     bool
	verbose   bool
	guestLogs bool
	rootCache string
	lock      string
	argv      []string

	// Set by resolve.
	cmdEnv map[string]string // the command's environment
	tmpfs  []string          // directories with a fresh tmpfs in dom0
}

func parseFlags(args []string, output io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("xenvm", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./tests/xenvm [flags] -- CMD [ARGS...]\n\nRuns CMD as root in the dom0 of a Xen 4.17 machine emulated by QEMU.\nSee the package documentation (go doc ./tests/xenvm) for details.\n\nflags:\n")
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.timeout, "timeout", 40*time.Minute, "kill the machine after this long")
	fs.StringVar(&o.work, "work", "out/xenvm", "work dir: cached hypervisor and dom0 initramfs")
	fs.StringVar(&o.results, "results", "out/xenvm/results", "results dir, writable in dom0 at the same path ($XENVM_RESULTS)")
	fs.StringVar(&o.dir, "C", "", "cwd of the command in dom0 (default: the current directory)")
	fs.Var(&o.env, "env", "`K=V` in the command's environment; K alone passes the host's value (repeatable)")
	fs.IntVar(&o.memMiB, "m", 4096, "machine memory in MiB")
	fs.StringVar(&o.dom0Mem, "dom0-mem", "2048M", "Xen dom0_mem")
	fs.IntVar(&o.smp, "smp", 2, "number of CPUs")
	fs.StringVar(&o.xenGz, "xen", "/boot/xen-4.17-amd64.gz", "gzipped Xen hypervisor")
	fs.StringVar(&o.kernel, "kernel", "", "dom0 kernel (default: newest non-cloud /boot/vmlinuz-*)")
	fs.StringVar(&o.busybox, "busybox", "/bin/busybox", "static busybox for the dom0 initramfs")
	fs.StringVar(&o.qemu, "qemu", "qemu-system-x86_64", "QEMU binary")
	fs.StringVar(&o.xenArgs, "xen-args", "", "extra Xen command line")
	fs.StringVar(&o.dom0Args, "dom0-args", "", "extra dom0 kernel command line")
	fs.BoolVar(&o.quiet, "quiet", false, "boot dom0 with \"quiet\" (fewer kernel messages in the console log)")
	fs.BoolVar(&o.verbose, "v", false, "also copy the console (Xen, dom0) to stderr")
	fs.BoolVar(&o.guestLogs, "guest-logs", true, "let xenconsoled log guest consoles to RESULTS/xenconsoled")
	fs.StringVar(&o.rootCache, "root-cache", "loose", "9p cache mode of the host root in dom0 (none, loose, fscache, mmap)")
	fs.StringVar(&o.lock, "lock", "/tmp/vxn-qemu.lock", "lock file that serializes QEMU runs")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.argv = fs.Args()
	if len(o.argv) == 0 {
		fs.Usage()
		return nil, errors.New("no command given")
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "xenvm: "+format+"\n", args...)
}

func run(args []string) int {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		logf("%v", err)
		return 2
	}
	if err := o.resolve(); err != nil {
		logf("error: %v", err)
		return exitInfra
	}
	m, err := o.prepare()
	if err != nil {
		logf("error: %v", err)
		return exitInfra
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	waitStart := time.Now()
	type lockResult struct {
		f   *os.File
		err error
	}
	locked := make(chan lockResult, 1)
	go func() {
		f, err := lockQEMU(o.lock, func() {
			logf("waiting for %s: another QEMU is running", o.lock)
		})
		locked <- lockResult{f, err}
	}()
	var lock *os.File
	select {
	case r := <-locked:
		if r.err != nil {
			logf("error: %v", r.err)
			return exitInfra
		}
		lock = r.f
	case s := <-sigs:
		logf("error: interrupted by %v while waiting for %s", s, o.lock)
		return exitInfra
	}
	defer lock.Close()
	if w := time.Since(waitStart); w > time.Second {
		logf("got %s after %.1fs", o.lock, w.Seconds())
	}
	return o.boot(m, sigs)
}

// resolve makes the paths absolute and checks the command.
func (o *options) resolve() error {
	var err error
	if o.dir == "" {
		if o.dir, err = os.Getwd(); err != nil {
			return err
		}
	}
	for _, p := range []*string{&o.dir, &o.work, &o.results} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if under(o.dir, "/run") {
		return fmt.Errorf("the command's directory %s is under /run, which is a fresh tmpfs in dom0", o.dir)
	}
	if under(o.results, "/proc") || under(o.results, "/sys") || under(o.results, "/dev") || under(o.results, "/run") {
		return fmt.Errorf("results dir %s: not under /proc, /sys, /dev or /run please", o.results)
	}
	if o.cmdEnv, err = commandEnv(os.Getenv("PATH"), o.results, o.env, os.LookupEnv); err != nil {
		return err
	}
	used := append([]string{o.dir}, o.argv...)
	for _, v := range o.cmdEnv {
		used = append(used, v)
	}
	var kept []string
	o.tmpfs, kept = freshTmpfs([]string{"/tmp", "/var/tmp"}, used)
	for _, k := range kept {
		logf("note: dom0 keeps the host's %s", k)
	}
	return nil
}

// prepare builds or finds the hypervisor, dom0 kernel and initramfs.
func (o *options) prepare() (*machine, error) {
	if _, err := exec.LookPath(o.qemu); err != nil {
		return nil, fmt.Errorf("%v (install qemu-system-x86)", err)
	}
	xen, err := buildXen(o.work, o.xenGz)
	if err != nil {
		return nil, err
	}
	kernel, kver := o.kernel, ""
	if kernel == "" {
		ks, _ := filepath.Glob("/boot/vmlinuz-*")
		if kernel, kver, err = pickDom0Kernel(ks); err != nil {
			return nil, err
		}
	} else if kver, err = kernelVersion(kernel); err != nil {
		return nil, err
	}
	spec, err := newInitramfsSpec(kver, o.busybox)
	if err != nil {
		return nil, err
	}
	initrd, err := buildInitramfs(o.work, spec)
	if err != nil {
		return nil, fmt.Errorf("dom0 initramfs: %w", err)
	}
	return &machine{
		QEMU: o.qemu, Xen: xen, Kernel: kernel, Initramfs: initrd, Results: o.results,
		MemMiB: o.memMiB, Dom0Mem: o.dom0Mem, SMP: o.smp,
		XenArgs: o.xenArgs, Dom0Args: o.dom0Args, Quiet: o.quiet,
	}, nil
}

// Files in RESULTS.
const (
	consoleLog = "console.log" // serial console: Xen and dom0
	commandLog = "command.log" // the command's stdout+stderr
	ctlDir     = ".xenvm"      // control files, see init.sh
)

// writeControl clears what an earlier run left and writes the files the
// dom0 init reads.
func (o *options) writeControl() error {
	ctl := filepath.Join(o.results, ctlDir)
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		return err
	}
	for _, f := range []string{
		filepath.Join(o.results, consoleLog), filepath.Join(o.results, commandLog),
		filepath.Join(ctl, "ready"), filepath.Join(ctl, "status"), filepath.Join(ctl, "fatal"),
		filepath.Join(ctl, "ready.tmp"), filepath.Join(ctl, "status.tmp"),
	} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	// Guest console logs of earlier runs (xenconsoled appends).
	if err := os.RemoveAll(filepath.Join(o.results, "xenconsoled")); err != nil {
		return err
	}
	cfg := guestConfig{Results: o.results, Tmpfs: o.tmpfs, GuestLogs: o.guestLogs, RootCache: o.rootCache}
	if err := os.WriteFile(filepath.Join(ctl, "config"), []byte(cfg.script()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(ctl, "cmd.sh"), []byte(commandScript(o.dir, o.cmdEnv, o.argv)), 0o644)
}

// tailer copies what is appended to a file that may not exist yet.
type tailer struct {
	path string
	f    *os.File
}

func (t *tailer) pump(w io.Writer) {
	if t.f == nil {
		f, err := os.Open(t.path)
		if err != nil {
			return
		}
		t.f = f
	}
	io.Copy(w, t.f)
}

func (t *tailer) close() {
	if t.f != nil {
		t.f.Close()
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// poweroffGrace is how long dom0 gets from reporting the status to QEMU's exit.
const poweroffGrace = 60 * time.Second

// boot runs the machine and returns xenvm's exit status; a signal on sigs
// stops it.
func (o *options) boot(m *machine, sigs <-chan os.Signal) int {
	if err := o.writeControl(); err != nil {
		logf("error: %v", err)
		return exitInfra
	}
	ctl := filepath.Join(o.results, ctlDir)
	conPath := filepath.Join(o.results, consoleLog)
	con, err := os.Create(conPath)
	if err != nil {
		logf("error: %v", err)
		return exitInfra
	}
	defer con.Close()
	cmd := exec.Command(m.QEMU, m.args()...)
	fmt.Fprintf(con, "xenvm: %s %s\n", m.QEMU, strings.Join(m.args(), " "))
	cmd.Stdout, cmd.Stderr = con, con
	if o.verbose {
		w := io.MultiWriter(con, os.Stderr)
		cmd.Stdout, cmd.Stderr = w, w
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf("error: %v", err)
		return exitInfra
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()

	out := &tailer{path: filepath.Join(o.results, commandLog)}
	defer out.close()
	var (
		readyAt, statusAt time.Time
		status            = -1
		failure           string
		qemuErr           error
		killed            bool
	)
	kill := func() {
		if !killed {
			cmd.Process.Kill()
			killed = true
		}
	}
	// check looks at the control files dom0 writes.
	check := func() {
		out.pump(os.Stdout)
		if readyAt.IsZero() {
			if b, err := os.ReadFile(filepath.Join(ctl, "ready")); err == nil {
				readyAt = time.Now()
				logf("xen+dom0 ready in %.1fs", readyAt.Sub(start).Seconds())
				if s := strings.TrimSpace(string(b)); s != "ok" {
					logf("warning: dom0 setup problems: %s (see %s)", s, conPath)
				}
			}
		}
		if status < 0 {
			if b, err := os.ReadFile(filepath.Join(ctl, "status")); err == nil {
				s, err := strconv.Atoi(strings.TrimSpace(string(b)))
				if err != nil || s < 0 || s > 255 {
					failure = fmt.Sprintf("dom0 reported a bad status %q", b)
					kill()
					return
				}
				status, statusAt = s, time.Now()
				from := readyAt
				if from.IsZero() {
					from = start
				}
				out.pump(os.Stdout)
				logf("command finished in %.1fs status %d", statusAt.Sub(from).Seconds(), status)
			}
		}
	}
loop:
	for {
		select {
		case qemuErr = <-exited:
			break loop
		case <-tick.C:
			check()
			if status >= 0 && time.Since(statusAt) > poweroffGrace {
				logf("note: dom0 did not power off %v after the command finished; killing QEMU", poweroffGrace)
				kill()
			}
		case <-deadline.C:
			failure = fmt.Sprintf("timed out (-timeout %v)", o.timeout)
			kill()
		case s := <-sigs:
			failure = fmt.Sprintf("interrupted by %v", s)
			kill()
		}
	}
	if failure == "" {
		check() // dom0 may have reported just before powering off
	}

	out.pump(os.Stdout)
	if failure == "" && status >= 0 {
		return status
	}
	if failure == "" {
		switch {
		case readyAt.IsZero():
			failure = "the machine stopped before dom0 was ready"
		default:
			failure = "the machine stopped before the command reported its status"
		}
		if qemuErr != nil {
			failure += " (qemu: " + qemuErr.Error() + ")"
		}
	}
	if b, err := os.ReadFile(filepath.Join(ctl, "fatal")); err == nil {
		failure += "; dom0 init: " + strings.TrimSpace(string(b))
	}
	logf("error: %s after %.1fs", failure, time.Since(start).Seconds())
	con.Sync()
	if tail, err := tailLines(conPath, 60); err == nil {
		logf("last lines of %s:", conPath)
		os.Stderr.WriteString(tail)
	}
	return exitInfra
}
