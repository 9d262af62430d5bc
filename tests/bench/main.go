// Command bench measures vxn against runc and against bare Xen in one run,
// in a Xen dom0 (issue 6), and prints one table:
//
//   - `runc run` of /bin/true, `vxn run` of it cold (a guest booted per
//     container) and warm (an idle guest of the pool, when the vxn under
//     test has `vxn pool`), N times each: median, p90, ratio to runc;
//   - `vxn create`, `vxn start` and `vxn delete` separately;
//   - a bare boot of vxn's kernel and initramfs: `xl create` of a minimal
//     config until guestinit publishes its agent channel, then `xl destroy`;
//   - rootfs image builds (rootfs.Build, as create does) of generated trees;
//   - stdio throughput through the agent (`vxn exec` of `head -c`, bytes
//     to the exec's stdout) next to a raw vchan (the echo guest);
//   - the monitor's RSS and dom0's memory per running container.
//
// The table and its data go to RESULTS/bench.txt and RESULTS/bench.json;
// the output ends with the line
//
//	bench: warm/runc=X cold/bare=Y stdio/vchan=Z monitor_rss_mib=W
//
// `make bench` builds it and runs it in the xenvm machine.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/libxl"
	"github.com/vxn-runtime/vxn/libxl/xenstore"
	"github.com/vxn-runtime/vxn/libxl/xentest"
	"github.com/vxn-runtime/vxn/libxl/xtl"
	"github.com/vxn-runtime/vxn/runtime/guestkernel"
	"github.com/vxn-runtime/vxn/runtime/rootfs"
	"github.com/vxn-runtime/vxn/tests/testutil"
)

