package libxl

/*
#include "glue.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unsafe"
)

// UUID is a domain's UUID.
type UUID [16]byte

// NewUUID returns a random UUID (libxl_uuid_generate).
func NewUUID() UUID {
	var u C.libxl_uuid
	C.libxl_uuid_generate(&u)
	return uuidFromC(&u)
}

func uuidFromC(u *C.libxl_uuid) UUID {
	var r UUID
	copy(r[:], unsafe.Slice((*byte)(unsafe.Pointer(C.libxl_uuid_bytearray(u))), len(r)))
	return r
}

func (u UUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// DomainType is the virtualisation mode of a guest.
type DomainType int

// Domain types. The zero value is PV.
const (
	TypePV DomainType = iota
	TypePVH
)

func (t DomainType) String() string {
	switch t {
	case TypePV:
		return "pv"
	case TypePVH:
		return "pvh"
	}
	return fmt.Sprintf("DomainType(%d)", int(t))
}

func (t DomainType) c() (C.libxl_domain_type, error) {
	switch t {
	case TypePV:
		return C.LIBXL_DOMAIN_TYPE_PV, nil
	case TypePVH:
		return C.LIBXL_DOMAIN_TYPE_PVH, nil
	}
	return 0, fmt.Errorf("libxl: unsupported domain type %v", t)
}

// TSCMode is how the guest's TSC is provided.
type TSCMode int

// TSC modes. TSCNative is needed by PVH guests under QEMU (TCG), whose
// nested SVM misreports RDTSCP.
const (
	TSCDefault        TSCMode = C.LIBXL_TSC_MODE_DEFAULT
	TSCAlwaysEmulate  TSCMode = C.LIBXL_TSC_MODE_ALWAYS_EMULATE
	TSCNative         TSCMode = C.LIBXL_TSC_MODE_NATIVE
	TSCNativeParavirt TSCMode = C.LIBXL_TSC_MODE_NATIVE_PARAVIRT
)

// Disk is a virtual block device: a raw image file or a block device in
// dom0, served by blkback (libxl's "phy" backend; a regular file goes
// through a loop device set up by the block hotplug script).
type Disk struct {
	Path     string // in dom0
	Vdev     string // in the guest, "xvda"
	ReadOnly bool
	// Script is the hotplug script libxl runs for the disk: an absolute
	// path, or a name in Xen's script directory ("" = "block").
	Script string
}

// NIC is a virtual network interface (netback in dom0).
type NIC struct {
	Bridge string  // bridge the backend vif joins ("" = the script's default)
	Script string  // hotplug script ("" = libxl's vif-bridge)
	MAC    [6]byte // zero: libxl picks a random 00:16:3e MAC
	MTU    int     // 0: libxl's default (1500)
}

// P9 is a directory of dom0 shared with the guest over Xen's 9pfs
// transport. libxl serves it with a QEMU ("qemu-xen" in xenpv mode, from
// Debian's qemu-system-xen) that it starts for the domain and kills when
// the domain is destroyed. The guest mounts it with
// "mount -t 9p -o trans=xen TAG DIR".
//
// QEMU's xen 9pfs backend has no read-only option: a read-only share
// needs a read-only Path (a read-only bind mount).
type P9 struct {
	Tag  string // the name the guest mounts, unique in the domain
	Path string // the directory in dom0
	// SecurityModel is QEMU's: "passthrough" (files get the guest's
	// owners and modes), "mapped-xattr", "mapped-file" or "none".
	SecurityModel string
}

// maxP9Tag bounds a tag: Linux's 9p transports take at most 31 bytes.
const maxP9Tag = 31

// DomainConfig describes a guest to create: a kernel booted directly (no
// bootloader, no device model).
//
// The actions libxl records for poweroff, reboot and crash are fixed:
// destroy, destroy, preserve. libxl itself does not act on them (xl's
// daemon does); a vxn domain stays shut down until its owner, having read
// the reason with WaitForDeath, destroys it. preserve on crash tells any
// other toolstack looking at the domain to keep it for inspection too.
type DomainConfig struct {
	Name string
	// UUID: zero means CreateDomain generates one and stores it here.
	UUID    UUID
	Type    DomainType
	Kernel  string
	Ramdisk string // "" for none
	Cmdline string
	// MaxMemKiB is the domain's memory ceiling; TargetMemKiB what it
	// starts with (0: MaxMemKiB).
	MaxMemKiB    uint64
	TargetMemKiB uint64
	VCPUs        int // 0: 1
	TSCMode      TSCMode
	// Sched is the domain's share of CPU time (zero fields: the
	// scheduler's defaults).
	Sched Sched
	// CPUAffinity lists the physical CPUs the domain's vCPUs may run on
	// (hard affinity); nil means all.
	CPUAffinity []int
	Disks       []Disk
	NICs        []NIC
	P9s         []P9
}

// Sched holds the credit/credit2 scheduler parameters vxn sets.
type Sched struct {
	// Weight is the relative share of CPU time (default 256, 1..65535).
	Weight int
	// Cap is the most CPU time the domain gets, in percent of one
	// physical CPU (100 = one CPU); 0 is no cap.
	Cap int
}

// Bounds of the scheduler parameters and CPU numbers.
const (
	maxWeight = 65535
	maxCPU    = 4095
)

func (s Sched) validate() error {
	if s.Weight < 0 || s.Weight > maxWeight {
		return fmt.Errorf("scheduler weight %d out of range 1..%d", s.Weight, maxWeight)
	}
	if s.Cap < 0 || s.Cap > 100*maxVCPUs {
		return fmt.Errorf("scheduler cap %d%% out of range 0..%d", s.Cap, 100*maxVCPUs)
	}
	return nil
}

// fill sets the fields of an initialised libxl_domain_sched_params that s
// sets; the others keep libxl's "default" values.
func (s Sched) fill(c *C.libxl_domain_sched_params) {
	if s.Weight > 0 {
		c.weight = C.int(s.Weight)
	}
	if s.Cap > 0 {
		c.cap = C.int(s.Cap)
	}
}

const maxVCPUs = 512

// cstr returns a malloc'd copy of s for a char* field that libxl's dispose
// frees, or nil for "".
func cstr(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

func (cfg *DomainConfig) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if cfg.Name == "" {
		bad("name is empty")
	}
	if cfg.Kernel == "" {
		bad("kernel is empty")
	}
	if cfg.MaxMemKiB == 0 {
		bad("memory is zero")
	}
	if cfg.TargetMemKiB > cfg.MaxMemKiB {
		bad("target memory %d KiB above the maximum %d KiB", cfg.TargetMemKiB, cfg.MaxMemKiB)
	}
	if cfg.VCPUs < 0 || cfg.VCPUs > maxVCPUs {
		bad("vcpus %d out of range 0..%d", cfg.VCPUs, maxVCPUs)
	}
	if err := noNUL(cfg.Name, cfg.Kernel, cfg.Ramdisk, cfg.Cmdline); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Sched.validate(); err != nil {
		errs = append(errs, err)
	}
	for _, c := range cfg.CPUAffinity {
		if c < 0 || c > maxCPU {
			bad("cpu affinity: CPU %d out of range 0..%d", c, maxCPU)
		}
	}
	for i, d := range cfg.Disks {
		if err := d.validate(); err != nil {
			bad("disk %d: %w", i, err)
		}
	}
	for i, n := range cfg.NICs {
		if err := n.validate(); err != nil {
			bad("nic %d: %w", i, err)
		}
	}
	tags := map[string]bool{}
	for i, p := range cfg.P9s {
		if err := p.validate(); err != nil {
			bad("p9 %d: %w", i, err)
		}
		if tags[p.Tag] {
			bad("p9 %d: tag %q used twice", i, p.Tag)
		}
		tags[p.Tag] = true
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("libxl: domain config: %w", err)
	}
	return nil
}

func (d *Disk) validate() error {
	if d.Path == "" || d.Vdev == "" {
		return errors.New("path and vdev are required")
	}
	return noNUL(d.Path, d.Vdev, d.Script)
}

// maxMTU is the largest MTU a vif takes (netback's limit).
const maxMTU = 65535

func (n *NIC) validate() error {
	if n.MTU < 0 || n.MTU > maxMTU {
		return fmt.Errorf("mtu %d out of range 0..%d", n.MTU, maxMTU)
	}
	return noNUL(n.Bridge, n.Script)
}

func (p *P9) validate() error {
	if p.Tag == "" || len(p.Tag) > maxP9Tag || strings.ContainsAny(p.Tag, "/,") {
		return fmt.Errorf("tag %q: want 1 to %d bytes, no '/' or ','", p.Tag, maxP9Tag)
	}
	if !strings.HasPrefix(p.Path, "/") {
		return fmt.Errorf("path %q is not absolute", p.Path)
	}
	switch p.SecurityModel {
	case "passthrough", "mapped-xattr", "mapped-file", "none":
	default:
		return fmt.Errorf("security model %q: use passthrough, mapped-xattr, mapped-file or none", p.SecurityModel)
	}
	return noNUL(p.Tag, p.Path)
}

func noNUL(strs ...string) error {
	for _, s := range strs {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("%q contains a NUL byte", s)
		}
	}
	return nil
}

// toC builds a libxl_domain_config; free it with C.vxn_config_free.
func (cfg *DomainConfig) toC() (*C.libxl_domain_config, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	typ, err := cfg.Type.c()
	if err != nil {
		return nil, err
	}
	dc := C.vxn_config_new()
	if dc == nil {
		return nil, ErrNoMemory
	}
	ok := false
	defer func() {
		if !ok {
			C.vxn_config_free(dc)
		}
	}()

	ci := &dc.c_info
	ci._type = typ
	ci.name = cstr(cfg.Name)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(C.libxl_uuid_bytearray(&ci.uuid))), len(cfg.UUID)), cfg.UUID[:])

	bi := &dc.b_info
	C.libxl_domain_build_info_init_type(bi, typ)
	vcpus := max(cfg.VCPUs, 1)
	bi.max_vcpus = C.int(vcpus)
	if rc := C.vxn_bitmap_fill(&bi.avail_vcpus, C.int(vcpus), C.int(vcpus)); rc != 0 {
		return nil, check("bitmap_alloc", NoDomid, rc)
	}
	bi.max_memkb = C.uint64_t(cfg.MaxMemKiB)
	bi.target_memkb = C.uint64_t(cfg.MaxMemKiB)
	if cfg.TargetMemKiB != 0 {
		bi.target_memkb = C.uint64_t(cfg.TargetMemKiB)
	}
	bi.kernel = cstr(cfg.Kernel)
	bi.ramdisk = cstr(cfg.Ramdisk)
	bi.cmdline = cstr(cfg.Cmdline)
	bi.tsc_mode = C.libxl_tsc_mode(cfg.TSCMode)
	cfg.Sched.fill(&bi.sched_params)
	if len(cfg.CPUAffinity) > 0 {
		if rc := C.vxn_bitmap_fill(&bi.cpumap, C.int(slices.Max(cfg.CPUAffinity)+1), 0); rc != 0 {
			return nil, check("bitmap_alloc", NoDomid, rc)
		}
		bits := unsafe.Slice(bi.cpumap._map, bi.cpumap.size)
		for _, c := range cfg.CPUAffinity {
			bits[c/8] |= 1 << (c % 8)
		}
	}

	if n := len(cfg.Disks); n > 0 {
		if rc := C.vxn_config_alloc_disks(dc, C.int(n)); rc != 0 {
			return nil, check("alloc disks", NoDomid, rc)
		}
		disks := unsafe.Slice(dc.disks, n)
		for i := range disks {
			cfg.Disks[i].fill(&disks[i])
		}
	}
	if n := len(cfg.NICs); n > 0 {
		if rc := C.vxn_config_alloc_nics(dc, C.int(n)); rc != 0 {
			return nil, check("alloc nics", NoDomid, rc)
		}
		nics := unsafe.Slice(dc.nics, n)
		for i := range nics {
			cfg.NICs[i].fill(&nics[i])
		}
	}

	if n := len(cfg.P9s); n > 0 {
		if rc := C.vxn_config_alloc_p9s(dc, C.int(n)); rc != 0 {
			return nil, check("alloc p9s", NoDomid, rc)
		}
		p9s := unsafe.Slice(dc.p9s, n)
		for i := range p9s {
			cfg.P9s[i].fill(&p9s[i], i)
		}
	}

	dc.on_poweroff = C.LIBXL_ACTION_ON_SHUTDOWN_DESTROY
	dc.on_reboot = C.LIBXL_ACTION_ON_SHUTDOWN_DESTROY
	dc.on_crash = C.LIBXL_ACTION_ON_SHUTDOWN_PRESERVE
	ok = true
	return dc, nil
}

// fill sets the fields of an initialised libxl_device_disk.
func (d *Disk) fill(c *C.libxl_device_disk) {
	c.backend_domid = 0
	c.pdev_path = cstr(d.Path)
	c.vdev = cstr(d.Vdev)
	c.backend = C.LIBXL_DISK_BACKEND_PHY
	c.format = C.LIBXL_DISK_FORMAT_RAW
	c.script = cstr(d.Script)
	c.readwrite = 1
	if d.ReadOnly {
		c.readwrite = 0
	}
}

// fill sets the fields of an initialised libxl_device_nic.
func (n *NIC) fill(c *C.libxl_device_nic) {
	c.backend_domid = 0
	c.nictype = C.LIBXL_NIC_TYPE_VIF
	c.bridge = cstr(n.Bridge)
	c.script = cstr(n.Script)
	c.mtu = C.int(n.MTU)
	for i, b := range n.MAC {
		c.mac[i] = C.uint8_t(b)
	}
}

// fill sets the fields of an initialised libxl_device_p9.
func (p *P9) fill(c *C.libxl_device_p9, devid int) {
	c.backend_domid = 0
	c.tag = cstr(p.Tag)
	c.path = cstr(p.Path)
	c.security_model = cstr(p.SecurityModel)
	c.devid = C.libxl_devid(devid)
}

// configJSON is libxl's JSON rendering of dc (what "xl list -l" shows).
func configJSON(dc *C.libxl_domain_config) (string, error) {
	// libxl_domain_config_to_json uses the ctx only to log failures.
	s := C.libxl_domain_config_to_json(nil, dc)
	if s == nil {
		return "", errors.New("libxl: domain config to JSON failed")
	}
	defer C.free(unsafe.Pointer(s))
	return C.GoString(s), nil
}

// JSON validates cfg and renders it as the libxl_domain_config that
// CreateDomain would pass to libxl, in libxl's JSON form.
func (cfg *DomainConfig) JSON() (string, error) {
	dc, err := cfg.toC()
	if err != nil {
		return "", err
	}
	defer C.vxn_config_free(dc)
	return configJSON(dc)
}
