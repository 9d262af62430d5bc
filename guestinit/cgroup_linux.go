package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// In the guest, the container's processes run in a cgroup of their own
// with the limits of linux.resources (the domain itself is sized from the
// same numbers on the host; see runtime/lifecycle/resources.go). The
// container's cgroup mount shows that cgroup as its root and its processes
// get a cgroup namespace rooted there, so the container sees what runc
// would show it: its own memory.max, cpu.max and pids.max at
// /sys/fs/cgroup.

const (
	guestCgroupRoot = "/sys/fs/cgroup"
	containerCgroup = guestCgroupRoot + "/container"
)

// setupCgroup mounts the cgroup2 hierarchy in the guest's own root, makes
// the container's cgroup with the limits of res (nil: none) and returns
// its directory, open for clone3's CLONE_INTO_CGROUP.
func setupCgroup(res *specs.LinuxResources) (*os.File, error) {
	if err := os.MkdirAll(guestCgroupRoot, 0o755); err != nil {
		return nil, err
	}
	if err := unix.Mount("cgroup2", guestCgroupRoot, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("mount cgroup2 on %s: %w", guestCgroupRoot, err)
	}
	if err := os.WriteFile(filepath.Join(guestCgroupRoot, "cgroup.subtree_control"), []byte("+cpu +memory +pids"), 0); err != nil {
		return nil, fmt.Errorf("enabling the cpu, memory and pids controllers: %w", err)
	}
	if err := os.Mkdir(containerCgroup, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	if err := applyCgroupLimits(containerCgroup, res); err != nil {
		return nil, err
	}
	return os.OpenFile(containerCgroup, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// applyCgroupLimits writes the limits of res into the cgroup directory dir.
func applyCgroupLimits(dir string, res *specs.LinuxResources) error {
	for file, value := range cgroupLimits(res) {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
			return fmt.Errorf("cgroup limit %s = %s: %w", file, value, err)
		}
	}
	return nil
}

// cgroupLimits maps linux.resources to cgroup v2 files, as runc does;
// -1 is no limit ("max"), 0 is unset.
func cgroupLimits(res *specs.LinuxResources) map[string]string {
	out := map[string]string{}
	if res == nil {
		return out
	}
	if m := res.Memory; m != nil {
		if m.Limit != nil && *m.Limit != 0 {
			out["memory.max"] = limit(*m.Limit)
		}
		if m.Reservation != nil && *m.Reservation > 0 {
			out["memory.low"] = strconv.FormatInt(*m.Reservation, 10)
		}
	}
	if c := res.CPU; c != nil {
		if c.Quota != nil && *c.Quota != 0 {
			period := uint64(100000)
			if c.Period != nil && *c.Period > 0 {
				period = *c.Period
			}
			out["cpu.max"] = fmt.Sprintf("%s %d", limit(*c.Quota), period)
		}
		if c.Shares != nil && *c.Shares > 0 {
			// runc's conversion of cgroup v1 shares to a v2 weight.
			s := min(max(*c.Shares, 2), 262144)
			out["cpu.weight"] = strconv.FormatUint(1+((s-2)*9999)/262142, 10)
		}
	}
	if p := res.Pids; p != nil && p.Limit != nil && *p.Limit != 0 {
		out["pids.max"] = limit(*p.Limit)
	}
	return out
}

func limit(v int64) string {
	if v < 0 {
		return "max"
	}
	return strconv.FormatInt(v, 10)
}
