package rootfs_test

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/rootfs"
)

// tool finds an e2fsprogs tool; the tests skip without it.
func tool(t *testing.T, name string) string {
	t.Helper()
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Skipf("%s (e2fsprogs) not installed", name)
	return ""
}

func needMke2fs(t *testing.T) {
	t.Helper()
	if _, err := rootfs.Mke2fs(); errors.Is(err, rootfs.ErrNoMke2fs) {
		t.Skip("mke2fs not installed")
	}
}

// debugfs runs one debugfs request against img and returns its stdout.
func debugfs(t *testing.T, img, req string) string {
	t.Helper()
	cmd := exec.Command(tool(t, "debugfs"), "-R", req, img)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("debugfs -R %q: %v: %s", req, err, errb.String())
	}
	// debugfs exits 0 on a missing path and says so on stderr.
	if s := errb.String(); strings.Contains(s, "not found") {
		t.Fatalf("debugfs -R %q: %s", req, s)
	}
	return out.String()
}

// inode is what `debugfs stat` says of a path.
type inode struct {
	typ        string
	mode       uint32
	uid, gid   int
	size       int64
	links      int
	mtime      int64
	linkTarget string
}

var (
	reType  = regexp.MustCompile(`Type: (\S+)\s+Mode:\s+(\d+)`)
	reOwner = regexp.MustCompile(`User:\s+(\d+)\s+Group:\s+(\d+)`)
	reSize  = regexp.MustCompile(`\sSize: (\d+)`)
	reLinks = regexp.MustCompile(`Links: (\d+)`)
	reMtime = regexp.MustCompile(`mtime: 0x([0-9a-f]+)`)
	reFast  = regexp.MustCompile(`Fast link dest: "(.*)"`)
)

func stat(t *testing.T, img, path string) inode {
	t.Helper()
	s := debugfs(t, img, "stat "+path)
	var in inode
	m := reType.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("debugfs stat %s: %q", path, s)
	}
	in.typ = m[1]
	mode, _ := strconv.ParseUint(m[2], 8, 32)
	in.mode = uint32(mode)
	if m := reOwner.FindStringSubmatch(s); m != nil {
		in.uid, _ = strconv.Atoi(m[1])
		in.gid, _ = strconv.Atoi(m[2])
	}
	if m := reSize.FindStringSubmatch(s); m != nil {
		in.size, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reLinks.FindStringSubmatch(s); m != nil {
		in.links, _ = strconv.Atoi(m[1])
	}
	if m := reMtime.FindStringSubmatch(s); m != nil {
		in.mtime, _ = strconv.ParseInt(m[1], 16, 64)
	}
	if m := reFast.FindStringSubmatch(s); m != nil {
		in.linkTarget = m[1]
	}
	return in
}

func write(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// tree makes a small rootfs: files, modes, an owner, links, an empty
// directory, a fifo, a large file and a sparse one.
func tree(t *testing.T) (string, []byte) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree has files owned by another user")
	}
	dir := t.TempDir()
	write(t, filepath.Join(dir, "hello.txt"), "hello, rootfs\n", 0o644)
	write(t, filepath.Join(dir, "secret"), "s3cret", 0o600)
	if err := os.Chown(filepath.Join(dir, "secret"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "bin", "tool"), "#!/bin/sh\necho tool\n", 0o755)
	write(t, filepath.Join(dir, "bin", "suid"), "x", os.ModeSetuid|0o755)
	write(t, filepath.Join(dir, "sub", "dir", "nested.txt"), "deep\n", 0o640)
	if err := os.Symlink("hello.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/does-not-exist", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "hello.txt"), filepath.Join(dir, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20+123)
	rand.New(rand.NewSource(1)).Read(big)
	write(t, filepath.Join(dir, "big.bin"), string(big), 0o644)
	sparse, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sparse.WriteAt([]byte("end"), 8<<20); err != nil {
		t.Fatal(err)
	}
	sparse.Close()
	mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "hello.txt"), mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return dir, big
}

