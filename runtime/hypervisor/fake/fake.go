// Package fake is a Hypervisor for unit tests: a "guest" is guestinit
// running on the host in host mode (its own pid and UTS namespaces when
// root), serving the real agent protocol on a unix socket. The monitor and
// guestinit code paths are the production ones; only the machine is fake.
package fake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/procfs"
	"github.com/vxn-runtime/vxn/runtime/state"
)

// Hypervisor runs fake guests. Dir records running guests by name so that
// other processes (delete of an orphan) can find them.
type Hypervisor struct {
	Dir       string // registry of running fake guests
	GuestInit string // path of the guestinit binary
}

// New returns a fake hypervisor keeping its registry in dir. It needs
// root: guests get namespaces and the container process a chroot.
func New(dir, guestinit string) (*Hypervisor, error) {
	if guestinit == "" {
		return nil, errors.New("fake hypervisor: no guestinit binary given")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("fake hypervisor: needs root (namespaces and chroot)")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fake hypervisor: %w", err)
	}
	return &Hypervisor{Dir: dir, GuestInit: guestinit}, nil
}

// record is a running fake guest in the registry.
type record struct {
	Pid    int    `json:"pid"`
	Start  uint64 `json:"start"`
	Socket string `json:"socket"`
	Paused bool   `json:"paused"`
	// Set by SetResources: what a real hypervisor would enforce.
	MemoryMiB uint64         `json:"memoryMiB,omitempty"`
	CPU       hypervisor.CPU `json:"cpu"`
}

// Domain is one fake guest.
type Domain struct {
	hv   *Hypervisor
	name string
	rec  record
	cmd  *exec.Cmd     // set in the creating process
	done chan struct{} // closed when cmd has been waited for
	nics int           // NICs added
	ws   syscall.WaitStatus
}

// Create starts guestinit in host mode for the spec's rootfs.
func (h *Hypervisor) Create(ctx context.Context, spec hypervisor.DomainSpec) (hypervisor.Domain, error) {
	if spec.Name == "" || strings.ContainsAny(spec.Name, "/") {
		return nil, fmt.Errorf("fake hypervisor: invalid domain name %q", spec.Name)
	}
	if _, err := os.Stat(h.recordPath(spec.Name)); err == nil {
		return nil, fmt.Errorf("fake hypervisor: domain %s already exists", spec.Name)
	}
	sock := filepath.Join(spec.StateDir, "fake-agent.sock")
	os.Remove(sock)
	args := []string{"-host-mode", "-agent-socket", sock, "-rootfs", spec.RootfsDir}
	for _, s := range spec.Shares {
		// The fake guest bind mounts the directory; a read-only share is
		// made so by the mount's own options, as a trusted guest would.
		args = append(args, "-share", s.Tag+"="+s.Path)
	}
	cmd := exec.Command(h.GuestInit, args...)
	cmd.Stdin = nil
	if spec.ConsoleLog != "" {
		f, err := os.OpenFile(spec.ConsoleLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("fake hypervisor: console log: %w", err)
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	// Like a guest: its own PID 1 (which takes every process with it when
	// it dies), hostname, /proc and network stack.
	pidfd := -1
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true,
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET,
		PidFD:      &pidfd,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("fake hypervisor: starting guestinit: %w", err)
	}
	// The creator may live in a pid namespace of its own (the monitor
	// does) while /proc is the host's: the registry needs the host PID,
	// which the pidfd's fdinfo gives in /proc's namespace.
	hostPid, err := procfs.PidfdPid(pidfd)
	syscall.Close(pidfd)
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("fake hypervisor: %w", err)
	}
	d := &Domain{hv: h, name: spec.Name, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			d.ws = ee.Sys().(syscall.WaitStatus)
		}
		close(d.done)
	}()
	st, err := procfs.StartTime(hostPid)
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("fake hypervisor: guestinit exited at once (see %s)", spec.ConsoleLog)
	}
	d.rec = record{Pid: hostPid, Start: st, Socket: sock, MemoryMiB: spec.MemoryMiB, CPU: spec.CPU}
	if err := h.save(d.name, d.rec); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return d, nil
}