type options struct {
	n          int
	vxn        string
	initramfs  string
	kernel     string
	runc       string
	echoGuest  string
	results    string
	memoryMiB  int
	poolSize   int
	running    int
	stdioMiB   int
	stdioReps  int
	rootfsMiB  string
	rootfsReps int
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 20, "runs of each lifecycle measure")
	flag.StringVar(&o.vxn, "vxn", "", "vxn binary under test (required)")
	flag.StringVar(&o.initramfs, "initramfs", "", "vxn's guest initramfs (required)")
	flag.StringVar(&o.kernel, "kernel", "", "guest kernel, /boot/vmlinuz-VERSION (default: vxn's, the newest generic /boot/vmlinuz-*-amd64)")
	flag.StringVar(&o.runc, "runc", "/usr/sbin/runc", "runc binary")
	flag.StringVar(&o.echoGuest, "echoguest", "", "static echo guest binary for the raw vchan figure (required)")
	flag.StringVar(&o.results, "results", os.Getenv("XENVM_RESULTS"), "directory for bench.txt, bench.json and logs (default $XENVM_RESULTS)")
	flag.IntVar(&o.memoryMiB, "memory", 128, "guest memory in MiB")
	flag.IntVar(&o.poolSize, "pool-size", 3, "idle guests of the warm pool")
	flag.IntVar(&o.running, "running", 4, "containers running at once for the memory figures")
	flag.IntVar(&o.stdioMiB, "stdio-mib", 64, "MiB per stdio and vchan transfer")
	flag.IntVar(&o.stdioReps, "stdio-reps", 3, "transfers of each kind")
	flag.StringVar(&o.rootfsMiB, "rootfs-mib", "10,100,1024", "rootfs tree sizes in MiB, comma-separated")
	flag.IntVar(&o.rootfsReps, "rootfs-reps", 3, "image builds per tree size")
	flag.Parse()
	if err := run(&o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// bench holds what the measures share.
type bench struct {
	o      *options
	r      *report
	work   string
	run    *runner
	vxn    vxnCLI
	bundle string // busybox bundle whose process is /bin/true
}

func run(o *options) error {
	if o.vxn == "" || o.initramfs == "" || o.echoGuest == "" || o.results == "" {
		return errors.New("-vxn, -initramfs, -echoguest and -results (or $XENVM_RESULTS) are required")
	}
	if o.n < 1 || o.running < 1 || o.stdioReps < 1 || o.rootfsReps < 1 || o.stdioMiB < 1 {
		return errors.New("-n, -running, -stdio-reps, -rootfs-reps and -stdio-mib must be positive")
	}
	sizes, err := parseSizes(o.rootfsMiB)
	if err != nil {
		return err
	}
	caps, _ := os.ReadFile("/proc/xen/capabilities")
	if !strings.Contains(string(caps), "control_d") {
		return errors.New("not in a Xen dom0 (make bench runs it in one)")
	}
	// vxn's default guest kernel, whose modules make guest builds into
	// the initramfs.
	if o.kernel == "" {
		if o.kernel, _, err = guestkernel.Newest("/boot"); err != nil {
			return err
		}
	}
	for _, p := range []*string{&o.vxn, &o.initramfs, &o.echoGuest, &o.kernel, &o.results} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(o.results, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "vxn-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	b := &bench{o: o, work: work, run: &runner{scratch: work}}
	b.r = &report{Started: time.Now(), N: o.n, VXN: o.vxn, Runc: o.runc, Kernel: o.kernel,
		Initramfs: o.initramfs, GuestMemoryMiB: o.memoryMiB}
	if err := b.setup(); err != nil {
		return err
	}
	b.section("rootfs", func() error { return b.rootfsBuilds(sizes) })
	b.section("lifecycle", b.lifecycle)
	b.section("memory and stdio", b.memoryAndStdio)
	b.section("vchan", b.vchan)
	b.section("warm", b.warm)
	b.r.Seconds = time.Since(b.r.Started).Seconds()
	b.r.finish()
	if err := b.r.write(os.Stdout); err != nil {
		return err
	}
	if err := b.r.save(o.results); err != nil {
		return err
	}
	if len(b.r.Errors) > 0 {
		return fmt.Errorf("%d measures failed (see the table)", len(b.r.Errors))
	}
	return nil
}

// section runs one group of measures; a failure is reported in the table
// and the run goes on with the next group.
func (b *bench) section(name string, f func() error) {
	start := time.Now()
	fmt.Fprintf(os.Stderr, "bench: %s ...\n", name)
	if err := f(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s failed: %v\n", name, err)
		b.r.Errors = append(b.r.Errors, name+": "+err.Error())
		return
	}
	fmt.Fprintf(os.Stderr, "bench: %s done in %s\n", name, seconds(time.Since(start)))
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("rootfs size %q: give MiB as a positive number", f)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// setup writes vxn's configuration and the bundle, and notes the versions.
func (b *bench) setup() error {
	o := b.o
	cfg, err := json.Marshal(map[string]any{"kernel": o.kernel, "initramfs": o.initramfs,
		"memoryMiB": o.memoryMiB, "bootTimeout": "300s"})
	if err != nil {
		return err
	}
	b.vxn = vxnCLI{bin: o.vxn, root: filepath.Join(b.work, "vxn-state"), config: filepath.Join(b.work, "vxn.json")}
	if err := os.WriteFile(b.vxn.config, cfg, 0o644); err != nil {
		return err
	}
	b.bundle = filepath.Join(b.work, "bundle-true")
	if _, err := testutil.MakeBundle(b.bundle, "/bin/true"); err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	v, err := output(o.vxn, "--version")
	if err != nil {
		return err
	}
	b.r.VXNVersion, _, _ = strings.Cut(strings.TrimSpace(v), "\n")
	mem, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return err
	}
	total, err := kibField(string(mem), "MemTotal")
	if err != nil {
		return err
	}
	b.r.Dom0MemMiB = total >> 10
	if _, err := os.Stat(o.runc); err != nil {
		return fmt.Errorf("runc: %w", err)
	}
	return nil
}

// rootfsBuilds times rootfs.Build (what vxn create runs) on generated
// trees of the given sizes. Tree and image live in a tmpfs of their own,
// sized for them (a default tmpfs stops at half of RAM); a size that does
// not fit in dom0's available memory is skipped.
func (b *bench) rootfsBuilds(sizes []int) error {
	for i, mib := range sizes {
		res, err := b.rootfsBuild(mib, uint64(i+1))
		if err != nil {
			return err
		}
		b.r.Rootfs = append(b.r.Rootfs, res)
	}
	return nil
}

func (b *bench) rootfsBuild(mib int, seed uint64) (res rootfsResult, err error) {
	res.SizeMiB = mib
	total := int64(mib) << 20
	avail, err := memAvailableKiB()
	if err != nil {
		return res, err
	}
	// The tree, its image (the same data plus metadata) and room.
	need := (2*total + total/8 + 256<<20) >> 20
	if avail>>10 < need {
		res.NA = fmt.Sprintf("skipped: dom0 has %d MiB available, the tree and its image need %d MiB", avail>>10, need)
		return res, nil
	}
	dir := filepath.Join(b.work, "rootfs-bench")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return res, err
	}
	defer os.Remove(dir)
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%dm,mode=0700", need)); err != nil {
		return res, fmt.Errorf("tmpfs for the rootfs trees: %w", err)
	}
	defer func() {
		if uerr := unix.Unmount(dir, 0); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmounting %s: %w", dir, uerr))
		}
	}()
	tree := filepath.Join(dir, "tree")
	sizes := fileSizes(total, seed)
	if err := makeTree(tree, sizes); err != nil {
		return res, err
	}
	res.Files, res.Bytes = len(sizes), total
	var times samples
	for k := 0; k < b.o.rootfsReps; k++ {
		img := filepath.Join(dir, "rootfs.img")
		start := time.Now()
		err := rootfs.Build(tree, img)
		took := time.Since(start)
		os.Remove(img)
		if err != nil {
			return res, err
		}
		times = append(times, took)
	}
	for _, d := range times {
		res.SamplesS = append(res.SamplesS, d.Seconds())
	}
	res.MedianS = times.median().Seconds()
	res.MBps = mbps(total, times.median())
	return res, nil
}

