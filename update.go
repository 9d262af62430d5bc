package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	units "github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

var updateCommand = &cli.Command{
	Name:  "update",
	Usage: "change the resource limits of a container (its guest's memory and CPU share, its cgroup in the guest)",
	ArgsUsage: `<container-id>

A guest cannot grow beyond the memory and vCPUs it was booted with: limits
above those need a new container.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "resources", Aliases: []string{"r"}, Usage: "file with a LinuxResources JSON object (\"-\": standard input)"},
		&cli.StringFlag{Name: "memory", Usage: "memory limit (bytes, or with a unit: 256m)"},
		&cli.StringFlag{Name: "memory-reservation", Usage: "memory soft limit"},
		&cli.StringFlag{Name: "memory-swap", Usage: "memory plus swap limit"},
		&cli.StringFlag{Name: "cpu-period", Usage: "CPU CFS period in microseconds"},
		&cli.StringFlag{Name: "cpu-quota", Usage: "CPU CFS quota in microseconds per period"},
		&cli.StringFlag{Name: "cpu-share", Usage: "CPU shares (relative weight)"},
		&cli.StringFlag{Name: "cpuset-cpus", Usage: "host CPUs the container may use (0-3,5)"},
		&cli.StringFlag{Name: "pids-limit", Usage: "maximum number of processes"},
	},
	Action: containerAction(func(c *cli.Context, rt *lifecycle.Runtime, id string) error {
		res, err := updateResources(c)
		if err != nil {
			return err
		}
		return rt.Update(c.Context, id, res)
	}),
}

// updateResources reads --resources, then applies the other flags on top,
// as runc does.
func updateResources(c *cli.Context) (*specs.LinuxResources, error) {
	res := &specs.LinuxResources{}
	if f := c.String("resources"); f != "" {
		var r io.Reader = os.Stdin
		if f != "-" {
			file, err := os.Open(f)
			if err != nil {
				return nil, err
			}
			defer file.Close()
			r = file
		}
		if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(res); err != nil {
			return nil, fmt.Errorf("update: --resources %s: not a LinuxResources JSON object: %w", f, err)
		}
	}
	for _, f := range []struct {
		name  string
		bytes bool
		set   func(int64)
	}{
		{"memory", true, func(v int64) { memory(res).Limit = &v }},
		{"memory-reservation", true, func(v int64) { memory(res).Reservation = &v }},
		{"memory-swap", true, func(v int64) { memory(res).Swap = &v }},
		{"cpu-quota", false, func(v int64) { cpu(res).Quota = &v }},
		{"cpu-period", false, func(v int64) { u := uint64(v); cpu(res).Period = &u }},
		{"cpu-share", false, func(v int64) { u := uint64(v); cpu(res).Shares = &u }},
		{"pids-limit", false, func(v int64) { res.Pids = &specs.LinuxPids{Limit: &v} }},
	} {
		s := c.String(f.name)
		if s == "" {
			continue
		}
		v, err := parseLimit(s, f.bytes)
		if err != nil {
			return nil, fmt.Errorf("update: --%s %q: %w", f.name, s, err)
		}
		if v < -1 || (v == -1 && (f.name == "cpu-period" || f.name == "cpu-share")) {
			return nil, fmt.Errorf("update: --%s %q: must not be negative", f.name, s)
		}
		f.set(v)
	}
	if s := c.String("cpuset-cpus"); s != "" {
		cpu(res).Cpus = s
	}
	return res, nil
}

func parseLimit(s string, bytes bool) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	if bytes {
		return units.RAMInBytes(s)
	}
	var v int64
	_, err := fmt.Sscan(s, &v)
	return v, err
}

func memory(r *specs.LinuxResources) *specs.LinuxMemory {
	if r.Memory == nil {
		r.Memory = &specs.LinuxMemory{}
	}
	return r.Memory
}

func cpu(r *specs.LinuxResources) *specs.LinuxCPU {
	if r.CPU == nil {
		r.CPU = &specs.LinuxCPU{}
	}
	return r.CPU
}
