package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testModulesDep = `kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/xen/xenfs/xenfs.ko: kernel/drivers/xen/xen-privcmd.ko
kernel/drivers/xen/xen-privcmd.ko:
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
`

func testDB(t *testing.T) *moduleDB {
	t.Helper()
	db, err := parseModulesDep(strings.NewReader(testModulesDep))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.addBuiltin(strings.NewReader("kernel/fs/overlayfs/overlay.ko\n")); err != nil {
		t.Fatal(err)
	}
	return db
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/fs/9p/9p.ko":                  "9p",
		"kernel/drivers/xen/xen-evtchn.ko":    "xen_evtchn",
		"kernel/drivers/xen/xen-evtchn.ko.xz": "xen_evtchn",
		"xen-gntdev":                          "xen_gntdev",
		"virtio_pci":                          "virtio_pci",
	} {
		if got := moduleName(in); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestResolveOrder(t *testing.T) {
	db := testDB(t)
	got, err := db.resolve([]string{"9pnet_virtio", "9p", "xenfs", "overlay", "bridge"}, []string{"vsock_loopback"})
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range got {
		if _, dup := pos[m]; dup {
			t.Errorf("%s listed twice", m)
		}
		pos[m] = i
	}
	if len(got) != 12 {
		t.Errorf("got %d modules, want 12 (overlay is built in, vsock_loopback absent): %v", len(got), got)
	}
	for mod, deps := range db.deps {
		if _, ok := pos[mod]; !ok {
			continue
		}
		for _, d := range deps {
			if p, ok := pos[d]; !ok || p > pos[mod] {
				t.Errorf("%s comes before its dependency %s: %v", mod, d, got)
			}
		}
	}
	if _, ok := pos["kernel/drivers/xen/xen-privcmd.ko"]; !ok {
		t.Errorf("xenfs's dependency xen-privcmd is missing: %v", got)
	}
}

func TestResolveErrors(t *testing.T) {
	db := testDB(t)
	if _, err := db.resolve([]string{"nosuchmod"}, nil); err == nil {
		t.Error("a missing required module is no error")
	}
	db.deps["kernel/a.ko"] = []string{"kernel/b.ko"}
	db.deps["kernel/b.ko"] = []string{"kernel/a.ko"}
	db.byName["a"] = "kernel/a.ko"
	if _, err := db.resolve([]string{"a"}, nil); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: got %v", err)
	}
	db.deps["kernel/c.ko"] = []string{"kernel/unlisted.ko"}
	db.byName["c"] = "kernel/c.ko"
	if _, err := db.resolve([]string{"c"}, nil); err == nil {
		t.Error("an unlisted dependency is no error")
	}
	if _, err := parseModulesDep(strings.NewReader("no colon here\n")); err == nil {
		t.Error("a bad modules.dep line is no error")
	}
}

// TestResolveInstalledKernel checks the module list against the installed
// dom0 kernel, if there is one.
func TestResolveInstalledKernel(t *testing.T) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*")
	_, kver, err := pickDom0Kernel(ks)
	if err != nil {
		t.Skip(err)
	}
	spec, err := newInitramfsSpec(kver, "/bin/busybox")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	list := string(spec.moduleListFile())
	for _, m := range []string{"/9p.ko", "/9pnet_virtio.ko", "/virtio_pci.ko", "/xen-blkback.ko", "/xenfs.ko", "/loop.ko", "/bridge.ko"} {
		if !strings.Contains(list, m) {
			t.Errorf("module list lacks %s:\n%s", m, list)
		}
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"6.1.0-9-amd64", "6.1.0-10-amd64", true},
		{"6.1.0-10-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-30-amd64", "6.1.0-1-amd64", true},
		{"6.1.0-56-amd64", "6.1.0-56-amd64", false},
		{"6.1", "6.1.0", true},
		{"6.01", "6.2", true},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestPickDom0Kernel(t *testing.T) {
	p, v, err := pickDom0Kernel([]string{
		"/boot/vmlinuz-6.1.0-56-cloud-amd64",
		"/boot/vmlinuz-6.1.0-9-amd64",
		"/boot/vmlinuz-6.1.0-56-amd64",
		"/boot/vmlinuz-6.1.0-99-cloud-amd64",
		"/boot/xen-4.17-amd64.gz",
	})
	if err != nil || p != "/boot/vmlinuz-6.1.0-56-amd64" || v != "6.1.0-56-amd64" {
		t.Errorf("got %q %q %v", p, v, err)
	}
	if _, _, err := pickDom0Kernel([]string{"/boot/vmlinuz-6.1.0-56-cloud-amd64"}); err == nil {
		t.Error("a cloud kernel was accepted as dom0 kernel")
	}
	if v, err := kernelVersion("/x/vmlinuz-6.1.0-1-amd64"); err != nil || v != "6.1.0-1-amd64" {
		t.Errorf("kernelVersion: %q %v", v, err)
	}
	if _, err := kernelVersion("/x/bzImage"); err == nil {
		t.Error("kernelVersion(bzImage) is no error")
	}
}