// lifecycle measures runc run, bare boots, cold vxn run and cold create,
// start and delete, interleaved (one of each per round), so that a drift
// of the machine's speed touches them all alike.
func (b *bench) lifecycle() error {
	runcRoot := filepath.Join(b.work, "runc-state")
	lg := xtl.NewLogger(xtl.Warn, nil)
	defer lg.Close()
	xl, err := libxl.New(lg)
	if err != nil {
		return err
	}
	defer xl.Close()
	xs, err := xenstore.Open()
	if err != nil {
		return err
	}
	defer xs.Close()
	bare := &bareBoot{kernel: b.o.kernel, initramfs: b.o.initramfs, memoryMiB: b.o.memoryMiB, dir: b.work, xl: xl, xs: xs}

	var runc, cold, create, start, del, bareAll, bareUp, bareDown samples
	defer func() {
		b.r.Lifecycle = append(b.r.Lifecycle,
			newTiming(keyRunc, "runc run true", runc),
			newTiming(keyCold, "vxn run true, cold", cold),
			newTiming(keyCreate, "  vxn create, cold", create),
			newTiming(keyStart, "  vxn start", start),
			newTiming(keyDelete, "  vxn delete", del),
			newTiming(keyBare, "bare xl create+boot+destroy", bareAll),
			newTiming(keyBoot, "  xl create until the agent listens", bareUp),
			newTiming(keyDestr, "  xl destroy", bareDown),
		)
	}()
	for i := 0; i < b.o.n; i++ {
		d, err := b.run.run(b.o.runc, "--root", runcRoot, "run", "--bundle", b.bundle, fmt.Sprintf("bench-runc-%d", i))
		if err != nil {
			return err
		}
		runc = append(runc, d)

		up, down, err := bare.boot(b.run, fmt.Sprintf("bench-bare-%d", i))
		if err != nil {
			return err
		}
		bareUp, bareDown, bareAll = append(bareUp, up), append(bareDown, down), append(bareAll, up+down)

		id := fmt.Sprintf("bench-cold-%d", i)
		if d, err = b.run.run(b.vxn.argv("run", "--bundle", b.bundle, id)...); err != nil {
			b.vxn.forceDelete(id)
			return err
		}
		cold = append(cold, d)

		c, s, dl, err := b.createStartDelete(fmt.Sprintf("bench-csd-%d", i))
		if err != nil {
			return err
		}
		create, start, del = append(create, c), append(start, s), append(del, dl)
		fmt.Fprintf(os.Stderr, "bench: round %d/%d: runc %s, bare %s, vxn run %s, create %s start %s delete %s\n",
			i+1, b.o.n, seconds(runc[i]), seconds(up+down), seconds(cold[i]), seconds(c), seconds(s), seconds(dl))
	}
	return nil
}

