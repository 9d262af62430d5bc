package lifecycle

import (
	"fmt"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

func TestSizeForResources(t *testing.T) {
	base := Guest{MemoryMiB: 256, VCPUs: 1, OverheadMiB: 64}
	for _, tc := range []struct {
		name string
		r    *specs.LinuxResources
		ann  map[string]string
		want string // MemoryMiB VCPUs Weight Cap Affinity
	}{
		{"none", nil, nil, "256 1 0 0 []"},
		{"podman --memory 256m --cpus 1", &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(256 << 20)), Swap: ptr(int64(512 << 20))},
			CPU:    &specs.LinuxCPU{Quota: ptr(int64(100000)), Period: ptr(uint64(100000))},
		}, nil, "320 1 0 100 []"},
		{"1.5 cpus, default period", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(150000))}}, nil, "256 2 0 150 []"},
		{"shares and cpuset", &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(2048)), Cpus: "0-2,5,1"}}, nil, "256 1 512 0 [0 1 2 5]"},
		{"tiny limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(4096))}}, nil, "65 1 0 0 []"},
		{"unlimited (-1)", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-1))}}, nil, "256 1 0 0 []"},
		{"annotations win", &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 30))},
			CPU:    &specs.LinuxCPU{Quota: ptr(int64(400000)), Period: ptr(uint64(100000))},
		}, map[string]string{AnnotationMemory: "512", AnnotationVCPUs: "2"}, "512 2 0 400 []"},
	} {
		spec := &specs.Spec{Annotations: tc.ann, Linux: &specs.Linux{Resources: tc.r}}
		g, err := guestFor(base, spec)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := fmt.Sprint(g.MemoryMiB, g.VCPUs, g.CPU.Weight, g.CPU.CapPercent, g.CPU.Affinity)
		if got != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestSizeForResourcesErrors(t *testing.T) {
	for name, r := range map[string]*specs.LinuxResources{
		"cpus list":    {CPU: &specs.LinuxCPU{Cpus: "0-"}},
		"cpus reverse": {CPU: &specs.LinuxCPU{Cpus: "3-1"}},
		"cpus huge":    {CPU: &specs.LinuxCPU{Cpus: "0-99999"}},
		"quota":        {CPU: &specs.LinuxCPU{Quota: ptr(int64(1000 * 100000)), Period: ptr(uint64(100000))}},
		"memory":       {Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 60))}},
	} {
		_, err := guestFor(Guest{MemoryMiB: 256, VCPUs: 1}, &specs.Spec{Linux: &specs.Linux{Resources: r}})
		if err == nil || !strings.Contains(err.Error(), "linux.resources") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
