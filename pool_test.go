package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// poolContext is a cli.Context with vxn's global flags set as given.
func poolContext(t *testing.T, args ...string) *cli.Context {
	t.Helper()
	app := newApp()
	fs := flag.NewFlagSet("vxn", flag.ContinueOnError)
	for _, f := range app.Flags {
		if err := f.Apply(fs); err != nil {
			t.Fatal(err)
		}
	}
	fs.Int("size", 0, "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli.NewContext(app, fs, nil)
}

func TestPoolSetup(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.json")
	write := func(s string) {
		if err := os.WriteFile(cfgPath, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"kernel": "/k", "initramfs": "/i", "memoryMiB": 192, "vcpus": 2, "cmdline": "quiet"}`)
	s, err := newPoolSetup(poolContext(t, "--root", dir, "--config", cfgPath))
	if err != nil {
		t.Fatal(err)
	}
	// Without a pool section the pool's guests are the containers'.
	if s.size != defaultPoolSize || s.spec.MemoryMiB != 192 || s.spec.VCPUs != 2 || s.spec.Kernel != "/k" ||
		s.spec.Ramdisk != "/i" || s.spec.Cmdline != "quiet" || s.dir != filepath.Join(dir, "pool") {
		t.Errorf("defaults: %+v", s)
	}
	write(`{"kernel": "/k", "initramfs": "/i", "pool": {"size": 5, "memoryMiB": 96, "vcpus": 1}}`)
	if s, err = newPoolSetup(poolContext(t, "--root", dir, "--config", cfgPath)); err != nil ||
		s.size != 5 || s.spec.MemoryMiB != 96 || s.spec.VCPUs != 1 {
		t.Errorf("pool section: %+v, %v", s, err)
	}
	if s, err = newPoolSetup(poolContext(t, "--root", dir, "--config", cfgPath, "--size", "1")); err != nil || s.size != 1 {
		t.Errorf("--size 1: %+v, %v", s, err)
	}
	write(`{"pool": {"size": -1}}`)
	if _, err := newPoolSetup(poolContext(t, "--root", dir, "--config", cfgPath)); err == nil {
		t.Error("a negative size is accepted")
	}
	if _, err := newPoolSetup(poolContext(t, "--root", dir, "--config", cfgPath, "--hypervisor", "fake")); err == nil {
		t.Error("a pool on the fake hypervisor is accepted")
	}
}

// The manager runs exactly when its pid file is locked.
func TestPoolManagerLock(t *testing.T) {
	s := &poolSetup{dir: t.TempDir()}
	if pid, err := s.manager(); pid != 0 || err != nil {
		t.Errorf("no pid file: %d, %v", pid, err)
	}
	path := filepath.Join(s.dir, poolPidFile)
	if err := os.WriteFile(path, []byte("12345\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if pid, err := s.manager(); pid != 0 || err != nil {
		t.Errorf("stale pid file: %d, %v", pid, err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// flock locks belong to the open file description: this one is
	// another holder than the one manager() opens.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if pid, err := s.manager(); pid != 12345 || err != nil {
		t.Errorf("locked pid file: %d, %v", pid, err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if pid, err := s.manager(); pid != -1 || err != nil {
		t.Errorf("locked, not written yet: %d, %v", pid, err)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if pid, err := s.manager(); pid != 0 || err != nil {
		t.Errorf("unlocked: %d, %v", pid, err)
	}
}
