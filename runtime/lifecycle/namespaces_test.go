package lifecycle

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestMonitorNamespacesFlags(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root gives the monitor namespaces")
	}
	spec := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
		{Type: specs.PIDNamespace}, {Type: specs.NetworkNamespace, Path: "/run/netns/x"},
		{Type: specs.MountNamespace}, {Type: specs.UserNamespace}, {Type: specs.UTSNamespace, Path: "/proc/1/ns/uts"},
	}}}
	m := monitorNamespaces(spec)
	if m.create != unix.CLONE_NEWPID {
		t.Errorf("create = %#x", m.create)
	}
	if len(m.join) != 2 || m.join[0].Type != specs.UTSNamespace || m.join[1].Type != specs.NetworkNamespace {
		t.Errorf("join = %+v (want uts then network; user never)", m.join)
	}
}

// TestMonitorJoinsNamespacePaths starts a process in namespaces given by
// path, as startMonitor does, and checks it is in them.
func TestMonitorJoinsNamespacePaths(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	holder := exec.Command("unshare", "--net", "--uts", "--ipc", "--mount", "--pid", "--fork", "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Skip("unshare:", err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	// The namespaces belong to unshare's child (sleep), found once forked.
	var target string
	for i := 0; i < 200 && target == ""; i++ {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(holder.Process.Pid) + "/task/" + strconv.Itoa(holder.Process.Pid) + "/children")
		if f := strings.Fields(string(b)); len(f) > 0 {
			target = f[0]
		} else {
			exec.Command("sleep", "0.01").Run()
		}
	}
	if target == "" {
		t.Fatal("unshare did not fork")
	}
	types := map[specs.LinuxNamespaceType]string{
		specs.NetworkNamespace: "net", specs.UTSNamespace: "uts", specs.IPCNamespace: "ipc",
		specs.MountNamespace: "mnt", specs.PIDNamespace: "pid",
	}
	spec := &specs.Spec{Linux: &specs.Linux{}}
	for typ, f := range types {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: typ, Path: "/proc/" + target + "/ns/" + f})
	}
	for range 3 { // the forking thread is never reused: repeat to be sure
		var script strings.Builder
		for _, f := range types {
			script.WriteString("readlink /proc/self/ns/" + f + ";")
		}
		cmd := exec.Command("sh", "-c", script.String())
		var out strings.Builder
		cmd.Stdout = &out
		if err := monitorNamespaces(spec).start(cmd); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, l := range strings.Fields(out.String()) {
			got[l] = true
		}
		for _, f := range types {
			want, _ := os.Readlink("/proc/" + target + "/ns/" + f)
			if !got[want] {
				t.Errorf("%s namespace: child in %v, want %s", f, out.String(), want)
			}
		}
		// Other threads are still in their own namespaces. (The forking
		// thread may have been the main one, which Go parks for good
		// instead of ending it: /proc/self would show its namespaces.)
		runtime.LockOSThread()
		self, _ := os.Readlink("/proc/thread-self/ns/net")
		runtime.UnlockOSThread()
		want, _ := os.Readlink("/proc/" + target + "/ns/net")
		if self == want {
			t.Fatal("the test process itself moved into the network namespace")
		}
	}
	bad := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.NetworkNamespace, Path: "/nonexistent"}}}}
	if err := monitorNamespaces(bad).start(exec.Command("true")); err == nil || !strings.Contains(err.Error(), "/nonexistent") {
		t.Errorf("missing path: %v", err)
	}
}
