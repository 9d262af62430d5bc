package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/monitor"
	"github.com/vxn-runtime/vxn/runtime/state"
)

// Update changes the resource limits of a created or running container:
// the guest's memory target and CPU weight and cap on the host, and the
// limits of the container's cgroup in the guest. Fields of upd that are
// not set keep their values. A guest cannot grow beyond the memory and
// vCPUs it was booted with.
func (r *Runtime) Update(ctx context.Context, id string, upd *specs.LinuxResources) error {
	if upd == nil {
		return errors.New("update: no resources given")
	}
	dir, unlock, err := r.lockLive(id)
	if err != nil {
		return err
	}
	defer unlock()
	cfg, err := loadMonitorConfig(dir)
	if err != nil {
		return err
	}
	spec := *cfg.Spec
	linux := valueOf(spec.Linux)
	linux.Resources = mergeResources(linux.Resources, upd)
	spec.Linux = &linux
	g, err := guestFor(r.opts.Guest, &spec)
	if err != nil {
		return err
	}
	var want hypervisor.Resources
	if m := linux.Resources.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		if g.MemoryMiB > cfg.Domain.MemoryMiB {
			return fmt.Errorf("update %s: a memory limit of %d bytes needs a guest of %d MiB, but it was booted with %d MiB and a running guest cannot grow beyond that: recreate the container with the larger limit", id, *m.Limit, g.MemoryMiB, cfg.Domain.MemoryMiB)
		}
		want.MemoryMiB = g.MemoryMiB
	}
	if g.VCPUs > cfg.Domain.VCPUs {
		return fmt.Errorf("update %s: the CPU quota needs %d vCPUs, but the guest was booted with %d: recreate the container with the larger quota", id, g.VCPUs, cfg.Domain.VCPUs)
	}
	if upd.CPU != nil && upd.CPU.Cpus != "" && fmt.Sprint(g.CPU.Affinity) != fmt.Sprint(cfg.Domain.CPU.Affinity) {
		return fmt.Errorf("update %s: changing cpuset.cpus of a running container is not supported", id)
	}
	want.CPU = g.CPU
	hv, err := r.opts.Open(r.opts.Hypervisor)
	if err != nil {
		return err
	}
	defer hv.Close()
	d, err := hv.Lookup(ctx, cfg.Domain.Name)
	if err != nil {
		return err
	}
	if err := d.SetResources(ctx, want); err != nil {
		return err
	}
	if _, err := monitor.Call(dir.File(state.SocketFile), monitor.Request{Op: monitor.OpUpdate, Resources: linux.Resources}, time.Minute); err != nil {
		return err
	}
	cfg.Spec = &spec
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return state.WriteFileAtomic(dir.File(monitorConfigFile), data, 0o600)
}

// mergeResources returns cur with the fields that upd sets replaced.
func mergeResources(cur, upd *specs.LinuxResources) *specs.LinuxResources {
	out := valueOf(cur)
	if u := upd.Memory; u != nil {
		m := valueOf(out.Memory)
		m.Limit = pick(u.Limit, m.Limit)
		m.Reservation = pick(u.Reservation, m.Reservation)
		m.Swap = pick(u.Swap, m.Swap)
		out.Memory = &m
	}
	if u := upd.CPU; u != nil {
		c := valueOf(out.CPU)
		c.Shares = pick(u.Shares, c.Shares)
		c.Quota = pick(u.Quota, c.Quota)
		c.Period = pick(u.Period, c.Period)
		if u.Cpus != "" {
			c.Cpus = u.Cpus
		}
		if u.Mems != "" {
			c.Mems = u.Mems
		}
		out.CPU = &c
	}
	if u := upd.Pids; u != nil && u.Limit != nil {
		out.Pids = &specs.LinuxPids{Limit: u.Limit}
	}
	return &out
}

// valueOf returns a copy of *p, or the zero value for nil.
func valueOf[T any](p *T) T {
	var v T
	if p != nil {
		v = *p
	}
	return v
}

func pick[T any](upd, cur *T) *T {
	if upd != nil {
		return upd
	}
	return cur
}