// TestBuild builds an image of a tree and reads every kind of entry back
// with debugfs.
func TestBuild(t *testing.T) {
	needMke2fs(t)
	dir, big := tree(t)
	img := filepath.Join(t.TempDir(), "rootfs.img")
	if err := rootfs.Build(dir, img); err != nil {
		t.Fatalf("Build: %v", err)
	}

	// The image: private, sized for the content plus headroom, sparse.
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("image mode %v, want 0600", st.Mode().Perm())
	}
	used, err := rootfs.Size(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size()%(1<<20) != 0 || st.Size() < used+rootfs.Headroom {
		t.Errorf("image size %d: want a whole number of MiB, at least content %d + headroom %d", st.Size(), used, rootfs.Headroom)
	}
	if alloc := st.Sys().(*syscall.Stat_t).Blocks * 512; alloc > st.Size()/2 {
		t.Errorf("image of %d bytes allocates %d: not sparse", st.Size(), alloc)
	}

	// A clean ext4 without a journal or reserved blocks, labelled.
	if out, err := exec.Command(tool(t, "e2fsck"), "-fn", img).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
	stats := debugfs(t, img, "stats")
	for _, want := range []string{"Filesystem volume name:   vxn-rootfs", "Reserved block count:     0"} {
		if !strings.Contains(stats, want) {
			t.Errorf("stats lack %q", want)
		}
	}
	if m := regexp.MustCompile(`Filesystem features:\s+(.*)`).FindStringSubmatch(stats); m == nil || strings.Contains(m[1], "has_journal") || !strings.Contains(m[1], "extent") {
		t.Errorf("features: %q", m)
	}
	if m := regexp.MustCompile(`Block count:\s+(\d+)`).FindStringSubmatch(stats); m != nil {
		bs := regexp.MustCompile(`Block size:\s+(\d+)`).FindStringSubmatch(stats)
		n, _ := strconv.ParseInt(m[1], 10, 64)
		b, _ := strconv.ParseInt(bs[1], 10, 64)
		if n*b != st.Size() {
			t.Errorf("file system of %d bytes in an image of %d", n*b, st.Size())
		}
	}

	for _, c := range []struct {
		path     string
		typ      string
		mode     uint32
		uid, gid int
	}{
		{"/hello.txt", "regular", 0o644, 0, 0},
		{"/secret", "regular", 0o600, 1000, 1000},
		{"/bin/tool", "regular", 0o755, 0, 0},
		{"/bin/suid", "regular", 0o4755, 0, 0},
		{"/sub/dir/nested.txt", "regular", 0o640, 0, 0},
		{"/empty", "directory", 0o700, 0, 0},
		{"/fifo", "FIFO", 0o600, 0, 0},
		{"/link", "symlink", 0o777, 0, 0},
	} {
		in := stat(t, img, c.path)
		if in.typ != c.typ || in.mode != c.mode || in.uid != c.uid || in.gid != c.gid {
			t.Errorf("%s: %s %04o %d:%d, want %s %04o %d:%d", c.path, in.typ, in.mode, in.uid, in.gid, c.typ, c.mode, c.uid, c.gid)
		}
	}
	if in := stat(t, img, "/link"); in.linkTarget != "hello.txt" {
		t.Errorf("/link -> %q", in.linkTarget)
	}
	if in := stat(t, img, "/dangling"); in.linkTarget != "/etc/does-not-exist" {
		t.Errorf("/dangling -> %q", in.linkTarget)
	}
	if in := stat(t, img, "/hello.txt"); in.mtime != time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC).Unix() {
		t.Errorf("/hello.txt mtime %s, want 2001-02-03T04:05:06Z", time.Unix(in.mtime, 0).UTC())
	}
	if in := stat(t, img, "/hello.txt"); in.links != 2 {
		t.Errorf("/hello.txt has %d links, want 2 (hard link /hard)", in.links)
	}
	// ls -p: one "/inode/mode/uid/gid/name/size/" line per entry.
	if ls := strings.Fields(debugfs(t, img, "ls -p /empty")); len(ls) != 2 || !strings.Contains(ls[0], "/./") || !strings.Contains(ls[1], "/../") {
		t.Errorf("/empty holds %q, want only . and ..", ls)
	}

	for path, want := range map[string]string{
		"/hello.txt":          "hello, rootfs\n",
		"/hard":               "hello, rootfs\n",
		"/secret":             "s3cret",
		"/bin/tool":           "#!/bin/sh\necho tool\n",
		"/sub/dir/nested.txt": "deep\n",
	} {
		if got := debugfs(t, img, "cat "+path); got != want {
			t.Errorf("cat %s: %q, want %q", path, got, want)
		}
	}
	// Large and sparse files: dump them out and compare.
	out := t.TempDir()
	debugfs(t, img, "dump /big.bin "+filepath.Join(out, "big"))
	if got, err := os.ReadFile(filepath.Join(out, "big")); err != nil || !bytes.Equal(got, big) {
		t.Errorf("big.bin: %d bytes back (%v), want %d identical", len(got), err, len(big))
	}
	debugfs(t, img, "dump /sparse "+filepath.Join(out, "sparse"))
	if got, err := os.ReadFile(filepath.Join(out, "sparse")); err != nil || len(got) != 8<<20+3 || string(got[8<<20:]) != "end" || bytes.Count(got[:8<<20], []byte{0}) != 8<<20 {
		t.Errorf("sparse: %d bytes back (%v)", len(got), err)
	}
}

