package libxl

/*
#include "glue.h"
*/
import "C"

import (
	"fmt"
	"time"
	"unsafe"

	"github.com/vxn-runtime/vxn/libxl/xtl"
)

// CreateDomain builds and starts the domain described by cfg and returns
// its domid. The domain is left paused: call Unpause. cfg.UUID is
// generated first if zero. The call is synchronous (it runs the disk and
// network hotplug scripts); on failure libxl has destroyed what it built.
func (c *Context) CreateDomain(cfg *DomainConfig) (uint32, error) {
	if cfg.UUID == (UUID{}) {
		cfg.UUID = NewUUID()
	}
	dc, err := cfg.toC()
	if err != nil {
		return NoDomid, err
	}
	defer C.vxn_config_free(dc)
	if js, err := configJSON(dc); err == nil {
		c.log.Log(xtl.Debug, "libxl: creating domain "+cfg.Name+" from "+js)
	}
	domid := C.uint32_t(NoDomid)
	err = c.do(func(p *C.libxl_ctx) error {
		return check("domain_create_new "+cfg.Name, uint32(domid),
			C.libxl_domain_create_new(p, dc, &domid, nil, nil))
	})
	return uint32(domid), err
}

// Unpause lets a paused domain run.
func (c *Context) Unpause(domid uint32) error {
	return c.do(func(p *C.libxl_ctx) error {
		return check("domain_unpause", domid, C.libxl_domain_unpause(p, C.uint32_t(domid), nil))
	})
}

// Pause stops scheduling the domain's vcpus.
func (c *Context) Pause(domid uint32) error {
	return c.do(func(p *C.libxl_ctx) error {
		return check("domain_pause", domid, C.libxl_domain_pause(p, C.uint32_t(domid), nil))
	})
}

// Shutdown asks the guest to power off (through xenstore; a PV-aware
// guest kernel obeys). It does not wait: use WaitForDeath.
func (c *Context) Shutdown(domid uint32) error {
	return c.do(func(p *C.libxl_ctx) error {
		return check("domain_shutdown", domid, C.libxl_domain_shutdown(p, C.uint32_t(domid), nil))
	})
}

// Destroy kills the domain at once and tears down its devices. A domain
// that does not exist gives ErrDomainNotFound.
func (c *Context) Destroy(domid uint32) error {
	return c.do(func(p *C.libxl_ctx) error {
		return check("domain_destroy", domid, C.libxl_domain_destroy(p, C.uint32_t(domid), nil))
	})
}

// DomainInfo is a snapshot of a domain's state.
type DomainInfo struct {
	Domid uint32
	UUID  UUID
	Name  string // "" if the domain has none (any more)
	Type  DomainType
	// Flags; Shutdown comes with ShutdownReason.
	Running, Blocked, Paused, Shutdown, Dying bool
	ShutdownReason                            ShutdownReason
	CurrentMemKiB, MaxMemKiB                  uint64
	VCPUs                                     int // online
	CPUTime                                   time.Duration
}

func (c *Context) infoFromC(p *C.libxl_ctx, d *C.libxl_dominfo) DomainInfo {
	info := DomainInfo{
		Domid:          uint32(d.domid),
		UUID:           uuidFromC(&d.uuid),
		Type:           TypePV,
		Running:        bool(d.running),
		Blocked:        bool(d.blocked),
		Paused:         bool(d.paused),
		Shutdown:       bool(d.shutdown),
		Dying:          bool(d.dying),
		ShutdownReason: ShutdownUnknown,
		CurrentMemKiB:  uint64(d.current_memkb),
		MaxMemKiB:      uint64(d.max_memkb),
		VCPUs:          int(d.vcpu_online),
		CPUTime:        time.Duration(d.cpu_time),
	}
	if d.domain_type == C.LIBXL_DOMAIN_TYPE_PVH {
		info.Type = TypePVH
	}
	if info.Shutdown {
		info.ShutdownReason = ShutdownReason(d.shutdown_reason)
	}
	if name := C.libxl_domid_to_name(p, d.domid); name != nil {
		info.Name = C.GoString(name)
		C.free(unsafe.Pointer(name))
	}
	return info
}

// DomainInfo reports on one domain; ErrDomainNotFound if it does not
// exist.
func (c *Context) DomainInfo(domid uint32) (DomainInfo, error) {
	var info DomainInfo
	err := c.do(func(p *C.libxl_ctx) error {
		var d C.libxl_dominfo
		C.libxl_dominfo_init(&d)
		defer C.libxl_dominfo_dispose(&d)
		if err := check("domain_info", domid, C.libxl_domain_info(p, &d, C.uint32_t(domid))); err != nil {
			return err
		}
		info = c.infoFromC(p, &d)
		return nil
	})
	return info, err
}

// ListDomains reports on every domain, dom0 included.
func (c *Context) ListDomains() ([]DomainInfo, error) {
	var infos []DomainInfo
	err := c.do(func(p *C.libxl_ctx) error {
		var n C.int
		list := C.libxl_list_domain(p, &n)
		if list == nil {
			return &Error{Op: "list_domain", Domid: NoDomid, Code: C.ERROR_FAIL}
		}
		defer C.libxl_dominfo_list_free(list, n)
		for _, d := range unsafe.Slice(list, int(n)) {
			infos = append(infos, c.infoFromC(p, &d))
		}
		return nil
	})
	return infos, err
}

