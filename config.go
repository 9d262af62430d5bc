package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/guestkernel"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

const defaultConfigFile = "/etc/vxn/config.json"

// config is vxn's configuration file. Every field is optional.
type config struct {
	Kernel    string `json:"kernel"`    // guest kernel; default: the newest generic /boot/vmlinuz-*-amd64
	Initramfs string `json:"initramfs"` // vxn's guest initramfs; default: beside the binary or /usr/lib/vxn
	Type      string `json:"type"`      // "pv" (default) or "pvh"
	Cmdline   string `json:"cmdline"`   // extra guest kernel arguments
	MemoryMiB uint64 `json:"memoryMiB"` // guest memory; default 256
	VCPUs     int    `json:"vcpus"`     // default 1
	// OverheadMiB is added to a container's memory limit to size its
	// guest (the guest kernel and init); default 96.
	OverheadMiB uint64 `json:"memoryOverheadMiB"`
	BootTimeout string `json:"bootTimeout"` // default 120s

	// Pool sizes the warm pool of idle guests (pool.go).
	Pool poolConfig `json:"pool"`
}

// loadConfig reads the configuration file; a missing file means defaults.
func loadConfig(path string) (*config, error) {
	cfg := &config{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err == nil {
		if err := json.Unmarshal(b, cfg); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return cfg, nil
}

// override applies the --kernel and --initramfs flags.
func (c *config) override(ctx *cli.Context) {
	if k := ctx.String("kernel"); k != "" {
		c.Kernel = k
	}
	if i := ctx.String("initramfs"); i != "" {
		c.Initramfs = i
	}
}

// guest resolves the guest settings, filling defaults.
func (c *config) guest() lifecycle.Guest {
	g := lifecycle.Guest{
		Type: hypervisor.GuestPV, Kernel: c.Kernel, Initramfs: c.Initramfs,
		Cmdline: c.Cmdline, MemoryMiB: c.MemoryMiB, VCPUs: c.VCPUs, BootTimeout: 120 * time.Second,
	}
	if c.Type == string(hypervisor.GuestPVH) {
		g.Type = hypervisor.GuestPVH
	}
	if g.MemoryMiB == 0 {
		g.MemoryMiB = 256
	}
	if g.VCPUs == 0 {
		g.VCPUs = 1
	}
	g.OverheadMiB = c.OverheadMiB
	if g.OverheadMiB == 0 {
		// Debian's generic kernel, its modules and guestinit: a 32 MiB
		// container in a 96 MiB guest was OOM-killed, 128 MiB guests work.
		g.OverheadMiB = 96
	}
	if d, err := time.ParseDuration(c.BootTimeout); err == nil && d > 0 {
		g.BootTimeout = d
	}
	if g.Kernel == "" {
		g.Kernel = defaultKernel()
	}
	if g.Initramfs == "" {
		g.Initramfs = defaultInitramfs()
	}
	return g
}

// defaultKernel is the newest Debian generic kernel, whose modules `make
// guest` puts in the initramfs (see runtime/guestkernel).
func defaultKernel() string {
	p, _, err := guestkernel.Newest("/boot")
	if err != nil {
		return ""
	}
	return p
}

// defaultInitramfs looks beside the vxn binary, then in the install paths.
func defaultInitramfs() string {
	var cands []string
	if exe, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(exe), "initramfs.img"))
	}
	cands = append(cands, "/usr/local/lib/vxn/initramfs.img", "/usr/lib/vxn/initramfs.img")
	for _, p := range cands {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
