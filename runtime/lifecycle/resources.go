package lifecycle

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A container's linux.resources size its guest: the guest kernel cannot
// give the container more than the domain has, so the memory limit and
// the CPU quota become the domain's memory, vCPUs and scheduler cap, and
// cpuset.cpus its vCPUs' affinity to physical CPUs. Inside the guest,
// guestinit puts the container in a cgroup with the same limits, so the
// container sees what runc would show it (memory.max, cpu.max).
//
//	memory.limit      -> guest memory = limit + Guest.OverheadMiB
//	cpu.quota/period  -> vCPUs = ceil(quota/period), cap = quota/period*100 %
//	cpu.shares        -> scheduler weight = shares/4 (1024 -> 256, the default)
//	cpu.cpus          -> hard affinity to those physical CPUs

// Bounds of what a guest can be given.
const (
	maxGuestVCPUs = 128
	minGuestMiB   = 32
	maxWeight     = 65535
)

const mib = 1 << 20

func sizeForResources(g Guest, spec *specs.Spec) (Guest, error) {
	if spec.Linux == nil || spec.Linux.Resources == nil {
		return g, nil
	}
	r := spec.Linux.Resources
	if m := r.Memory; m != nil && m.Limit != nil && *m.Limit > 0 {
		limit := uint64(*m.Limit)
		if limit > 1<<50 {
			return g, fmt.Errorf("linux.resources.memory.limit %d is beyond any guest's memory", limit)
		}
		g.MemoryMiB = max((limit+mib-1)/mib+g.OverheadMiB, minGuestMiB)
	}
	c := r.CPU
	if c == nil {
		return g, nil
	}
	if c.Quota != nil && *c.Quota > 0 {
		period := uint64(100000)
		if c.Period != nil && *c.Period > 0 {
			period = *c.Period
		}
		quota := uint64(*c.Quota)
		vcpus := (quota + period - 1) / period
		if vcpus > maxGuestVCPUs {
			return g, fmt.Errorf("linux.resources.cpu quota %d / period %d asks for %d CPUs; a guest has at most %d", quota, period, vcpus, maxGuestVCPUs)
		}
		g.VCPUs = int(vcpus)
		g.CPU.CapPercent = int((quota*100 + period - 1) / period)
	}
	if c.Shares != nil && *c.Shares > 0 {
		g.CPU.Weight = int(min(max(*c.Shares/4, 1), maxWeight))
	}
	if c.Cpus != "" {
		cpus, err := parseCPUList(c.Cpus)
		if err != nil {
			return g, fmt.Errorf("linux.resources.cpu.cpus: %w", err)
		}
		g.CPU.Affinity = cpus
	}
	return g, nil
}

// maxCPUNumber bounds the CPU numbers of a cpuset list.
const maxCPUNumber = 4095

// parseCPUList parses a cpuset list such as "0-3,8".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	seen := map[int]bool{}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b > maxCPUNumber {
			return nil, fmt.Errorf("%q is not a CPU list such as 0-3,8 (CPUs 0..%d)", s, maxCPUNumber)
		}
		for n := a; n <= b; n++ {
			if !seen[n] {
				seen[n] = true
				cpus = append(cpus, n)
			}
		}
	}
	return cpus, nil
}
