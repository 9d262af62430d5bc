package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

func TestParseMountOptions(t *testing.T) {
	for _, tc := range []struct {
		opts []string
		want mountOptions
	}{
		{nil, mountOptions{}},
		{[]string{"nosuid", "noexec", "nodev", "ro"}, mountOptions{flags: unix.MS_NOSUID | unix.MS_NOEXEC | unix.MS_NODEV | unix.MS_RDONLY}},
		{[]string{"ro", "rw", "suid", "nosuid"}, mountOptions{flags: unix.MS_NOSUID}},
		{[]string{"rbind", "rprivate", "shared"}, mountOptions{flags: unix.MS_BIND | unix.MS_REC, propagation: []uintptr{unix.MS_PRIVATE | unix.MS_REC, unix.MS_SHARED}}},
		{[]string{"nosuid", "strictatime", "mode=755", "size=65536k"}, mountOptions{flags: unix.MS_NOSUID | unix.MS_STRICTATIME, data: []string{"mode=755", "size=65536k"}}},
		{[]string{"newinstance", "ptmxmode=0666", "mode=0620", "gid=5", "defaults", ""}, mountOptions{data: []string{"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}},
		{[]string{"rro", "rnosuid", "rrw"}, mountOptions{attr: unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID, Attr_clr: unix.MOUNT_ATTR_RDONLY}}},
		{[]string{"rnoatime"}, mountOptions{attr: unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}}},
		{[]string{"rnoatime", "rrelatime"}, mountOptions{attr: unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RELATIME, Attr_clr: unix.MOUNT_ATTR__ATIME}}},
		{[]string{"tmpcopyup", "nodev"}, mountOptions{flags: unix.MS_NODEV, tmpcopyup: true}},
	} {
		got, err := parseMountOptions(tc.opts)
		if err != nil {
			t.Errorf("%q: %v", tc.opts, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.opts, got, tc.want)
		}
	}
	if o, _ := parseMountOptions([]string{"rrelatime"}); !o.recursive() {
		t.Error("rrelatime is not recursive")
	}
	if _, err := parseMountOptions([]string{"rbind", "idmap"}); err == nil {
		t.Error("idmap accepted")
	}
}

func TestLoadModules(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "vxn-modules")
	// Listed in the wrong order on purpose: c needs b needs a.
	os.WriteFile(list, []byte("/m/c.ko\n\n# comment\n/m/b.ko\nkernel/a.ko\n/m/loaded.ko\n"), 0o644)
	loaded := map[string]bool{}
	needs := map[string]string{"/m/c.ko": "/m/b.ko", "/m/b.ko": "/lib/modules/kernel/a.ko"}
	var calls int
	load := func(p string) error {
		calls++
		if p == "/m/loaded.ko" {
			return unix.EEXIST
		}
		if d, ok := needs[p]; ok && !loaded[d] {
			return unix.ENOENT // unknown symbol, as the kernel says
		}
		loaded[p] = true
		return nil
	}
	if err := loadModules(list, load); err != nil {
		t.Fatal(err)
	}
	if len(loaded) != 3 || calls != 4+2+1 {
		t.Errorf("loaded %v in %d calls", loaded, calls)
	}

	os.WriteFile(list, []byte("/m/ok.ko\n/m/bad.ko\n"), 0o644)
	calls = 0
	err := loadModules(list, func(p string) error {
		calls++
		if p == "/m/bad.ko" {
			return unix.ENOEXEC
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "bad.ko") || strings.Contains(err.Error(), "ok.ko") || calls != 3 {
		t.Errorf("err %v after %d calls", err, calls)
	}
	if err := loadModules(filepath.Join(dir, "none"), load); err != nil {
		t.Errorf("missing list: %v", err)
	}
}

func TestSysctlPath(t *testing.T) {
	for key, want := range map[string]string{
		"net.ipv4.ip_forward":  "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/ip_forward":  "/proc/sys/net/ipv4/ip_forward",
		"kernel.msgmax":        "/proc/sys/kernel/msgmax",
		"":                     "",
		"..":                   "",
		"kernel...":            "",
		"../../etc/passwd":     "",
		"/kernel/msgmax":       "/proc/sys/kernel/msgmax",
		"kernel//msgmax":       "",
		"net.ipv4.conf..forwa": "",
	} {
		got, err := sysctlPath(key)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("sysctlPath(%q) = %q, %v", key, got, err)
		}
	}
}

