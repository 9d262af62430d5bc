// Command mkinitramfs builds the vxn guest initramfs: a gzip'd newc cpio
// archive holding guestinit as /init, the kernel modules guestinit loads
// (with every dependency, decompressed) and /lib/modules/vxn-modules, which
// lists them in load order.
//
//	go run ./guestinit/mkinitramfs -init out/guestinit [-kernel-version V] -o out/initramfs.img
//
// Without -kernel-version it takes vxn's default guest kernel, the newest
// generic /boot/vmlinuz-*-amd64 (Debian's linux-image-amd64: see
// runtime/guestkernel).
package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/vxn-runtime/vxn/runtime/guestkernel"
)

// wanted are the modules guestinit needs, by module name ('-' and '_' are
// the same). Optional ones are left out when the kernel has neither the
// module nor the feature built in.
var wanted = []struct {
	name     string
	optional bool
}{
	{"xen-blkfront", false},   // the rootfs disk
	{"crc32c_generic", false}, // ext4's and jbd2's checksums
	{"ext4", false},           // the rootfs (built into the cloud kernel)
	{"xen-netfront", false},   // the container's network
	{"overlay", false},
	{"xen-evtchn", false}, // the vchan agent transport
	{"xen-gntalloc", false},
	{"xen-gntdev", false},
	{"9pnet", true}, // directory volumes over Xen 9pfs
	{"9pnet_xen", true},
	{"9p", true},
}

// listPath is where guestinit reads the module load order.
const listPath = "lib/modules/vxn-modules"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
}

func run() error {
	initPath := flag.String("init", "", "static guestinit binary to install as /init (required)")
	kver := flag.String("kernel-version", "", "kernel version whose modules to take (default: the newest generic /boot/vmlinuz-*-amd64)")
	moddir := flag.String("moddir", "/lib/modules", "directory holding the kernels' module trees")
	out := flag.String("o", "", "output file (required)")
	flag.Parse()
	if *initPath == "" || *out == "" || flag.NArg() != 0 {
		flag.Usage()
		return errors.New("-init and -o are required")
	}
	if *kver == "" {
		_, v, err := guestkernel.Newest("/boot")
		if err != nil {
			return err
		}
		*kver = v
		fmt.Printf("mkinitramfs: kernel %s (the newest generic /boot/vmlinuz-*-amd64)\n", v)
	} else {
		fmt.Printf("mkinitramfs: kernel %s\n", *kver)
	}
	initData, err := os.ReadFile(*initPath)
	if err != nil {
		return err
	}
	mods, err := collectModules(filepath.Join(*moddir, *kver))
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := writeInitramfs(&buf, *kver, initData, mods); err != nil {
		return err
	}
	for _, m := range mods {
		fmt.Printf("mkinitramfs: module %s (%d bytes)\n", m.rel, len(m.data))
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		os.Remove(tmp)
		return err
	}
	fmt.Printf("mkinitramfs: wrote %s (%d bytes, %d modules)\n", *out, buf.Len(), len(mods))
	return nil
}

// module is a kernel module to ship: rel is its path under the kernel's
// module tree, always ending in .ko; data is its uncompressed content.
type module struct {
	rel  string
	data []byte
}