// TestBuildEmptyDir: an empty rootfs makes a valid image.
func TestBuildEmptyDir(t *testing.T) {
	needMke2fs(t)
	img := filepath.Join(t.TempDir(), "img")
	if err := rootfs.Build(t.TempDir(), img); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool(t, "e2fsck"), "-fn", img).CombinedOutput(); err != nil {
		t.Errorf("e2fsck -fn: %v\n%s", err, out)
	}
}

// TestBuildExistingImage: an image is only ever created anew; an existing
// file is left as it was.
func TestBuildExistingImage(t *testing.T) {
	needMke2fs(t)
	src := t.TempDir()
	write(t, filepath.Join(src, "f"), "x", 0o644)
	img := filepath.Join(t.TempDir(), "img")
	write(t, img, "precious", 0o644)
	err := rootfs.Build(src, img)
	if err == nil || !errors.Is(err, os.ErrExist) {
		t.Fatalf("Build over an existing file: %v, want an error wrapping os.ErrExist", err)
	}
	if !strings.Contains(err.Error(), "creating rootfs image") {
		t.Errorf("error %q", err)
	}
	if b, err := os.ReadFile(img); err != nil || string(b) != "precious" {
		t.Errorf("the existing file now holds %q (%v)", b, err)
	}
	// Nor through a symlink to elsewhere.
	target := filepath.Join(t.TempDir(), "target")
	write(t, target, "other", 0o644)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := rootfs.Build(src, link); err == nil {
		t.Error("Build through a symlink succeeded")
	}
	if b, _ := os.ReadFile(target); string(b) != "other" {
		t.Errorf("the symlink's target now holds %q", b)
	}
}

// TestBuildMissingSource: a clear error and no image.
func TestBuildMissingSource(t *testing.T) {
	needMke2fs(t)
	src := filepath.Join(t.TempDir(), "no-such-rootfs")
	img := filepath.Join(t.TempDir(), "img")
	err := rootfs.Build(src, img)
	if err == nil {
		t.Fatal("Build of a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), src) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %q: want the path and os.ErrNotExist", err)
	}
	if _, err := os.Lstat(img); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an image was left behind: %v", err)
	}
}

// TestBuildMke2fsFails: when mke2fs fails (here, the source is a file) its
// message is in the error and the half-made image is removed.
func TestBuildMke2fsFails(t *testing.T) {
	needMke2fs(t)
	src := filepath.Join(t.TempDir(), "file")
	write(t, src, "not a directory", 0o644)
	img := filepath.Join(t.TempDir(), "img")
	err := rootfs.Build(src, img)
	if err == nil {
		t.Fatal("Build of a file succeeded")
	}
	if !strings.Contains(err.Error(), "building rootfs image from "+src) {
		t.Errorf("error %q", err)
	}
	if _, err := os.Lstat(img); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an image was left behind: %v", err)
	}
}

