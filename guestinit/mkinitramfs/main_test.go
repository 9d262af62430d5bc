package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

const testDep = `kernel/drivers/block/xen-blkfront.ko:
kernel/drivers/net/xen-netfront.ko.xz: kernel/net/core/page_pool.ko kernel/lib/crc.ko
kernel/net/core/page_pool.ko: kernel/lib/crc.ko
kernel/lib/crc.ko:
kernel/fs/overlayfs/overlay.ko.zst:
kernel/drivers/xen/xen-gntalloc.ko:
kernel/drivers/xen/xen-gntdev.ko: kernel/drivers/xen/xen-gntalloc.ko
kernel/net/9p/9pnet_xen.ko: kernel/net/9p/9pnet.ko
kernel/net/9p/9pnet.ko: kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko
kernel/sound/unrelated.ko: kernel/lib/crc.ko
kernel/crypto/crc32c_generic.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/jbd2/jbd2.ko:
`

func TestLoadOrder(t *testing.T) {
	deps, err := parseModulesDep(strings.NewReader(testDep))
	if err != nil {
		t.Fatal(err)
	}
	builtin := map[string]bool{"xen_evtchn": true}
	got, missing, err := loadOrder(deps, builtin)
	if err != nil || len(missing) != 0 {
		t.Fatal(err, missing)
	}
	want := []string{
		"kernel/drivers/block/xen-blkfront.ko",
		"kernel/crypto/crc32c_generic.ko",
		"kernel/lib/crc16.ko",
		"kernel/fs/jbd2/jbd2.ko",
		"kernel/fs/ext4/ext4.ko",
		"kernel/lib/crc.ko",
		"kernel/net/core/page_pool.ko",
		"kernel/drivers/net/xen-netfront.ko.xz",
		"kernel/fs/overlayfs/overlay.ko.zst",
		"kernel/drivers/xen/xen-gntalloc.ko",
		"kernel/drivers/xen/xen-gntdev.ko",
		"kernel/fs/netfs/netfs.ko",
		"kernel/net/9p/9pnet.ko",
		"kernel/net/9p/9pnet_xen.ko",
		"kernel/fs/9p/9p.ko",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("order:\n got %q\nwant %q", got, want)
	}
	// Every module comes after all its dependencies.
	pos := map[string]int{}
	for i, p := range got {
		pos[p] = i
	}
	for _, p := range got {
		for _, d := range deps[p] {
			if pos[d] >= pos[p] {
				t.Errorf("%s loads before its dependency %s", p, d)
			}
		}
	}
}

func TestLoadOrderErrors(t *testing.T) {
	for name, dep := range map[string]string{
		"missing required": "kernel/fs/overlayfs/overlay.ko:\n",
		"cycle": testDep + "kernel/drivers/xen/xen-evtchn.ko: kernel/a.ko\n" +
			"kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n",
		"unlisted dependency": testDep + "kernel/drivers/xen/xen-evtchn.ko: kernel/nowhere.ko\n",
	} {
		deps, err := parseModulesDep(strings.NewReader(dep))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := loadOrder(deps, nil); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Optional modules may be missing entirely.
	deps, _ := parseModulesDep(strings.NewReader(strings.Join(strings.Split(testDep, "\n")[:7], "\n")))
	if _, missing, err := loadOrder(deps, map[string]bool{"xen_evtchn": true, "crc32c_generic": true, "ext4": true}); err != nil || !reflect.DeepEqual(missing, []string{"9pnet", "9pnet_xen", "9p"}) {
		t.Errorf("without 9p: %v, missing %q", err, missing)
	}
	if _, err := parseModulesDep(strings.NewReader(": foo.ko\n")); err == nil {
		t.Error("line without module path accepted")
	}
}

func TestModuleName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/block/xen-blkfront.ko":    "xen_blkfront",
		"kernel/fs/overlayfs/overlay.ko.xz":       "overlay",
		"kernel/net/9p/9pnet_xen.ko.zst":          "9pnet_xen",
		"xen-gntdev":                              "xen_gntdev",
		"kernel/drivers/xen/xen-evtchn.ko.gz":     "xen_evtchn",
		"kernel/drivers/net/xen-netfront.ko":      "xen_netfront",
		"kernel/drivers/net/xen-netfront.ko.zst ": "xen_netfront",
	} {
		if got := moduleName(strings.TrimSpace(in)); got != want {
			t.Errorf("moduleName(%q) = %q, want %q", in, got, want)
		}
	}
}

