package main

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// moduleDB is what modules.dep and modules.builtin say about one kernel's
// modules. Paths are relative to /lib/modules/<version>.
type moduleDB struct {
	deps    map[string][]string // module path -> paths of its dependencies
	byName  map[string]string   // normalized module name -> module path
	builtin map[string]bool     // normalized names of built-in modules
}

// moduleName turns a module path or name ("kernel/fs/9p/9p.ko.xz",
// "xen-evtchn") into the name the kernel uses ("9p", "xen_evtchn").
func moduleName(p string) string {
	n := path.Base(p)
	if i := strings.Index(n, ".ko"); i >= 0 {
		n = n[:i]
	}
	return strings.ReplaceAll(n, "-", "_")
}

// parseModulesDep reads modules.dep ("path: dep dep ...").
func parseModulesDep(r io.Reader) (*moduleDB, error) {
	db := &moduleDB{
		deps:    map[string][]string{},
		byName:  map[string]string{},
		builtin: map[string]bool{},
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok || mod == "" {
			return nil, fmt.Errorf("modules.dep line %d: no \"module:\" in %q", n, line)
		}
		db.deps[mod] = strings.Fields(rest)
		db.byName[moduleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return db, nil
}

// addBuiltin reads modules.builtin (one path a line).
func (db *moduleDB) addBuiltin(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			db.builtin[moduleName(l)] = true
		}
	}
	return sc.Err()
}

// resolve returns the module paths needed to load the required and the
// optional modules, each module after its dependencies. Built-in modules
// are left out; a missing required module is an error, a missing optional
// one is skipped.
func (db *moduleDB) resolve(required, optional []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 = visiting, 2 = done
	var visit func(mod string, chain []string) error
	visit = func(mod string, chain []string) error {
		switch state[mod] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("dependency cycle: %s", strings.Join(append(chain, mod), " -> "))
		}
		state[mod] = 1
		for _, d := range db.deps[mod] {
			if _, ok := db.deps[d]; !ok {
				return fmt.Errorf("module %s needs %s, which modules.dep does not list", mod, d)
			}
			if err := visit(d, append(chain, mod)); err != nil {
				return err
			}
		}
		state[mod] = 2
		order = append(order, mod)
		return nil
	}
	add := func(name string, must bool) error {
		n := moduleName(name)
		if db.builtin[n] {
			return nil
		}
		mod, ok := db.byName[n]
		if !ok {
			if must {
				return fmt.Errorf("module %s is neither in modules.dep nor built in", name)
			}
			return nil
		}
		return visit(mod, nil)
	}
	for _, m := range required {
		if err := add(m, true); err != nil {
			return nil, err
		}
	}
	for _, m := range optional {
		if err := add(m, false); err != nil {
			return nil, err
		}
	}
	return order, nil
}