// NameToDomid finds a domain by name. A name no domain has gives
// ErrDomainNotFound (libxl itself says ERROR_INVAL).
func (c *Context) NameToDomid(name string) (uint32, error) {
	domid := C.uint32_t(NoDomid)
	err := c.do(func(p *C.libxl_ctx) error {
		cs := C.CString(name)
		defer C.free(unsafe.Pointer(cs))
		rc := C.libxl_name_to_domid(p, cs, &domid)
		if rc == C.ERROR_INVAL {
			rc = C.ERROR_DOMAIN_NOTFOUND
		}
		return check("name_to_domid "+name, NoDomid, rc)
	})
	return uint32(domid), err
}

// ConsoleTTY is the dom0 pty of the domain's primary PV console, as
// xenconsoled publishes it (shortly after the domain is created).
func (c *Context) ConsoleTTY(domid uint32) (string, error) {
	var path string
	err := c.do(func(p *C.libxl_ctx) error {
		var cs *C.char
		rc := C.libxl_console_get_tty(p, C.uint32_t(domid), 0, C.LIBXL_CONSOLE_TYPE_PV, &cs)
		if err := check("console_get_tty", domid, rc); err != nil {
			return err
		}
		path = C.GoString(cs)
		C.free(unsafe.Pointer(cs))
		return nil
	})
	return path, err
}

// DiskAdd hot-plugs a disk into a running domain and waits until the
// backend is set up.
func (c *Context) DiskAdd(domid uint32, d Disk) error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("libxl: disk: %w", err)
	}
	var disk C.libxl_device_disk
	C.libxl_device_disk_init(&disk)
	defer C.libxl_device_disk_dispose(&disk)
	d.fill(&disk)
	return c.do(func(p *C.libxl_ctx) error {
		return check("device_disk_add "+d.Vdev, domid, C.libxl_device_disk_add(p, C.uint32_t(domid), &disk, nil))
	})
}

// DiskRemove unplugs the disk the guest knows as vdev, waiting for the
// guest to release it.
func (c *Context) DiskRemove(domid uint32, vdev string) error {
	return c.do(func(p *C.libxl_ctx) error {
		cs := C.CString(vdev)
		defer C.free(unsafe.Pointer(cs))
		var disk C.libxl_device_disk
		C.libxl_device_disk_init(&disk)
		defer C.libxl_device_disk_dispose(&disk)
		if err := check("vdev_to_device_disk "+vdev, domid, C.libxl_vdev_to_device_disk(p, C.uint32_t(domid), cs, &disk)); err != nil {
			return err
		}
		return check("device_disk_remove "+vdev, domid, C.libxl_device_disk_remove(p, C.uint32_t(domid), &disk, nil))
	})
}

// NICAdd hot-plugs a network interface into a running domain, waiting
// until libxl has run its hotplug script, and returns its device id. The
// backend's network interface in dom0 is "vif<domid>.<devid>" (netback
// names it so, in the initial network namespace).
func (c *Context) NICAdd(domid uint32, n NIC) (int, error) {
	if err := n.validate(); err != nil {
		return 0, fmt.Errorf("libxl: nic: %w", err)
	}
	var nic C.libxl_device_nic
	C.libxl_device_nic_init(&nic)
	defer C.libxl_device_nic_dispose(&nic)
	n.fill(&nic)
	nic.devid = -1 // libxl picks the next free one and stores it here
	err := c.do(func(p *C.libxl_ctx) error {
		return check("device_nic_add", domid, C.libxl_device_nic_add(p, C.uint32_t(domid), &nic, nil))
	})
	if err != nil {
		return 0, err
	}
	return int(nic.devid), nil
}

// SetSched changes a running domain's scheduler parameters (the fields of
// s that are set).
func (c *Context) SetSched(domid uint32, s Sched) error {
	if err := s.validate(); err != nil {
		return fmt.Errorf("libxl: %w", err)
	}
	var p C.libxl_domain_sched_params
	C.libxl_domain_sched_params_init(&p)
	defer C.libxl_domain_sched_params_dispose(&p)
	s.fill(&p)
	return c.do(func(ctx *C.libxl_ctx) error {
		return check("domain_sched_params_set", domid, C.libxl_domain_sched_params_set(ctx, C.uint32_t(domid), &p))
	})
}

// SetMemoryTarget sets how much memory the domain's balloon driver should
// leave it, in KiB, up to its maximum.
func (c *Context) SetMemoryTarget(domid uint32, kib uint64) error {
	if kib == 0 || kib > 1<<40 {
		return fmt.Errorf("libxl: memory target %d KiB out of range", kib)
	}
	return c.do(func(ctx *C.libxl_ctx) error {
		return check("set_memory_target", domid, C.libxl_set_memory_target(ctx, C.uint32_t(domid), C.int64_t(kib), 0, 1))
	})
}
