package main

import (
	"fmt"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCgroupLimits(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	got := cgroupLimits(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64(256 << 20), Reservation: i64(-1)},
		CPU:    &specs.LinuxCPU{Quota: i64(150000), Shares: u64(1024)},
		Pids:   &specs.LinuxPids{Limit: i64(2048)},
	})
	want := map[string]string{"memory.max": "268435456", "cpu.max": "150000 100000", "cpu.weight": "39", "pids.max": "2048"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if len(cgroupLimits(nil)) != 0 || len(cgroupLimits(&specs.LinuxResources{})) != 0 {
		t.Error("limits without resources")
	}
	got = cgroupLimits(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}, CPU: &specs.LinuxCPU{Quota: i64(-1), Period: u64(50000)}})
	if want := map[string]string{"memory.max": "max", "cpu.max": "max 50000"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("unlimited: got %v, want %v", got, want)
	}
}