func TestRootDevicePath(t *testing.T) {
	for name, want := range map[string]string{"xvda": "/dev/xvda", "loop7": "/dev/loop7", "": "", "../sda": "", "xvd/a": "", ".": "", "-x": ""} {
		got, err := rootDevicePath(name)
		if got != want || (err != nil) != (want == "") {
			t.Errorf("rootDevicePath(%q) = %q, %v", name, got, err)
		}
	}
}

// inNamespaces runs fn on a locked OS thread in new mount, UTS and IPC
// namespaces, so that its mounts, hostname and IPC sysctls do not touch
// the host. The thread ends with fn (it is never unlocked).
func inNamespaces(t *testing.T, fn func()) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Errorf("making / private: %v", err)
			return
		}
		fn()
	}()
	<-done
}

func write(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSetupRoot(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	guestDir := filepath.Join(base, "guestdir") // a bind source the "guest" has
	escape := fmt.Sprintf("vxn-escape-%d", time.Now().UnixNano())
	hostEscape := filepath.Join("/tmp", escape)

	uid := uint32(1000)
	mode := os.FileMode(0o600)
	cfg := &agent.Config{
		Spec: &specs.Spec{
			Root:       &specs.Root{Path: "rootfs", Readonly: true},
			Hostname:   "vxn-test",
			Domainname: "vxn.example",
			Mounts: []specs.Mount{
				{Destination: "/proc", Type: "proc", Source: "proc"},
				{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k", "ro"}},
				{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "mode=0620", "gid=5"}},
				// podman's and Docker's: a bind of the engine's shm directory
				{Destination: "/dev/shm", Type: "bind", Source: "/no/such/host/userdata/shm", Options: []string{"bind", "rprivate", "nosuid", "noexec", "nodev"}},
				{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
				{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
				{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
				{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "tmpcopyup"}},
				{Destination: "/etc/hosts", Type: "bind", Source: "/no/such/host/userdata/hosts", Options: []string{"rbind", "ro"}},
				{Destination: "/etc/resolv.conf", Type: "bind", Source: "/no/such/host/resolv.conf", Options: []string{"bind"}},
				{Destination: "/guest", Type: "bind", Source: guestDir, Options: []string{"rbind", "rro", "nosuid"}},
				{Destination: "/volume", Type: "bind", Source: "/no/such/host/volume", Options: []string{"rbind"}},
				{Destination: "/evil/" + escape, Type: "tmpfs", Source: "tmpfs"},
			},
			Linux: &specs.Linux{
				Devices:       []specs.LinuxDevice{{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode, UID: &uid}},
				Sysctl:        map[string]string{"kernel.msgmax": "12345"},
				MaskedPaths:   []string{"/proc/kcore", "/proc/version", "/sys/firmware", "/proc/no-such"},
				ReadonlyPaths: []string{"/proc/sys", "/proc/no-such"},
			},
		},
		Files: []agent.File{
			{Destination: "/etc/hosts", Mode: 0o644, Data: []byte("127.0.0.1 localhost\n")},
			{Destination: "etc/resolv.conf", Mode: 0o600, Data: []byte("nameserver 10.0.0.1\n")},
			{Destination: "/run/.containerenv", Mode: 0o644, Data: []byte("engine=\"test\"\n"), ReadOnly: true},
		},
	}

	inNamespaces(t, func() {
		if err := unix.Mount("tmpfs", base, "tmpfs", 0, ""); err != nil {
			t.Errorf("mount tmpfs: %v", err)
			return
		}
		// The image, with symlinks that try to leave the root, on a
		// tmpfs that goes away with the namespace.
		write(t, filepath.Join(guestDir, "data"), "guest data")
		write(t, filepath.Join(root, "run/app/state"), "from the image")
		write(t, filepath.Join(root, "run/app/sub/deeper"), "deeper")
		os.Symlink("../state", filepath.Join(root, "run/app/sub/link"))
		unix.Mkfifo(filepath.Join(root, "run/app/fifo"), 0o640)
		os.Lchown(filepath.Join(root, "run/app/sub/link"), 7, 8)
		os.Chmod(filepath.Join(root, "run/app"), 0o750)
		os.MkdirAll(filepath.Join(root, "etc"), 0o755)
		os.Symlink("../../../../../../../../tmp/"+escape, filepath.Join(root, "etc/resolv.conf"))
		os.Symlink("/", filepath.Join(root, "evil"))
		if err := unix.Mount(root, root, "", unix.MS_BIND, ""); err != nil { // the root is a mount, as in the guest
			t.Errorf("bind root: %v", err)
			return
		}

		if err := setupRoot(root, cfg, ""); err != nil {
			t.Errorf("setupRoot: %v", err)
			return
		}
		checkRoot(t, root, escape)
	})
	if _, err := os.Lstat(hostEscape); err == nil {
		os.RemoveAll(hostEscape)
		t.Errorf("a path in the image escaped the root: %s exists", hostEscape)
	}
}

func checkRoot(t *testing.T, root, escape string) {
	r := func(p string) string { return filepath.Join(root, p) }
	readFile := func(p string) string {
		b, err := os.ReadFile(r(p))
		if err != nil {
			t.Errorf("%v", err)
		}
		return string(b)
	}
	if _, err := os.Stat(r("/proc/self/status")); err != nil {
		t.Errorf("no proc: %v", err)
	}
	for p, want := range map[string][3]uint32{
		"/dev/null": {1, 3, 0o666}, "/dev/zero": {1, 5, 0o666}, "/dev/full": {1, 7, 0o666},
		"/dev/random": {1, 8, 0o666}, "/dev/urandom": {1, 9, 0o666}, "/dev/tty": {5, 0, 0o666},
		"/dev/fuse": {10, 229, 0o600},
	} {
		var st unix.Stat_t
		if err := unix.Lstat(r(p), &st); err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != want[0] || unix.Minor(st.Rdev) != want[1] || st.Mode&0o7777 != want[2] {
			t.Errorf("%s: mode %o dev %d,%d", p, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if p == "/dev/fuse" && st.Uid != 1000 {
			t.Errorf("%s: uid %d", p, st.Uid)
		}
	}
	for p, want := range map[string]string{"/dev/ptmx": "pts/ptmx", "/dev/fd": "/proc/self/fd", "/dev/stderr": "/proc/self/fd/2"} {
		if got, err := os.Readlink(r(p)); got != want {
			t.Errorf("%s -> %q, %v", p, got, err)
		}
	}
	if _, err := os.Stat(r("/dev/pts/ptmx")); err != nil {
		t.Errorf("devpts: %v", err)
	}
	if _, err := os.Stat(r("/sys/fs/cgroup/cgroup.controllers")); err != nil {
		t.Errorf("cgroup2: %v", err)
	}
	if got := readFile("/run/app/state"); got != "from the image" {
		t.Errorf("tmpcopyup: %q", got)
	}
	if fi, err := os.Stat(r("/run/app")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("tmpcopyup dir: %v %v", fi, err)
	}
	if got := readFile("/run/app/sub/link"); got != "from the image" {
		t.Errorf("tmpcopyup symlink: %q", got)
	}
	if got := readFile("/run/app/sub/deeper"); got != "deeper" {
		t.Errorf("tmpcopyup nested file: %q", got)
	}
	var lst unix.Stat_t
	if err := unix.Lstat(r("/run/app/sub/link"), &lst); err != nil || lst.Uid != 7 || lst.Gid != 8 {
		t.Errorf("tmpcopyup symlink owner: %d:%d %v", lst.Uid, lst.Gid, err)
	}
	if err := unix.Lstat(r("/run/app/fifo"), &lst); err != nil || lst.Mode != unix.S_IFIFO|0o640 {
		t.Errorf("tmpcopyup fifo: %o %v", lst.Mode, err)
	}
	if got := readFile("/etc/hosts"); got != "127.0.0.1 localhost\n" {
		t.Errorf("/etc/hosts: %q", got)
	}
	if err := os.WriteFile(r("/etc/hosts"), nil, 0); !errors.Is(err, unix.EROFS) {
		t.Errorf("ro file bind /etc/hosts writable: %v", err)
	}
	if err := os.WriteFile(r("/run/.containerenv"), nil, 0); !errors.Is(err, unix.EROFS) {
		t.Errorf("read-only file writable: %v", err)
	}
	// /etc/resolv.conf links out of the root: the file lands inside it.
	if got := readFile("/tmp/" + escape); got != "nameserver 10.0.0.1\n" {
		t.Errorf("resolv.conf through symlink: %q", got)
	}
	if fi, err := os.Stat(r("/tmp/" + escape)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("resolv.conf mode: %v %v", fi, err)
	}
	if got := readFile("/guest/data"); got != "guest data" {
		t.Errorf("guest bind: %q", got)
	}
	if err := os.WriteFile(r("/guest/x"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("rro bind writable: %v", err)
	}
	var shm unix.Statfs_t
	if err := unix.Statfs(r("/dev/shm"), &shm); err != nil || shm.Type != unix.TMPFS_MAGIC || shm.Flags&unix.ST_NOEXEC == 0 {
		t.Errorf("/dev/shm bind: %+v, %v; want a noexec tmpfs", shm, err)
	}
	if fi, err := os.Stat(r("/volume")); err != nil || !fi.IsDir() {
		t.Errorf("host directory bind: %v %v", fi, err)
	}
	// The mount through /evil (-> /) is inside the root.
	var st, rst unix.Statfs_t
	if err := unix.Statfs(r(escape), &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		t.Errorf("mount through symlink: %v", err)
	}
	unix.Statfs(root, &rst)
	if rst.Flags&unix.ST_RDONLY == 0 {
		t.Error("root not read-only")
	}
	if err := os.WriteFile(r("/newfile"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("read-only root writable: %v", err)
	}
	if err := os.WriteFile(r("/run/newfile"), nil, 0o644); err != nil {
		t.Errorf("/run not writable: %v", err)
	}
	unix.Statfs(r("/dev"), &st)
	if st.Flags&unix.ST_RDONLY == 0 || st.Flags&unix.ST_NOSUID == 0 {
		t.Errorf("/dev flags %#x, want read-only and nosuid", st.Flags)
	}
	unix.Statfs(r("/sys"), &st)
	if st.Flags&unix.ST_RDONLY == 0 {
		t.Error("sysfs not read-only")
	}
	// Masked and read-only paths.
	if b, err := os.ReadFile(r("/proc/version")); err != nil || len(b) != 0 {
		t.Errorf("/proc/version not masked: %d bytes, %v", len(b), err)
	}
	if ents, err := os.ReadDir(r("/sys/firmware")); err != nil || len(ents) != 0 {
		t.Errorf("/sys/firmware not masked: %v %v", ents, err)
	}
	if err := os.WriteFile(r("/proc/sys/kernel/msgmax"), []byte("1"), 0); !errors.Is(err, unix.EROFS) {
		t.Errorf("/proc/sys writable: %v", err)
	}
	if got := strings.TrimSpace(readFile("/proc/sys/kernel/msgmax")); got != "12345" {
		t.Errorf("sysctl kernel.msgmax = %q", got)
	}
	var u unix.Utsname
	unix.Uname(&u)
	if h, d := unix.ByteSliceToString(u.Nodename[:]), unix.ByteSliceToString(u.Domainname[:]); h != "vxn-test" || d != "vxn.example" {
		t.Errorf("hostname %q domainname %q", h, d)
	}
}

func TestSetupRootErrors(t *testing.T) {
	for name, m := range map[string]specs.Mount{
		"unknown fs":           {Destination: "/x", Type: "nosuchfs", Source: "none"},
		"tmpcopyup not tmpfs":  {Destination: "/x", Type: "proc", Source: "proc", Options: []string{"tmpcopyup"}},
		"mount on /":           {Destination: "/", Type: "tmpfs", Source: "tmpfs"},
		"idmapped bind":        {Destination: "/x", Type: "bind", Source: "/tmp", Options: []string{"rbind", "idmap"}},
		"bad propagation flag": {Destination: "/x", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuchoption"}},
	} {
		root := t.TempDir()
		inNamespaces(t, func() {
			unix.Mount("tmpfs", root, "tmpfs", 0, "")
			err := setupRoot(root, &agent.Config{Spec: &specs.Spec{Mounts: []specs.Mount{m}}}, "")
			if err == nil {
				t.Errorf("%s: no error", name)
			} else {
				t.Logf("%s: %v", name, err)
			}
		})
	}
}

func TestMountRootDisk(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root")
	}
	for _, tool := range []string{"mke2fs", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "tree/etc/os-release"), "ID=test\n")
	for _, readonly := range []bool{false, true} {
		// An image each: the first one may still be mounted (its
		// namespace is torn down lazily), so it would need recovery.
		img := filepath.Join(dir, fmt.Sprintf("root-%v.img", readonly))
		if out, err := exec.Command("mke2fs", "-q", "-t", "ext4", "-d", filepath.Join(dir, "tree"), img, "8M").CombinedOutput(); err != nil {
			t.Fatalf("mke2fs: %v %s", err, out)
		}
		args := []string{"-f", "--show", img}
		if readonly {
			args = append([]string{"-r"}, args...)
		}
		out, err := exec.Command("losetup", args...).Output()
		if err != nil {
			t.Fatalf("losetup: %v", err)
		}
		dev := strings.TrimSpace(string(out))
		t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
		p, err := rootDevicePath(filepath.Base(dev))
		if err != nil || p != dev {
			t.Fatalf("rootDevicePath(%s) = %s, %v", filepath.Base(dev), p, err)
		}
		if err := waitForDevice(dev, time.Second); err != nil {
			t.Fatal(err)
		}
		mnt := filepath.Join(dir, fmt.Sprintf("mnt-%v", readonly))
		inNamespaces(t, func() {
			if err := mountRootDisk(dev, mnt, readonly); err != nil {
				t.Errorf("mountRootDisk(readonly=%v): %v", readonly, err)
				return
			}
			if b, err := os.ReadFile(filepath.Join(mnt, "etc/os-release")); err != nil || string(b) != "ID=test\n" {
				t.Errorf("read %q, %v", b, err)
			}
		})
	}
	start := time.Now()
	if err := waitForDevice("/dev/vxn-no-such-disk", 50*time.Millisecond); err == nil || time.Since(start) < 50*time.Millisecond {
		t.Errorf("waitForDevice of a missing device: %v after %v", err, time.Since(start))
	}
	if err := waitForDevice("/dev/null", time.Second); err == nil {
		t.Error("/dev/null taken for a block device")
	}
}

func TestContainerFSPaths(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink("../../..", filepath.Join(root, "etc/up"))
	os.Symlink("/nowhere/deep", filepath.Join(root, "dangling"))
	d, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c := &containerFS{path: root, dir: d}

	for p, want := range map[string]string{
		"/etc/up/x":      "/x",
		"etc/../../../y": "/y",
		"/dangling/z":    "/nowhere/deep/z",
		"/":              "/",
	} {
		if got, err := c.resolve(p); got != want || err != nil {
			t.Errorf("resolve(%q) = %q, %v; want %q", p, got, err, want)
		}
	}
	h, err := c.mkdirAll("/etc/up/made/here")
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := os.Stat(filepath.Join(root, "made/here")); err != nil {
		t.Errorf("mkdirAll through a symlink: %v", err)
	}
	if h, err = c.mkdirAll("/dangling/z"); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := os.Stat(filepath.Join(root, "nowhere/deep/z")); err != nil {
		t.Errorf("mkdirAll through a dangling symlink: %v", err)
	}
	// A symlink where resolve saw none (a race) is refused.
	if _, err := c.mkdirAllResolved("/etc/up/x"); !errors.Is(err, unix.ELOOP) {
		t.Errorf("mkdirAllResolved through a symlink: %v", err)
	}
	if h, err = c.open("/etc/up/etc/up/etc"); err != nil {
		t.Errorf("open through symlinks: %v", err)
	} else {
		var st, want unix.Stat_t
		unix.Fstat(int(h.Fd()), &st)
		unix.Stat(filepath.Join(root, "etc"), &want)
		if st.Ino != want.Ino {
			t.Error("open through symlinks left the root")
		}
		h.Close()
	}
	if _, err := os.Stat(filepath.Join(base, "made")); err == nil {
		t.Error("mkdirAll escaped the root")
	}
}