// Lookup finds a running fake guest by name.
func (h *Hypervisor) Lookup(_ context.Context, name string) (hypervisor.Domain, error) {
	b, err := os.ReadFile(h.recordPath(name))
	if err != nil {
		return nil, fmt.Errorf("fake hypervisor: %s: %w", name, hypervisor.ErrNotFound)
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || !procfs.Alive(r.Pid, r.Start) {
		os.Remove(h.recordPath(name))
		return nil, fmt.Errorf("fake hypervisor: %s: %w", name, hypervisor.ErrNotFound)
	}
	return &Domain{hv: h, name: name, rec: r}, nil
}

// Close does nothing: the fake holds no connection.
func (h *Hypervisor) Close() error { return nil }

func (h *Hypervisor) recordPath(name string) string { return filepath.Join(h.Dir, name+".json") }

func (h *Hypervisor) save(name string, r record) error {
	b, _ := json.Marshal(r)
	return state.WriteFileAtomic(h.recordPath(name), b, 0o600)
}

// Name returns the domain name.
func (d *Domain) Name() string { return d.name }

// Connect dials guestinit's socket, retrying until it listens.
func (d *Domain) Connect(ctx context.Context) (io.ReadWriteCloser, error) {
	var dl net.Dialer
	for {
		c, err := dl.DialContext(ctx, "unix", d.rec.Socket)
		if err == nil {
			return c, nil
		}
		if d.gone() {
			return nil, fmt.Errorf("fake hypervisor: guest %s stopped before its agent listened", d.name)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("fake hypervisor: connecting to %s: %w", d.name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (d *Domain) gone() bool {
	if d.done != nil {
		select {
		case <-d.done:
			return true
		default:
			return false
		}
	}
	return !procfs.Alive(d.rec.Pid, d.rec.Start)
}

// Wait blocks until guestinit exits: exit 0 is a power-off, anything else
// a crash.
func (d *Domain) Wait(ctx context.Context) (hypervisor.ShutdownReason, error) {
	if d.done == nil {
		for !d.gone() {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		return hypervisor.ReasonUnknown, nil
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-d.done:
	}
	os.Remove(d.hv.recordPath(d.name))
	switch {
	case d.ws.Signaled() && d.ws.Signal() == syscall.SIGKILL:
		return hypervisor.ReasonDestroyed, nil
	case d.ws.ExitStatus() != 0 || d.ws.Signaled():
		return hypervisor.ReasonCrash, nil
	}
	return hypervisor.ReasonPoweroff, nil
}

// Pause stops every process of the guest: host-mode guestinit, PID 1 of
// the guest's pid namespace, does it on SIGUSR1 (and continues them on
// SIGUSR2).
func (d *Domain) Pause(context.Context) error { return d.setPaused(true) }

// Unpause continues every process of the guest.
func (d *Domain) Unpause(context.Context) error { return d.setPaused(false) }

func (d *Domain) setPaused(p bool) error {
	if d.gone() {
		return fmt.Errorf("fake hypervisor: %s: %w", d.name, hypervisor.ErrNotFound)
	}
	sig := syscall.SIGUSR2
	if p {
		sig = syscall.SIGUSR1
	}
	if err := d.signal(sig); err != nil {
		return err
	}
	d.rec.Paused = p
	return d.hv.save(d.name, d.rec)
}

// signal signals guestinit: through the process handle where this process
// created it (its PID may be in another namespace than /proc's), else by
// host PID.
func (d *Domain) signal(sig syscall.Signal) error {
	var err error
	if d.cmd != nil {
		err = d.cmd.Process.Signal(sig)
	} else {
		err = syscall.Kill(d.rec.Pid, sig)
	}
	if err != nil && !errors.Is(err, os.ErrProcessDone) && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("fake hypervisor: signalling %s: %w", d.name, err)
	}
	return nil
}

// Info reports the guest's state.
func (d *Domain) Info(context.Context) (hypervisor.DomainInfo, error) {
	if d.gone() {
		return hypervisor.DomainInfo{}, fmt.Errorf("fake hypervisor: %s: %w", d.name, hypervisor.ErrNotFound)
	}
	if b, err := os.ReadFile(d.hv.recordPath(d.name)); err == nil {
		_ = json.Unmarshal(b, &d.rec)
	}
	st := hypervisor.StateRunning
	if d.rec.Paused {
		st = hypervisor.StatePaused
	}
	return hypervisor.DomainInfo{ID: uint32(d.rec.Pid), Name: d.name, State: st, VCPUs: 1, MemoryKiB: d.rec.MemoryMiB << 10}, nil
}

// SetResources records r: a fake guest has no memory or CPU of its own to
// limit, but Info reports the memory, as Xen does.
func (d *Domain) SetResources(ctx context.Context, r hypervisor.Resources) error {
	if _, err := d.Info(ctx); err != nil {
		return err
	}
	if r.MemoryMiB > 0 {
		d.rec.MemoryMiB = r.MemoryMiB
	}
	if r.CPU.Weight > 0 {
		d.rec.CPU.Weight = r.CPU.Weight
	}
	if r.CPU.CapPercent > 0 {
		d.rec.CPU.CapPercent = r.CPU.CapPercent
	}
	return d.hv.save(d.name, d.rec)
}

// AddNIC gives the guest a veth pair, as Xen gives a guest a NIC whose
// backend is in dom0: the guest's end, with the NIC's MAC and MTU, in the
// guest's network namespace, the other end in the creating process's. The
// pair goes away with the guest's namespace.
func (d *Domain) AddNIC(_ context.Context, nic hypervisor.NIC) (hypervisor.NICBackend, error) {
	if d.gone() {
		return hypervisor.NICBackend{}, fmt.Errorf("fake hypervisor: %s: %w", d.name, hypervisor.ErrNotFound)
	}
	if d.cmd == nil {
		return hypervisor.NICBackend{}, fmt.Errorf("fake hypervisor: NICs are given by the process that created %s: %w", d.name, hypervisor.ErrUnsupported)
	}
	d.nics++
	be := hypervisor.NICBackend{Name: fmt.Sprintf("vif%d.%d", d.rec.Pid, d.nics-1), Netns: "/proc/self/ns/net"}
	guestNS, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", d.rec.Pid))
	if err != nil {
		return hypervisor.NICBackend{}, fmt.Errorf("fake hypervisor: the guest's network namespace: %w", err)
	}
	defer guestNS.Close()
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: be.Name, MTU: nic.MTU},
		PeerName:         fmt.Sprintf("nic%d", d.nics-1),
		PeerHardwareAddr: nic.MAC,
		PeerNamespace:    netlink.NsFd(guestNS.Fd()),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return hypervisor.NICBackend{}, fmt.Errorf("fake hypervisor: veth for %s: %w", d.name, err)
	}
	return be, nil
}

// Destroy kills the guest and everything in it: guestinit is PID 1 of its
// pid namespace, so the kernel kills the rest.
func (d *Domain) Destroy(context.Context) error {
	if !d.gone() {
		if err := d.signal(syscall.SIGKILL); err != nil {
			return err
		}
		for i := 0; i < 500 && !d.gone(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
	os.Remove(d.hv.recordPath(d.name))
	return nil
}