// writeTree makes a module tree from testDep with compressed files where
// the path says so; each module's content is its uncompressed path.
func writeTree(t *testing.T) string {
	dir := t.TempDir()
	deps, err := parseModulesDep(strings.NewReader(testDep))
	if err != nil {
		t.Fatal(err)
	}
	for p := range deps {
		var buf bytes.Buffer
		content := []byte("ELF " + uncompressedName(p))
		switch {
		case strings.HasSuffix(p, ".xz"):
			w, err := xz.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(content)
			w.Close()
		case strings.HasSuffix(p, ".zst"):
			w, err := zstd.NewWriter(&buf)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(content)
			w.Close()
		default:
			buf.Write(content)
		}
		f := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(testDep), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/xen/xen-evtchn.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestArchive(t *testing.T) {
	mods, err := collectModules(writeTree(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mods {
		if string(m.data) != "ELF "+m.rel {
			t.Errorf("%s: content %q", m.rel, m.data)
		}
	}
	initData := bytes.Repeat([]byte("guestinit"), 1001) // not a multiple of 4
	var img bytes.Buffer
	if err := writeInitramfs(&img, "6.1.0-1-cloud-amd64", initData, mods); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&img)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}

	type entry struct {
		mode cpio.FileMode
		data string
	}
	got := map[string]entry{}
	var names []string
	r := cpio.NewReader(bytes.NewReader(raw))
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := got[h.Name]; dup {
			t.Errorf("%s twice", h.Name)
		}
		got[h.Name] = entry{h.Mode, string(b)}
		names = append(names, h.Name)
	}
	// Parents come before their children.
	seen := map[string]bool{}
	for _, n := range names {
		if d := filepath.Dir(n); d != "." && !seen[d] {
			t.Errorf("%s before its directory %s", n, d)
		}
		seen[n] = true
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "lib/modules/6.1.0-1-cloud-amd64/kernel/net/9p"} {
		if e, ok := got[d]; !ok || e.mode&^cpio.ModePerm != cpio.TypeDir {
			t.Errorf("%s: %v %v", d, ok, e.mode)
		}
	}
	if e := got["init"]; e.data != string(initData) || e.mode != cpio.TypeReg|0o755 {
		t.Errorf("init: mode %o, %d bytes", e.mode, len(e.data))
	}
	if e := got["dev/console"]; e.mode != cpio.TypeChar|0o600 {
		t.Errorf("dev/console: mode %o", e.mode)
	}
	if e := got["dev/null"]; e.mode != cpio.TypeChar|0o666 {
		t.Errorf("dev/null: mode %o", e.mode)
	}
	// The reader ignores device numbers: read them from the raw header.
	i := bytes.Index(raw, []byte("dev/console\x00"))
	if i < 110 {
		t.Fatal("no dev/console header")
	}
	hdr := raw[i-110 : i]
	major, _ := strconv.ParseUint(string(hdr[78:86]), 16, 32)
	minor, _ := strconv.ParseUint(string(hdr[86:94]), 16, 32)
	if major != 5 || minor != 1 {
		t.Errorf("dev/console is %d,%d", major, minor)
	}

	var want strings.Builder
	for _, m := range mods {
		p := "lib/modules/6.1.0-1-cloud-amd64/" + m.rel
		want.WriteString("/" + p + "\n")
		if e := got[p]; e.data != "ELF "+m.rel || e.mode != cpio.TypeReg|0o644 {
			t.Errorf("%s: mode %o data %q", p, e.mode, e.data)
		}
	}
	if got[listPath].data != want.String() {
		t.Errorf("vxn-modules:\n%s\nwant\n%s", got[listPath].data, want.String())
	}
	if !strings.Contains(want.String(), "/overlay.ko\n") || strings.Contains(want.String(), ".zst") || strings.Contains(want.String(), ".xz") {
		t.Errorf("compressed names kept: %s", want.String())
	}
}
