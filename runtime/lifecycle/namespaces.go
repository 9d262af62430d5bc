package lifecycle

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/bundle"
)

// The monitor's PID is the container's PID to everyone outside: engines
// and the OCI tests read /proc/<pid>/ns/* (podman top reads its pid
// namespace, Docker's prestart hook moves eth0 into its network namespace,
// pods join its net/ipc/uts namespaces), and the network code hands the
// interfaces of the monitor's network namespace to the guest. So the
// monitor lives in the namespaces config.json asks for: new ones for
// entries without a path, the given ones for entries with a path. The
// container's processes have namespaces of their own in the guest's
// kernel; these are the host-side face of the container.
//
// User and time namespaces are left alone: in a user namespace the monitor
// would lose the privileges Xen needs, and neither concerns the guest. A new
// mount namespace is not made either: it would pin a copy of every host
// mount (the engines' rootfs overlays among them) for the monitor's life,
// for nothing the guest uses; a mount namespace given by path is joined.

// monitorNS is what startMonitor does about namespaces.
type monitorNS struct {
	create uintptr                // CLONE_NEW* flags for the fork
	join   []specs.LinuxNamespace // entries with a path, in setns order
}

// hostFacing are the namespace types the monitor takes from config.json,
// in the order they are joined (mount last: it needs CLONE_FS unshared,
// and the other paths are opened before it).
var hostFacing = []specs.LinuxNamespaceType{
	specs.CgroupNamespace, specs.IPCNamespace, specs.UTSNamespace,
	specs.NetworkNamespace, specs.PIDNamespace, specs.MountNamespace,
}

func monitorNamespaces(spec *specs.Spec) monitorNS {
	var m monitorNS
	if os.Geteuid() != 0 || spec.Linux == nil {
		return m
	}
	for _, t := range hostFacing {
		for _, ns := range spec.Linux.Namespaces {
			switch {
			case ns.Type != t:
			case ns.Path == "" && t == specs.MountNamespace:
			case ns.Path == "":
				m.create |= uintptr(bundle.CloneFlag(t))
			default:
				m.join = append(m.join, ns)
			}
		}
	}
	return m
}

// start starts cmd in m's namespaces. Namespaces given by path are joined
// by the thread that forks the monitor: setns changes only the calling
// thread (and, for pid, the thread's future children), so the fork runs on
// a locked OS thread that is thrown away afterwards, never handed back to
// other goroutines.
func (m monitorNS) start(cmd *exec.Cmd) error {
	if len(m.join) == 0 {
		return cmd.Start()
	}
	files := make([]*os.File, 0, len(m.join))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, ns := range m.join {
		f, err := os.Open(ns.Path)
		if err != nil {
			return fmt.Errorf("joining the %s namespace %s: %w", ns.Type, ns.Path, err)
		}
		files = append(files, f)
	}
	done := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the thread ends with this goroutine.
		runtime.LockOSThread()
		for i, ns := range m.join {
			flag := bundle.CloneFlag(ns.Type)
			if ns.Type == specs.MountNamespace {
				// setns(CLONE_NEWNS) refuses a thread that shares its
				// filesystem attributes, as all Go threads do.
				if err := unix.Unshare(unix.CLONE_FS); err != nil {
					done <- fmt.Errorf("joining the mount namespace %s: unshare(CLONE_FS): %w", ns.Path, err)
					return
				}
			}
			if err := unix.Setns(int(files[i].Fd()), flag); err != nil {
				done <- fmt.Errorf("joining the %s namespace %s: %w", ns.Type, ns.Path, err)
				return
			}
		}
		done <- cmd.Start()
	}()
	return <-done
}
