package main

import (
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"
)

//go:embed init.sh
var initScript []byte

// initramfsFormat changes whenever the layout of the initramfs built here
// changes in a way the inputs below do not capture.
const initramfsFormat = "xenvm-initramfs-2"

// Modules loaded in the dom0 initramfs, with their dependencies: the ones
// needed to reach the host root, then the Xen backends and the networking
// primitives later tests need. Everything else can be modprobed in dom0
// (the host's /lib/modules is visible there).
var (
	requiredModules = []string{
		"virtio_pci", "9pnet_virtio", "9p", "overlay",
		"xen-evtchn", "xen-privcmd", "xenfs", "xen-gntdev", "xen-gntalloc",
		"xen-blkback", "loop", "xen-netback", "bridge", "tun", "veth",
		"sch_ingress", "cls_u32", "act_mirred", // vxn joins a vif to a veth with tc
	}
	optionalModules = []string{"vsock_loopback"}
)

// versionLess compares strings like "6.1.0-9-amd64" and "6.1.0-10-amd64"
// with runs of digits compared as numbers.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := unicode.IsDigit(rune(a[0])), unicode.IsDigit(rune(b[0]))
		if da && db {
			na, ra := splitDigits(a)
			nb, rb := splitDigits(b)
			na, nb = strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func splitDigits(s string) (string, string) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i], s[i:]
}

// pickDom0Kernel chooses the newest /boot/vmlinuz-* that is not a cloud
// kernel (the cloud flavour has no dom0 support) and returns its path and
// version.
func pickDom0Kernel(paths []string) (string, string, error) {
	var cands []string
	for _, p := range paths {
		b := filepath.Base(p)
		if !strings.HasPrefix(b, "vmlinuz-") || strings.Contains(b, "-cloud-") {
			continue
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return "", "", fmt.Errorf("no dom0-capable kernel among %v (install linux-image-amd64)", paths)
	}
	sort.Slice(cands, func(i, j int) bool {
		return versionLess(filepath.Base(cands[i]), filepath.Base(cands[j]))
	})
	p := cands[len(cands)-1]
	return p, strings.TrimPrefix(filepath.Base(p), "vmlinuz-"), nil
}

// kernelVersion is the version part of a /boot/vmlinuz-VERSION path.
func kernelVersion(p string) (string, error) {
	b := filepath.Base(p)
	if !strings.HasPrefix(b, "vmlinuz-") {
		return "", fmt.Errorf("cannot tell the kernel version of %s (want vmlinuz-VERSION)", p)
	}
	return strings.TrimPrefix(b, "vmlinuz-"), nil
}

// fileKey describes a file for a cache key: path, size and mtime.
func fileKey(h io.Writer, p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, st.Size(), st.ModTime().UnixNano())
	return nil
}

// cached returns WORK/PREFIX-HASH.EXT, building it with build if it does
// not exist yet. The build writes to a temporary file renamed into place,
// so concurrent runs never see a partial file. Older builds with the same
// prefix that nobody touched for a day are removed.
func cached(work, prefix, ext string, key []byte, build func(io.Writer) error) (string, error) {
	out := filepath.Join(work, prefix+"-"+hex.EncodeToString(key)[:16]+ext)
	if _, err := os.Stat(out); err == nil {
		now := time.Now()
		os.Chtimes(out, now, now)
		return out, nil
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(work, prefix+"-*.tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := build(tmp); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(work, prefix+"-*"+ext))
	for _, o := range old {
		if st, err := os.Stat(o); err == nil && o != out && time.Since(st.ModTime()) > 24*time.Hour {
			os.Remove(o)
		}
	}
	return out, nil
}

// buildXen unpacks the gzipped hypervisor into an ELF QEMU can boot as a
// multiboot kernel.
func buildXen(work, xenGz string) (string, error) {
	h := sha256.New()
	if err := fileKey(h, xenGz); err != nil {
		return "", fmt.Errorf("xen hypervisor: %w (install xen-hypervisor-4.17-amd64)", err)
	}
	return cached(work, "xen", ".elf", h.Sum(nil), func(w io.Writer) error {
		f, err := os.Open(xenGz)
		if err != nil {
			return err
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", xenGz, err)
		}
		_, err = io.Copy(w, z)
		return err
	})
}

// initramfsSpec is everything that goes into the dom0 initramfs.
type initramfsSpec struct {
	KernelVersion string
	ModulesDir    string   // /lib/modules/VERSION
	Modules       []string // paths relative to ModulesDir, load order
	Busybox       string   // a static busybox
	Init          []byte
}

// moduleListFile is /etc/xenvm/modules: in load order, one line per
// module with its name (as in /sys/module) and its path in the initramfs.
func (s *initramfsSpec) moduleListFile() []byte {
	var b strings.Builder
	for _, m := range s.Modules {
		b.WriteString(moduleName(m) + " /lib/modules/" + s.KernelVersion + "/" + m + "\n")
	}
	return []byte(b.String())
}

func (s *initramfsSpec) key() ([]byte, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", initramfsFormat, s.KernelVersion)
	h.Write(s.Init)
	if err := fileKey(h, s.Busybox); err != nil {
		return nil, err
	}
	for _, m := range s.Modules {
		if err := fileKey(h, filepath.Join(s.ModulesDir, m)); err != nil {
			return nil, err
		}
	}
	return h.Sum(nil), nil
}

func (s *initramfsSpec) write(w io.Writer) error {
	c := newCPIOWriter(w)
	for _, d := range []string{"bin", "dev", "proc", "sys", "run", "tmp", "etc/xenvm"} {
		c.Dir(d, 0o755)
	}
	c.CharDev("dev/console", 0o600, 5, 1)
	c.CharDev("dev/null", 0o666, 1, 3)
	c.File("init", 0o755, s.Init)
	bb, err := os.ReadFile(s.Busybox)
	if err != nil {
		return err
	}
	c.File("bin/busybox", 0o755, bb)
	c.Symlink("bin/sh", "busybox")
	for _, m := range s.Modules {
		data, err := os.ReadFile(filepath.Join(s.ModulesDir, m))
		if err != nil {
			return err
		}
		c.File("lib/modules/"+s.KernelVersion+"/"+m, 0o644, data)
	}
	c.File("etc/xenvm/modules", 0o644, s.moduleListFile())
	return c.Close()
}

// newInitramfsSpec resolves the modules of kernel version kver.
func newInitramfsSpec(kver, busybox string) (*initramfsSpec, error) {
	dir := filepath.Join("/lib/modules", kver)
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("modules of the dom0 kernel: %w", err)
	}
	defer f.Close()
	db, err := parseModulesDep(f)
	if err != nil {
		return nil, err
	}
	if b, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		err = db.addBuiltin(b)
		b.Close()
		if err != nil {
			return nil, err
		}
	}
	mods, err := db.resolve(requiredModules, optionalModules)
	if err != nil {
		return nil, fmt.Errorf("dom0 kernel %s: %w", kver, err)
	}
	if _, err := os.Stat(busybox); err != nil {
		return nil, fmt.Errorf("busybox: %w (install busybox-static)", err)
	}
	return &initramfsSpec{KernelVersion: kver, ModulesDir: dir, Modules: mods, Busybox: busybox, Init: initScript}, nil
}

// buildInitramfs returns the cached dom0 initramfs for spec.
func buildInitramfs(work string, spec *initramfsSpec) (string, error) {
	key, err := spec.key()
	if err != nil {
		return "", err
	}
	return cached(work, "dom0-initramfs", ".cpio", key, spec.write)
}