// collectModules reads the wanted modules and their dependencies from the
// module tree dir (/lib/modules/V), in load order.
func collectModules(dir string) ([]module, error) {
	depFile, err := os.Open(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer depFile.Close()
	deps, err := parseModulesDep(depFile)
	if err != nil {
		return nil, fmt.Errorf("%s/modules.dep: %w", dir, err)
	}
	builtin := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(dir, "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[moduleName(l)] = true
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	order, missing, err := loadOrder(deps, builtin)
	if err != nil {
		return nil, err
	}
	for _, m := range missing {
		fmt.Printf("mkinitramfs: optional module %s: not in this kernel, left out\n", m)
	}
	mods := make([]module, 0, len(order))
	for _, rel := range order {
		data, err := readModule(filepath.Join(dir, rel))
		if err != nil {
			return nil, err
		}
		mods = append(mods, module{rel: uncompressedName(rel), data: data})
	}
	return mods, nil
}

// parseModulesDep parses modules.dep ("path.ko: dep.ko dep2.ko" a line)
// into module path -> dependency paths.
func parseModulesDep(r io.Reader) (map[string][]string, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(mod) == "" {
			return nil, fmt.Errorf("line %d: no module path", i+1)
		}
		deps[strings.TrimSpace(mod)] = strings.Fields(rest)
	}
	return deps, nil
}

// moduleName is the name of the module at path p: its base name without
// the .ko[.xz|.zst|.gz] suffix, with '-' written as '_' as the kernel does.
func moduleName(p string) string {
	base := path.Base(p)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// loadOrder resolves the wanted modules against deps (from modules.dep)
// and returns their paths and their dependencies' paths, each dependency
// before the modules that need it. A wanted module that is built into the
// kernel is skipped; a missing optional one too, and listed in missing.
func loadOrder(deps map[string][]string, builtin map[string]bool) (order, missing []string, err error) {
	byName := map[string]string{}
	for p := range deps {
		byName[moduleName(p)] = p
	}
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(p string, from string) error
	visit = func(p, from string) error {
		switch state[p] {
		case 1:
			return fmt.Errorf("dependency cycle through %s", p)
		case 2:
			return nil
		}
		d, ok := deps[p]
		if !ok {
			return fmt.Errorf("%s needs %s, which modules.dep does not list", from, p)
		}
		state[p] = 1
		for _, dep := range d {
			if err := visit(dep, p); err != nil {
				return err
			}
		}
		state[p] = 2
		order = append(order, p)
		return nil
	}
	for _, w := range wanted {
		name := moduleName(w.name)
		p, ok := byName[name]
		switch {
		case ok:
			if err := visit(p, w.name); err != nil {
				return nil, nil, err
			}
		case builtin[name]:
		case w.optional:
			missing = append(missing, w.name)
		default:
			return nil, nil, fmt.Errorf("module %s: neither in modules.dep nor built into the kernel", w.name)
		}
	}
	return order, missing, nil
}

// uncompressedName strips a compression suffix from a module path.
func uncompressedName(p string) string {
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if strings.HasSuffix(p, ".ko"+ext) {
			return strings.TrimSuffix(p, ext)
		}
	}
	return p
}

// readModule reads a module file, decompressing .ko.xz, .ko.zst and .ko.gz.
func readModule(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(p, ".ko.xz"):
		if r, err = xz.NewReader(f); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	case strings.HasSuffix(p, ".ko.zst"):
		d, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		defer d.Close()
		r = d
	case strings.HasSuffix(p, ".ko.gz"):
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		r = z
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

// writeInitramfs writes the gzip'd archive: the mount point directories,
// /dev/console (the kernel opens it as init's stdio before /init runs),
// /dev/null,
// /init, the modules under /lib/modules/<kver> and the load order list.
func writeInitramfs(w io.Writer, kver string, initData []byte, mods []module) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	a := newArchive(zw)
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp"} {
		a.dir(d)
	}
	a.add("dev/console", modeChar|0o600, 5, 1, nil)
	a.add("dev/null", modeChar|0o666, 1, 3, nil) // the Go runtime's fallback for missing stdio
	a.add("init", modeReg|0o755, 0, 0, initData)
	var list strings.Builder
	for _, m := range mods {
		p := path.Join("lib/modules", kver, m.rel)
		a.add(p, modeReg|0o644, 0, 0, m.data)
		list.WriteString("/" + p + "\n")
	}
	a.add(listPath, modeReg|0o644, 0, 0, []byte(list.String()))
	if err := a.close(); err != nil {
		return err
	}
	return zw.Close()
}