type cpioEntry struct {
	mode       uint32
	rmaj, rmin int
	data       string
}

// readCPIO parses a newc archive.
func readCPIO(t *testing.T, b []byte) (map[string]cpioEntry, []string) {
	t.Helper()
	ents := map[string]cpioEntry{}
	var order []string
	align := func(n int) int { return (n + 3) &^ 3 }
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		f := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(v)
		}
		mode, size, rmaj, rmin, nsize := f(1), f(6), f(9), f(10), f(11)
		name := string(b[off+110 : off+110+nsize-1])
		off = align(off + 110 + nsize)
		data := string(b[off : off+size])
		off = align(off + size)
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return ents, order
		}
		if _, dup := ents[name]; dup {
			t.Errorf("%s twice in the archive", name)
		}
		ents[name] = cpioEntry{uint32(mode), rmaj, rmin, data}
		order = append(order, name)
	}
}

func TestCPIO(t *testing.T) {
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	c.Dir("etc", 0o755)
	c.File("/a/b/c.txt", 0o644, []byte("hello"))
	c.File("a/d", 0o755, []byte("1234"))
	c.Symlink("bin/sh", "busybox")
	c.CharDev("dev/console", 0o600, 5, 1)
	c.Dir("a", 0o755)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ents, order := readCPIO(t, buf.Bytes())
	want := []string{"etc", "a", "a/b", "a/b/c.txt", "a/d", "bin", "bin/sh", "dev", "dev/console"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	if e := ents["a/b/c.txt"]; e.data != "hello" || e.mode != modeFile|0o644 {
		t.Errorf("a/b/c.txt: %+v", e)
	}
	if e := ents["bin/sh"]; e.data != "busybox" || e.mode != modeLink|0o777 {
		t.Errorf("bin/sh: %+v", e)
	}
	if e := ents["dev/console"]; e.mode != modeChr|0o600 || e.rmaj != 5 || e.rmin != 1 {
		t.Errorf("dev/console: %+v", e)
	}
	if e := ents["a/b"]; e.mode != modeDir|0o755 {
		t.Errorf("a/b: %+v", e)
	}
}

func TestInitramfs(t *testing.T) {
	dir := t.TempDir()
	mods := filepath.Join(dir, "lib/modules/9.9.9-test")
	for _, m := range []string{"kernel/a.ko", "kernel/sub/b-c.ko"} {
		os.MkdirAll(filepath.Dir(filepath.Join(mods, m)), 0o755)
		os.WriteFile(filepath.Join(mods, m), []byte("module "+m), 0o644)
	}
	bb := filepath.Join(dir, "busybox")
	os.WriteFile(bb, []byte("BUSYBOX"), 0o755)
	spec := &initramfsSpec{
		KernelVersion: "9.9.9-test", ModulesDir: mods,
		Modules: []string{"kernel/sub/b-c.ko", "kernel/a.ko"}, Busybox: bb, Init: initScript,
	}
	work := filepath.Join(dir, "work")
	p, err := buildInitramfs(work, spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := readCPIO(t, b)
	if ents["init"].data != string(initScript) || ents["init"].mode != modeFile|0o755 {
		t.Error("bad /init")
	}
	if ents["bin/busybox"].data != "BUSYBOX" {
		t.Error("bad /bin/busybox")
	}
	if ents["lib/modules/9.9.9-test/kernel/sub/b-c.ko"].data != "module kernel/sub/b-c.ko" {
		t.Error("module missing")
	}
	wantList := "b_c /lib/modules/9.9.9-test/kernel/sub/b-c.ko\na /lib/modules/9.9.9-test/kernel/a.ko\n"
	if got := ents["etc/xenvm/modules"].data; got != wantList {
		t.Errorf("module list %q, want %q", got, wantList)
	}
	for _, n := range []string{"dev/console", "proc", "sys", "dev"} {
		if _, ok := ents[n]; !ok {
			t.Errorf("no %s", n)
		}
	}

	// Cached: same inputs, same file, no rebuild; changed input, new file.
	st1, _ := os.Stat(p)
	p2, err := buildInitramfs(work, spec)
	if err != nil || p2 != p {
		t.Fatalf("second build: %q %v", p2, err)
	}
	if st2, _ := os.Stat(p2); !os.SameFile(st1, st2) {
		t.Error("the initramfs was rebuilt with unchanged inputs")
	}
	spec.Init = append([]byte("# changed\n"), initScript...)
	p3, err := buildInitramfs(work, spec)
	if err != nil || p3 == p {
		t.Errorf("changed init: %q %v", p3, err)
	}
	os.Chtimes(filepath.Join(mods, "kernel/a.ko"), time.Now(), time.Unix(1, 0))
	p4, err := buildInitramfs(work, spec)
	if err != nil || p4 == p3 {
		t.Errorf("changed module: %q %v", p4, err)
	}
}

func TestCachedBuildFailure(t *testing.T) {
	work := t.TempDir()
	_, err := cached(work, "x", ".bin", []byte("0123456789abcdef0123"), func(w io.Writer) error {
		io.WriteString(w, "partial")
		return errors.New("boom")
	})
	if err == nil {
		t.Fatal("no error")
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestInitScriptSyntax(t *testing.T) {
	for _, sh := range []string{"/bin/busybox", "/bin/sh"} {
		if _, err := os.Stat(sh); err != nil {
			continue
		}
		args := []string{"-n", "init.sh"}
		if strings.HasSuffix(sh, "busybox") {
			args = append([]string{"sh"}, args...)
		}
		if out, err := exec.Command(sh, args...).CombinedOutput(); err != nil {
			t.Errorf("%s %v: %v\n%s", sh, args, err, out)
		}
	}
	for _, want := range []string{"/dev/stdin", "/dev/fd", "xenstored", "xen-init-dom0", "xenconsoled",
		"switch_root", "cgroup2", "/run/lock", "/run/xen", "/var/lib/xen", "/var/log/xen", "poweroff -f"} {
		if !bytes.Contains(initScript, []byte(want)) {
			t.Errorf("init.sh does not mention %s", want)
		}
	}
	if !bytes.HasPrefix(initScript, []byte("#!/bin/busybox sh\n")) {
		t.Error("init.sh does not start with #!/bin/busybox sh")
	}
}

func sh(t *testing.T, script string, args ...string) string {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip(err)
	}
	out, err := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sh -c %q: %v\n%s", script, err, out)
	}
	return string(out)
}

func TestShellQuote(t *testing.T) {
	words := []string{"plain", "", "with space", "it's", `"dq" $HOME`, "`cmd`", "a\nb", "*", "~", "x=y", "-n", `back\slash`, "semi;colon|pipe&"}
	var q []string
	for _, w := range words {
		q = append(q, shellQuote(w))
	}
	got := sh(t, "for a in "+strings.Join(q, " ")+`; do printf '[%s]' "$a"; done`)
	var want string
	for _, w := range words {
		want += "[" + w + "]"
	}
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCommandEnv(t *testing.T) {
	host := map[string]string{"GOFLAGS": "-count=1"}
	lookup := func(k string) (string, bool) { v, ok := host[k]; return v, ok }
	env, err := commandEnv("/usr/local/go/bin:/usr/bin:relative:/opt/x", "/r", []string{"A=1", "B=x=y", "GOFLAGS", "HOME=/home/t", "E="}, lookup)
	if err != nil {
		t.Fatal(err)
	}
	wantPath := sanePath + ":/usr/local/go/bin:/opt/x"
	for k, want := range map[string]string{
		"PATH": wantPath, "A": "1", "B": "x=y", "GOFLAGS": "-count=1", "HOME": "/home/t", "E": "",
		"XENVM_RESULTS": "/r", "XENVM": "1", "USER": "root",
	} {
		if got, ok := env[k]; !ok || got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	for _, bad := range []string{"UNSET_ON_HOST", "1X=2", "A-B=1", "=v"} {
		if _, err := commandEnv("", "/r", []string{bad}, lookup); err == nil {
			t.Errorf("-env %q is no error", bad)
		}
	}
}

func TestCommandScript(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"PATH": "/usr/bin:/bin", "FOO": "a 'b' $c", "HOME": "/root"}
	script := commandScript(dir, env, []string{"sh", "-c", `pwd; printf '%s|' "$FOO" "$HOME" "$1"; env | grep -c . >/dev/null`, "arg0", "it's $1"})
	p := filepath.Join(dir, "cmd.sh")
	os.WriteFile(p, []byte(script), 0o644)
	out, err := exec.Command("/usr/bin/env", "-i", "/bin/sh", p).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s\nscript:\n%s", err, out, script)
	}
	want := dir + "\na 'b' $c|/root|it's $1|"
	if string(out) != want {
		t.Errorf("got %q, want %q\nscript:\n%s", out, want, script)
	}
	// A missing directory fails with 125.
	os.WriteFile(p, []byte(commandScript(filepath.Join(dir, "nope"), env, []string{"true"})), 0o644)
	err = exec.Command("/bin/sh", p).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 125 {
		t.Errorf("missing cwd: %v", err)
	}
}

func TestGuestConfig(t *testing.T) {
	c := guestConfig{Results: "/a b/it's", Tmpfs: []string{"/tmp", "/var/tmp"}, GuestLogs: true, RootCache: "loose"}
	got := sh(t, c.script()+`printf '%s|%s|%s|%s' "$XENVM_RESULTS" "$XENVM_TMPFS" "$XENVM_GUEST_LOGS" "$XENVM_ROOT_CACHE"`)
	if want := "/a b/it's|/tmp /var/tmp|1|loose"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFreshTmpfs(t *testing.T) {
	fresh, kept := freshTmpfs([]string{"/tmp", "/var/tmp"}, []string{"/work/main", "xl", "info"})
	if !reflect.DeepEqual(fresh, []string{"/tmp", "/var/tmp"}) || len(kept) != 0 {
		t.Errorf("got %v %v", fresh, kept)
	}
	fresh, kept = freshTmpfs([]string{"/tmp", "/var/tmp"}, []string{"/work/main", "/tmp/e2e.test", "/tmpfoo"})
	if !reflect.DeepEqual(fresh, []string{"/var/tmp"}) || len(kept) != 1 || !strings.Contains(kept[0], "/tmp/e2e.test") {
		t.Errorf("got %v %v", fresh, kept)
	}
	if !under("/tmp", "/tmp") || under("/tmpx", "/tmp") || !under("/tmp/a/../b", "/tmp") {
		t.Error("under")
	}
}

func TestQEMUArgs(t *testing.T) {
	m := &machine{
		QEMU: "qemu-system-x86_64", Xen: "/w/xen.elf", Kernel: "/boot/vmlinuz-1", Initramfs: "/w/a,b.cpio",
		Results: "/r,x", MemMiB: 4096, Dom0Mem: "2048M", SMP: 2, XenArgs: "sched=credit", Quiet: true,
	}
	args := m.args()
	joined := strings.Join(args, " ")
	for _, bad := range []string{"kvm", "-enable-kvm"} {
		if strings.Contains(joined, bad) {
			t.Errorf("args mention %s: %s", bad, joined)
		}
	}
	get := func(opt string) []string {
		var vs []string
		for i := 0; i+1 < len(args); i++ {
			if args[i] == opt {
				vs = append(vs, args[i+1])
			}
		}
		return vs
	}
	eq := func(opt string, want ...string) {
		t.Helper()
		if got := get(opt); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %q, want %q", opt, got, want)
		}
	}
	eq("-accel", "tcg")
	eq("-cpu", "max")
	eq("-smp", "2")
	eq("-m", "4096")
	eq("-kernel", "/w/xen.elf")
	eq("-append", "console=com1 dom0_mem=2048M loglvl=all guest_loglvl=all smap=false smep=false xsave=0 sched=credit")
	eq("-initrd", "/boot/vmlinuz-1 console=hvc0 earlyprintk=xen panic=5 quiet,/w/a,,b.cpio")
	for _, flag := range []string{"-nographic", "-no-reboot"} {
		found := false
		for _, a := range args {
			found = found || a == flag
		}
		if !found {
			t.Errorf("no %s", flag)
		}
	}
	fsdev := get("-fsdev")
	if len(fsdev) != 2 || !strings.Contains(fsdev[0], "path=/,") || !strings.Contains(fsdev[0], "readonly=on") ||
		!strings.Contains(fsdev[1], "path=/r,,x,") || strings.Contains(fsdev[1], "readonly") {
		t.Errorf("-fsdev %q", fsdev)
	}
	dev := strings.Join(get("-device"), " ")
	for _, tag := range []string{"mount_tag=hostroot", "mount_tag=xenvmout"} {
		if !strings.Contains(dev, tag) {
			t.Errorf("no %s in %q", tag, dev)
		}
	}
	m.Quiet, m.Dom0Args = false, "loglevel=4"
	if got := m.dom0Cmdline(); got != "console=hvc0 earlyprintk=xen panic=5 loglevel=4" {
		t.Errorf("dom0 cmdline %q", got)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-env", "A=1", "-env", "B", "-timeout", "5m", "-m", "3072", "--", "xl", "-v", "info"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]string(o.env), []string{"A=1", "B"}) || o.timeout != 5*time.Minute || o.memMiB != 3072 ||
		!reflect.DeepEqual(o.argv, []string{"xl", "-v", "info"}) {
		t.Errorf("got %+v", o)
	}
	if o.results != "out/xenvm/results" || o.work != "out/xenvm" || o.dom0Mem != "2048M" || o.smp != 2 {
		t.Errorf("defaults: %+v", o)
	}
	if _, err := parseFlags([]string{"-results", "x"}, io.Discard); err == nil {
		t.Error("no command is no error")
	}
}

func TestLastLines(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\r\nb\r\nc", 2, "b\nc\n"},
		{"a\nb\n", 5, "a\nb\n"},
		{"", 3, "\n"},
	} {
		if got := lastLines([]byte(c.in), c.n); got != c.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
	p := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(p, []byte(b.String()), 0o644)
	got, err := tailLines(p, 3)
	if err != nil || got != "line 99997\nline 99998\nline 99999\n" {
		t.Errorf("tailLines: %q %v", got, err)
	}
}

func TestLock(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	first, err := lockQEMU(p, func() { t.Error("waited for a free lock") })
	if err != nil {
		t.Fatal(err)
	}
	waiting := make(chan bool, 1)
	got := make(chan error, 1)
	go func() {
		f, err := lockQEMU(p, func() { waiting <- true })
		if f != nil {
			f.Close()
		}
		got <- err
	}()
	select {
	case <-waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the second locker did not wait")
	}
	select {
	case err := <-got:
		t.Fatalf("the second locker got the lock while the first held it: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second locker did not get the released lock")
	}
}

// TestLoadModules runs init.sh's load_modules with a fake insmod that
// fails while a module's dependencies are missing.
func TestLoadModules(t *testing.T) {
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	list := "c /m/c.ko\nb /m/b.ko\na /m/a.ko\nloaded /m/loaded.ko\n"
	os.WriteFile(filepath.Join(dir, "list"), []byte(list), 0o644)
	os.MkdirAll(filepath.Join(dir, "sys", "loaded"), 0o755)
	script := `
. ./init.sh lib
SYSMODULE=$D/sys
insmod() {
	n=${1##*/}; n=${n%.ko}
	echo "insmod $n" >>"$D/log"
	case $n in
	c) [ -d "$SYSMODULE/b" ] || return 1 ;;
	b) [ -d "$SYSMODULE/a" ] || return 1 ;;
	loaded) return 1 ;;
	esac
	mkdir "$SYSMODULE/$n"
}
load_modules "$D/list"
ls "$SYSMODULE" | tr '\n' ' '
`
	cmd := exec.Command(bb, "sh", "-c", script)
	cmd.Env = append(os.Environ(), "D="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := string(out); got != "a b c loaded " {
		t.Errorf("loaded %q", got)
	}
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	// Round 1: c fails, b fails, a loads; round 2: c fails, b loads;
	// round 3: c loads. The loaded module is never insmodded.
	want := "insmod c\ninsmod b\ninsmod a\ninsmod c\ninsmod b\ninsmod c\n"
	if string(log) != want {
		t.Errorf("insmod calls:\n%s\nwant:\n%s", log, want)
	}
}