// createStartDelete times the three commands separately; the wait for
// the container to stop in between is not counted.
func (b *bench) createStartDelete(id string) (create, start, del time.Duration, err error) {
	defer func() {
		if err != nil {
			b.vxn.forceDelete(id)
		}
	}()
	if create, err = b.run.run(b.vxn.argv("create", "--bundle", b.bundle, id)...); err != nil {
		return
	}
	if start, err = b.run.run(b.vxn.argv("start", id)...); err != nil {
		return
	}
	if err = b.vxn.waitState(id, "stopped", 5*time.Minute); err != nil {
		return
	}
	del, err = b.run.run(b.vxn.argv("delete", id)...)
	return
}

// memoryAndStdio starts the running containers, reads dom0's
// MemAvailable before and with them, their monitors' RSS, then times
// stdio transfers from the first through `vxn exec`.
func (b *bench) memoryAndStdio() error {
	m := &b.r.Memory
	m.Containers = b.o.running
	b.r.Stdio = throughputResult{What: fmt.Sprintf("stdio through the agent, %d MiB (vxn exec head -c)", b.o.stdioMiB),
		Bytes: int64(b.o.stdioMiB) << 20}
	bundle := filepath.Join(b.work, "bundle-sleep")
	if _, err := testutil.MakeBundle(bundle, "sleep", "100000"); err != nil {
		return err
	}
	before, err := memAvailableKiB()
	if err != nil {
		return err
	}
	var ids []string
	var pids []int
	defer func() {
		for _, id := range ids {
			b.vxn.forceDelete(id)
		}
	}()
	for i := 0; i < b.o.running; i++ {
		id := fmt.Sprintf("bench-mem-%d", i)
		pf := filepath.Join(b.work, id+".pid")
		ids = append(ids, id)
		if _, err := b.run.run(b.vxn.argv("create", "--bundle", bundle, "--pid-file", pf, id)...); err != nil {
			return err
		}
		if _, err := b.run.run(b.vxn.argv("start", id)...); err != nil {
			return err
		}
		pid, err := pidFile(pf)
		if err != nil {
			return err
		}
		pids = append(pids, pid)
	}
	for _, id := range ids {
		if st, err := b.vxn.state(id); err != nil || st != "running" {
			return fmt.Errorf("container %s is %q (%v), not running", id, st, err)
		}
	}
	after, err := memAvailableKiB()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		rss, err := procStatusKiB(pid, "VmRSS")
		if err != nil {
			return fmt.Errorf("monitor %d: %w", pid, err)
		}
		m.MonitorRSSMiB = append(m.MonitorRSSMiB, float64(rss)/1024)
	}
	m.MonitorRSSMedian, m.MonitorRSSMax = medianFloat(m.MonitorRSSMiB), maxFloat(m.MonitorRSSMiB)
	m.AvailBeforeMiB, m.AvailAfterMiB = float64(before)/1024, float64(after)/1024
	m.PerContainerMiB = float64(before-after) / 1024 / float64(b.o.running)

	for k := 0; k < b.o.stdioReps; k++ {
		d, err := b.execStream(ids[0], b.r.Stdio.Bytes)
		if err != nil {
			b.r.Stdio.NA = "failed: " + err.Error()
			return err
		}
		b.r.Stdio.MBps = append(b.r.Stdio.MBps, mbps(b.r.Stdio.Bytes, d))
	}
	b.r.Stdio.MedianMBps = medianFloat(b.r.Stdio.MBps)
	hwm, err := procStatusKiB(pids[0], "VmHWM")
	if err != nil {
		return fmt.Errorf("monitor %d: %w", pids[0], err)
	}
	m.StdioMonitorHWMMiB = float64(hwm) / 1024
	return nil
}

