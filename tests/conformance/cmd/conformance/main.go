// Command conformance runs the opencontainers runtime-tools validation
// suite against vxn and against runc in the same run, and compares them.
//
// It builds runtimetest (static: it runs inside the containers) and every
// validation/<name> program of the runtime-tools version that this
// module's go.mod pins (v0.9.0, the one the Go module proxy serves),
// from the module cache, into a suite directory together with the
// suite's busybox rootfs tarball. Then, as root, it runs each program
// with RUNTIME set to a generated wrapper script, first for vxn, then for
// runc: the programs call $RUNTIME with runc's command line only, and the
// wrapper adds the global flags (vxn's --config naming the guest kernel
// and initramfs; a private --root for both runtimes, so that whatever a
// test leaves behind is found and force-deleted after it).
//
// Every program has a deadline (-timeout); a program that passes it is
// killed with its whole process group and counts as "not ok". Raw TAP
// goes to RESULTS/RUNTIME/TEST.tap (stderr to .stderr, the runtime's
// --log to .log); RESULTS/summary.json, table.txt and table.md hold the
// comparison. The last line printed is always
//
//	conformance: vxn ok=N notok=N, runc ok=N notok=N
//
// and the exit status is 1 when both runtimes ran and vxn has fewer "ok"
// points than runc, 2 when the harness itself failed.
//
// On real Xen this runs inside dom0 (make conformance boots Xen in QEMU
// for it with tests/xenvm, building the suite on the host first with
// -build-only, as dom0 has no network). With -hypervisor fake it runs vxn
// on the host against its fake hypervisor (guestinit as a host process,
// chroot and no mounts): that is for developing the harness only, and its
// numbers are NOT conformance results.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

type options struct {
	vxn, initramfs, kernel string
	guestMemory            int
	runc                   string
	only                   string
	timeout                time.Duration
	results                string
	hypervisor             string
	fakeGuestinit          string
	suiteDir               string
	module                 string
	buildOnly, rebuild     bool
	report                 bool
}

func parseFlags() *options {
	o := &options{}
	defResults := "out/conformance-results"
	if r := os.Getenv("XENVM_RESULTS"); r != "" {
		defResults = r
	}
	flag.StringVar(&o.vxn, "vxn", "", "vxn binary under test (empty: run runc only)")
	flag.StringVar(&o.initramfs, "initramfs", "", "vxn guest initramfs (make guest); required with -hypervisor xen")
	flag.StringVar(&o.kernel, "kernel", "", "vxn guest kernel (default: vxn's, the newest /boot/vmlinuz-*-cloud-amd64)")
	flag.IntVar(&o.guestMemory, "guest-memory", 128, "vxn guest memory in MiB")
	flag.StringVar(&o.runc, "runc", "/usr/sbin/runc", "runc binary to compare with (\"none\": do not run runc)")
	flag.StringVar(&o.only, "only", "", "run only the validation programs whose name matches this regexp")
	flag.DurationVar(&o.timeout, "timeout", 120*time.Second, "deadline of one validation program; then its process group is killed")
	flag.StringVar(&o.results, "results", defResults, "results directory (default $XENVM_RESULTS in xenvm)")
	flag.StringVar(&o.hypervisor, "hypervisor", "xen", "vxn hypervisor: xen, or fake for host-only development runs (fake results are NOT conformance results)")
	flag.StringVar(&o.fakeGuestinit, "fake-guestinit", "", "guestinit built for host mode, with -hypervisor fake")
	flag.StringVar(&o.suiteDir, "suite", "", "directory of the built suite (default RESULTS/suite); built there when missing")
	flag.StringVar(&o.module, "module", "", "directory of this Go module (default: found from the cwd)")
	flag.BoolVar(&o.buildOnly, "build-only", false, "build the suite into -suite and exit")
	flag.BoolVar(&o.rebuild, "rebuild", false, "build the suite even if -suite holds one")
	flag.BoolVar(&o.report, "report", false, "run nothing: print the report of the run in -results again from its raw TAP")
	flag.Usage = func() {
		w := flag.CommandLine.Output()
		fmt.Fprint(w, `usage: conformance [flags]

Runs the runtime-tools v0.9.0 validation suite against vxn, then runc, as
root, and compares them (see "go doc" of this command). On real Xen, run it
in a Xen dom0: "make conformance" does that inside QEMU with tests/xenvm.

-hypervisor fake runs vxn's fake hypervisor on this host (the container runs
chrooted as a host process, with no mounts). It is for developing the harness;
fake results are not conformance results.

flags:
`)
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	return o
}

func main() {
	os.Exit(run(parseFlags()))
}

func fatalf(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "conformance: "+format+"\n", a...)
	return 2
}

