package network

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Modules are the kernel modules dom0 needs to give containers their
// network: netback, and the tc pieces of Join.
var Modules = []string{"xen-netback", "sch_ingress", "cls_u32", "act_mirred"}

// MissingModules returns the modules of Modules that the running kernel
// has neither loaded, built in, nor installed (the tc ones load on first
// use; netback is loaded by Xen's init scripts).
func MissingModules() ([]string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, err
	}
	return missingModules("/sys/module", filepath.Join("/lib/modules", unix.ByteSliceToString(u.Release[:])), Modules)
}

func missingModules(sysModule, modDir string, names []string) ([]string, error) {
	// Module files by name, '-' and '_' being the same to the kernel.
	norm := func(s string) string { return strings.ReplaceAll(s, "-", "_") }
	installed := map[string]bool{}
	for _, list := range []string{"modules.dep", "modules.builtin"} {
		f, err := os.Open(filepath.Join(modDir, list))
		if err != nil {
			return nil, fmt.Errorf("cannot tell whether the kernel has modules %s: %w", strings.Join(names, ", "), err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			path, _, _ := strings.Cut(sc.Text(), ":")
			base := filepath.Base(path)
			if i := strings.Index(base, ".ko"); i > 0 {
				installed[norm(base[:i])] = true
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", list, err)
		}
	}
	var missing []string
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(sysModule, norm(n))); err == nil || installed[norm(n)] {
			continue
		}
		missing = append(missing, n)
	}
	return missing, nil
}