// execStream runs `head -c size /dev/zero` in the container with its
// stdout a pipe to this process and times the bytes' arrival.
func (b *bench) execStream(id string, size int64) (time.Duration, error) {
	argv := b.vxn.argv("exec", id, "head", "-c", strconv.FormatInt(size, 10), "/dev/zero")
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
		case <-time.After(cmdTimeout):
			_ = cmd.Process.Kill()
		}
	}()
	took, err := timeStream(out, size)
	if err == nil {
		var extra int64
		if extra, err = io.Copy(io.Discard, out); err == nil && extra > 0 {
			err = fmt.Errorf("%d bytes more than the %d asked for", extra, size)
		}
	}
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = werr
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(stderr.String(), 2000))
	}
	return took, nil
}

// vchan measures the raw vchan figure with the echo guest.
func (b *bench) vchan() error {
	size := int64(b.o.stdioMiB) << 20
	b.r.Vchan = throughputResult{What: fmt.Sprintf("raw vchan, %d MiB (echo guest)", b.o.stdioMiB), Bytes: size}
	img := filepath.Join(b.work, "echoguest.cpio")
	version := strings.TrimPrefix(filepath.Base(b.o.kernel), "vmlinuz-")
	if err := xentest.EchoInitramfs(b.o.echoGuest, version, img); err != nil {
		b.r.Vchan.NA = "failed: " + err.Error()
		return err
	}
	times, err := vchanThroughput(b.o.kernel, img, filepath.Join(b.o.results, "echo-guest-libxl.log"), size, b.o.stdioReps)
	for _, d := range times {
		b.r.Vchan.MBps = append(b.r.Vchan.MBps, mbps(size, d))
	}
	if err != nil {
		b.r.Vchan.NA = "failed: " + err.Error()
		return err
	}
	b.r.Vchan.MedianMBps = medianFloat(b.r.Vchan.MBps)
	return nil
}

// warm measures vxn run with a pool: before each run the pool is full
// (so the run's own boot is never what it waits for, and no replacement
// boots while it runs); a run counts as warm when an idle guest that was
// ready before it has left the pool after it.
func (b *bench) warm() (err error) {
	t := timing{Key: keyWarm, Name: "vxn run true, warm"}
	var times samples
	claimed := 0
	defer func() {
		if len(times) > 0 {
			t = newTiming(keyWarm, t.Name, times)
			t.Note = fmt.Sprintf("%d of %d claimed an idle guest", claimed, len(times))
		} else if t.NA == "" && err != nil {
			t.NA = "failed: " + err.Error()
		}
		b.r.Lifecycle = append(b.r.Lifecycle, t)
	}()
	help, err := output(b.o.vxn, "--help")
	if err != nil {
		return err
	}
	if !hasCommand(help, "pool") {
		t.NA = "n/a (vxn has no pool)"
		return nil
	}
	t.Name = fmt.Sprintf("vxn run true, warm (pool of %d)", b.o.poolSize)
	if _, err := b.run.run(b.vxn.argv("pool", "start", "--size", strconv.Itoa(b.o.poolSize))...); err != nil {
		return err
	}
	defer func() {
		if _, serr := b.run.run(b.vxn.argv("pool", "stop")...); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	for i := 0; i < b.o.n; i++ {
		ready, err := b.vxn.waitPool(b.o.poolSize, 10*time.Minute)
		if err != nil {
			return err
		}
		id := fmt.Sprintf("bench-warm-%d", i)
		d, err := b.run.run(b.vxn.argv("run", "--bundle", b.bundle, id)...)
		if err != nil {
			b.vxn.forceDelete(id)
			return err
		}
		times = append(times, d)
		p, err := b.vxn.poolStatus()
		if err != nil {
			return err
		}
		if p.claimedFrom(ready) {
			claimed++
		}
		fmt.Fprintf(os.Stderr, "bench: warm %d/%d: %s\n", i+1, b.o.n, seconds(d))
	}
	if claimed == 0 {
		return fmt.Errorf("no warm run claimed an idle guest: median %s", seconds(times.median()))
	}
	return nil
}