func run(o *options) int {
	var err error
	if o.results, err = filepath.Abs(o.results); err != nil {
		return fatalf("%v", err)
	}
	if o.report {
		return reReport(o.results)
	}
	if err := os.MkdirAll(o.results, 0o755); err != nil {
		return fatalf("%v", err)
	}
	if o.suiteDir == "" {
		o.suiteDir = filepath.Join(o.results, "suite")
	}
	if o.suiteDir, err = filepath.Abs(o.suiteDir); err != nil {
		return fatalf("%v", err)
	}

	// The suite.
	s, loadErr := loadSuite(o.suiteDir)
	if o.buildOnly || o.rebuild || loadErr != nil {
		mod, err := findModule(o.module)
		if err != nil {
			if loadErr != nil && !o.buildOnly && !o.rebuild {
				return fatalf("no built suite (%v) and %v", loadErr, err)
			}
			return fatalf("%v", err)
		}
		if s, err = buildSuite(mod, o.suiteDir, os.Stdout); err != nil {
			return fatalf("building the suite: %v", err)
		}
		if o.buildOnly {
			fmt.Printf("conformance: %s@%s, %d validation programs in %s\n", s.Module, s.Version, len(s.Programs), s.Dir)
			return 0
		}
	}
	var only *regexp.Regexp
	if o.only != "" {
		if only, err = regexp.Compile(o.only); err != nil {
			return fatalf("-only: %v", err)
		}
	}
	var tests []string
	for _, p := range s.Programs {
		if only == nil || only.MatchString(p) {
			tests = append(tests, p)
		}
	}
	if len(tests) == 0 {
		return fatalf("no validation program matches -only %q", o.only)
	}
	if os.Geteuid() != 0 {
		return fatalf("the validation suite creates containers: run it as root")
	}

	work, err := os.MkdirTemp("", "vxn-conformance-")
	if err != nil {
		return fatalf("%v", err)
	}
	defer os.RemoveAll(work)

	// The runtimes under test.
	var rts []*runtimeUT
	if o.vxn != "" {
		rt, err := setupVXN(o, work)
		if err != nil {
			return fatalf("%v", err)
		}
		rts = append(rts, rt)
	}
	if o.runc != "" && o.runc != "none" {
		bin, err := filepath.Abs(o.runc)
		if err != nil {
			return fatalf("%v", err)
		}
		if _, err := os.Stat(bin); err != nil {
			return fatalf("-runc: %v", err)
		}
		rt := &runtimeUT{Name: "runc", Bin: bin, Root: filepath.Join(work, "runc-root")}
		if err := rt.writeWrapper(filepath.Join(o.results, "runc-wrapper")); err != nil {
			return fatalf("%v", err)
		}
		rts = append(rts, rt)
	}
	if len(rts) == 0 {
		return fatalf("nothing to run: give -vxn and/or -runc")
	}

	h := &harness{suite: s, results: o.results, work: work, timeout: o.timeout, out: os.Stdout, xlStart: map[string]bool{}}
	for _, rt := range rts {
		if err := os.MkdirAll(rt.Root, 0o700); err != nil {
			return fatalf("%v", err)
		}
		rt.Version = rt.version()
		if rt.xen {
			for _, d := range xlDomains() {
				h.xlStart[d] = true
			}
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "conformance: %v: stopping after cleanup\n", sig)
		h.interrupt()
	}()

	fmt.Printf("conformance: %s@%s, %d of %d validation programs, timeout %s each, results in %s\n",
		s.Module, s.Version, len(tests), len(s.Programs), o.timeout, o.results)
	if o.vxn != "" && o.hypervisor == "fake" {
		fmt.Println("conformance: vxn runs with -hypervisor fake: these are NOT conformance results")
	}
	for _, rt := range rts {
		fmt.Printf("conformance: %s: %s (%s)\n", rt.Name, rt.Bin, rt.Version)
	}

	var all []result
	began := time.Now()
	wall := map[string]float64{}
	for _, rt := range rts {
		rtBegan := time.Now()
		for i, t := range tests {
			if h.isStopped() {
				break
			}
			r := h.runTest(rt, t)
			all = append(all, r)
			progress(os.Stdout, rt.Name, i+1, len(tests), &r)
		}
		wall[rt.Name] = time.Since(rtBegan).Seconds()
	}
	sum := &summary{
		Suite: s, Runtimes: rts, Hypervisor: o.hypervisor, Timeout: o.timeout.String(),
		WallTime: time.Since(began).Round(time.Second).String(), WallSecs: wall, Results: all,
	}
	code := report(o.results, sum)
	if h.isStopped() {
		return 2
	}
	return code
}

