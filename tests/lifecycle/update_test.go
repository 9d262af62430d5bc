package lifecycle_test

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestUpdateRefusals: update checks what a running guest cannot do before
// it changes anything, and refuses stopped containers and bad values.
// (The changes themselves are checked on real Xen: tests/e2e TestResources.)
func TestUpdateRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	limit, quota, period := int64(32<<20), int64(100000), uint64(100000)
	b := h.bundle(withArgs("sleep", "100"), func(s *specs.Spec) {
		s.Linux.Resources = &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: &limit},
			CPU:    &specs.LinuxCPU{Quota: &quota, Period: &period},
		}
	})
	s := h.supervise("u", b)
	s.mustCreated()
	wantFail(t, h.vxn("update", "--memory", "1g", "u"), "booted with", "recreate the container")
	wantFail(t, h.vxn("update", "--cpu-quota", "300000", "u"), "needs 3 vCPUs", "booted with 1")
	wantFail(t, h.vxn("update", "--cpuset-cpus", "1", "u"), "cpuset.cpus", "not supported")
	wantFail(t, h.vxn("update", "--memory", "lots", "u"), `--memory "lots"`)
	wantFail(t, h.vxn("update", "--cpu-share", "-1", "u"), "negative")
	wantFail(t, h.vxn("update", "--memory", "16m", "nosuch"), "does not exist")
	h.mustVxn("kill", "u", "9")
	s.exitStatus(10e9)
	wantFail(t, h.vxn("update", "--memory", "16m", "u"), "not running")
	h.mustVxn("delete", "u")
}