// TestBuildImageDirMissing: the image's directory must exist.
func TestBuildImageDirMissing(t *testing.T) {
	needMke2fs(t)
	img := filepath.Join(t.TempDir(), "no", "img")
	if err := rootfs.Build(t.TempDir(), img); err == nil || !strings.Contains(err.Error(), "creating rootfs image") {
		t.Errorf("Build: %v", err)
	}
}

// TestSize counts whole 4 KiB blocks, at least one per entry.
func TestSize(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		n    int
		want int64
	}{{0, 4096}, {1, 4096}, {4095, 4096}, {4096, 4096}, {4097, 8192}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 4096}} {
		p := filepath.Join(dir, "f"+strconv.Itoa(c.n))
		write(t, p, strings.Repeat("x", c.n), 0o644)
		if got, err := rootfs.Size(p); err != nil || got != c.want {
			t.Errorf("Size of a %d-byte file: %d, %v; want %d", c.n, got, err, c.want)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(strings.Repeat("x", 5000), link); err == nil {
		if got, err := rootfs.Size(link); err != nil || got != 8192 {
			t.Errorf("Size of a symlink with a 5000-byte target: %d, %v; want 8192 (the link, not a target)", got, err)
		}
	}

	// A tree: the files' blocks plus whole blocks for each directory.
	tr := t.TempDir()
	write(t, filepath.Join(tr, "a"), strings.Repeat("a", 5000), 0o644) // 8192
	write(t, filepath.Join(tr, "d", "b"), "b", 0o644)                  // 4096
	write(t, filepath.Join(tr, "d", "e", "c"), "", 0o644)              // 4096
	got, err := rootfs.Size(tr)
	if err != nil {
		t.Fatal(err)
	}
	dirs := got - 8192 - 4096 - 4096
	if dirs < 3*4096 || dirs%4096 != 0 {
		t.Errorf("Size of a tree: %d; %d for its 3 directories, want whole blocks, at least one each", got, dirs)
	}
	if _, err := rootfs.Size(filepath.Join(tr, "missing")); err == nil || !strings.Contains(err.Error(), "measuring rootfs") {
		t.Errorf("Size of a missing path: %v", err)
	}
}

func TestMke2fs(t *testing.T) {
	p, err := rootfs.Mke2fs()
	if errors.Is(err, rootfs.ErrNoMke2fs) {
		t.Skip("mke2fs not installed")
	}
	if err != nil || !filepath.IsAbs(p) || filepath.Base(p) != "mke2fs" {
		t.Errorf("Mke2fs: %q, %v", p, err)
	}
}

// TestBuildManySmallFiles: a rootfs of many small files (a big
// node_modules, a full distribution) must fit. Size counts every entry at
// least a block, but mke2fs gives the image its default inode ratio (one
// inode per 16 KiB), so past about 98,000 entries it runs out of inodes
// long before it runs out of space.
//
// It makes 110,000 files, which takes from several seconds to a minute
// depending on the disk, so it runs only with VXN_TEST_LARGE_ROOTFS=1.
// (Build sizes the inode table for the tree with mke2fs -N.)
func TestBuildManySmallFiles(t *testing.T) {
	if os.Getenv("VXN_TEST_LARGE_ROOTFS") == "" {
		t.Skip("makes 110,000 files: set VXN_TEST_LARGE_ROOTFS=1 to run it")
	}
	needMke2fs(t)
	const dirs, perDir = 110, 1000
	src := t.TempDir()
	for d := 0; d < dirs; d++ {
		sub := filepath.Join(src, strconv.Itoa(d))
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perDir; i++ {
			if err := unix.Mknod(filepath.Join(sub, strconv.Itoa(i)), unix.S_IFREG|0o644, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	img := filepath.Join(t.TempDir(), "img")
	if err := rootfs.Build(src, img); err != nil {
		msg := err.Error()
		if len(msg) > 400 {
			msg = msg[:400] + "..."
		}
		t.Fatalf("Build of %d empty files: %s", dirs*perDir, msg)
	}
	if got := debugfs(t, img, "cat /"+strconv.Itoa(dirs-1)+"/"+strconv.Itoa(perDir-1)); got != "" {
		t.Errorf("last file: %q", got)
	}
}