// summary is RESULTS/summary.json.
type summary struct {
	Suite      *suite              `json:"suite"`
	Runtimes   []*runtimeUT        `json:"runtimes"`
	Hypervisor string              `json:"hypervisor"`
	Timeout    string              `json:"timeout"`
	WallTime   string              `json:"wallTime"`
	WallSecs   map[string]float64  `json:"wallSecs"`
	Results    []result            `json:"results"`
	RuncOnly   map[string][]string `json:"runcOnly,omitempty"` // points runc passes and vxn does not
	Final      string              `json:"final"`
}

// rows groups the results by program, in the order they ran.
func (sum *summary) rows() (rows []row, vxnRan, runcRan bool) {
	idx := map[string]int{}
	for i := range sum.Results {
		r := &sum.Results[i]
		j, ok := idx[r.Test]
		if !ok {
			j = len(rows)
			idx[r.Test] = j
			rows = append(rows, row{Test: r.Test})
		}
		switch r.Runtime {
		case "vxn":
			rows[j].VXN = r
		case "runc":
			rows[j].RunC = r
		}
	}
	for _, rt := range sum.Runtimes {
		vxnRan = vxnRan || rt.Name == "vxn"
		runcRan = runcRan || rt.Name == "runc"
	}
	return rows, vxnRan, runcRan
}

// report writes summary.json, table.txt, table.md and runc-only.txt to
// the results directory, prints the table, and returns the exit status.
func report(results string, sum *summary) int {
	rows, vxnRan, runcRan := sum.rows()
	text := textTable(rows, vxnRan, runcRan)
	md := markdownTable(rows, vxnRan, runcRan)
	last := finalLine(rows)
	sum.RuncOnly = runcOnly(rows)
	sum.Final = last
	if err := writeJSON(filepath.Join(results, "summary.json"), sum); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
	}
	_ = os.WriteFile(filepath.Join(results, "table.txt"), []byte(text+last+"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(results, "table.md"), []byte(md), 0o644)
	_ = os.WriteFile(filepath.Join(results, "runc-only.txt"), []byte(runcOnlyText(rows, 0)), 0o644)

	fmt.Println()
	fmt.Print(text)
	fmt.Print(runcOnlyText(rows, 4))
	for _, rt := range sum.Runtimes {
		d := time.Duration(sum.WallSecs[rt.Name] * float64(time.Second)).Round(time.Second)
		fmt.Printf("conformance: %s took %s (%s)\n", rt.Name, d, rt.Version)
	}
	if sum.Hypervisor == "fake" && vxnRan {
		fmt.Println("conformance: vxn ran with -hypervisor fake: these are NOT conformance results")
	}
	fmt.Printf("conformance: wall time %s; results in %s\n", sum.WallTime, results)
	fmt.Println(last)

	_, tv, tc := tableRows(rows)
	if vxnRan && runcRan && tv.OK < tc.OK {
		return 1
	}
	return 0
}

// reReport prints the report of an earlier run again from its results
// directory, re-reading the raw TAP (for changes to the report itself).
func reReport(results string) int {
	b, err := os.ReadFile(filepath.Join(results, "summary.json"))
	if err != nil {
		return fatalf("%v", err)
	}
	sum := &summary{}
	if err := json.Unmarshal(b, sum); err != nil {
		return fatalf("%s: %v", filepath.Join(results, "summary.json"), err)
	}
	for i, r := range sum.Results {
		tap, err := os.ReadFile(filepath.Join(results, r.Runtime, r.Test+".tap"))
		if err != nil {
			return fatalf("%v", err)
		}
		n := settle(parseTAP(bytes.NewReader(tap)), r.Exit, r.TimedOut)
		n.Test, n.Runtime, n.Seconds, n.Leaked, n.Err = r.Test, r.Runtime, r.Seconds, r.Leaked, r.Err
		sum.Results[i] = n
	}
	return report(results, sum)
}

// setupVXN writes vxn's config and wrapper.
func setupVXN(o *options, work string) (*runtimeUT, error) {
	bin, err := filepath.Abs(o.vxn)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("-vxn: %w", err)
	}
	rt := &runtimeUT{Name: "vxn", Bin: bin, Root: filepath.Join(work, "vxn-root")}
	cfg := map[string]any{"memoryMiB": o.guestMemory, "bootTimeout": "300s"}
	abs := func(flagName, p string) (string, error) {
		if p == "" {
			return "", nil
		}
		a, err := filepath.Abs(p)
		if err == nil {
			_, err = os.Stat(a)
		}
		if err != nil {
			return "", fmt.Errorf("-%s: %w", flagName, err)
		}
		return a, nil
	}
	switch o.hypervisor {
	case "xen":
		caps, _ := os.ReadFile("/proc/xen/capabilities")
		if !strings.Contains(string(caps), "control_d") {
			return nil, fmt.Errorf("not in a Xen dom0 (no control_d in /proc/xen/capabilities): run \"make conformance\", or -hypervisor fake for a host-only development run")
		}
		if o.initramfs == "" {
			return nil, fmt.Errorf("-initramfs is required with -hypervisor xen (make guest builds out/initramfs.img)")
		}
		rt.xen = true
	case "fake":
		g, err := abs("fake-guestinit", o.fakeGuestinit)
		if err != nil {
			return nil, err
		}
		if g == "" {
			return nil, fmt.Errorf("-hypervisor fake needs -fake-guestinit (guestinit built for host mode)")
		}
		rt.Env = []string{"VXN_HYPERVISOR=fake", "VXN_FAKE_GUESTINIT=" + g}
	default:
		return nil, fmt.Errorf("-hypervisor %q: use xen or fake", o.hypervisor)
	}
	for _, f := range []struct {
		flag, val, key string
	}{{"initramfs", o.initramfs, "initramfs"}, {"kernel", o.kernel, "kernel"}} {
		a, err := abs(f.flag, f.val)
		if err != nil {
			return nil, err
		}
		if a != "" {
			cfg[f.key] = a
		}
	}
	cfgPath := filepath.Join(o.results, "vxn-config.json")
	b, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(cfgPath, append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	if err := rt.writeWrapper(filepath.Join(o.results, "vxn-wrapper"), "--config", cfgPath, "--debug"); err != nil {
		return nil, err
	}
	return rt, nil
}

// progress prints one line per finished program, with its first failures.
func progress(w *os.File, rt string, i, n int, r *result) {
	fmt.Fprintf(w, "[%s %2d/%d] %-32s %-7s ok=%d notok=%d skip=%d (%.1fs)\n", rt, i, n, r.Test, r.Verdict, r.OK, r.NotOK, r.Skip, r.Seconds)
	for j, f := range r.Failed {
		if j == 3 {
			fmt.Fprintf(w, "      ... %d more\n", len(r.Failed)-3)
			break
		}
		fmt.Fprintf(w, "      not ok: %s\n", f)
	}
	if r.Synthetic > 0 {
		fmt.Fprintf(w, "      not ok: %d point(s) never reported (exit %d)\n", r.Synthetic, r.Exit)
	}
	if r.Err != "" {
		fmt.Fprintf(w, "      harness: %s\n", r.Err)
	}
	if len(r.Leaked) > 0 {
		fmt.Fprintf(w, "      left behind, removed: %s\n", strings.Join(r.Leaked, ", "))
	}
}
