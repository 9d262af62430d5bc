// Package lifecycle implements vxn's container commands on top of the
// state store, the monitor and a Hypervisor. It knows nothing of Xen: the
// hypervisor is chosen by name through Options.Open.
package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/bundle"
	"github.com/vxn-runtime/vxn/runtime/hooks"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/monitor"
	"github.com/vxn-runtime/vxn/runtime/network"
	"github.com/vxn-runtime/vxn/runtime/procfs"
	"github.com/vxn-runtime/vxn/runtime/rootfs"
	"github.com/vxn-runtime/vxn/runtime/state"
)

// Sentinel errors for a command in the wrong state.
var (
	ErrNotRunning = errors.New("container not running")
	ErrWrongState = errors.New("container is in the wrong state")
)

// StatusCreating is the status of a container whose create has not
// finished (runtime-spec "creating").
const StatusCreating specs.ContainerState = specs.StateCreating

// Guest says how guests are built.
type Guest struct {
	Type        hypervisor.GuestType
	Kernel      string
	Initramfs   string
	Cmdline     string
	MemoryMiB   uint64
	VCPUs       int
	BootTimeout time.Duration
	// OverheadMiB is what the guest's kernel and init need besides the
	// container: added to a container's memory limit to size its guest.
	OverheadMiB uint64
	// CPU is the guest's share of the host's CPUs.
	CPU hypervisor.CPU
}

// Options configure a Runtime.
type Options struct {
	Root       string // state root, /run/vxn
	Hypervisor string // "xen" or "fake"
	// Open returns the named hypervisor; the seam tests fill with the fake.
	Open  func(name string) (hypervisor.Hypervisor, error)
	Guest Guest
	// MonitorCmd is the command line that runs `vxn ... monitor`, without
	// the container ID (the monitor is vxn itself, re-executed).
	MonitorCmd []string
	Log        logrus.FieldLogger
}

// Runtime runs the commands.
type Runtime struct {
	opts  Options
	store state.Store
}

// New returns a Runtime.
func New(opts Options) *Runtime {
	if opts.Log == nil {
		l := logrus.New()
		l.Out = io.Discard
		opts.Log = l
	}
	return &Runtime{opts: opts, store: state.Store{Root: opts.Root}}
}

// monitorConfigFile holds the monitor's Config in the state directory.
const monitorConfigFile = "monitor.json"

// CreateOptions are create's flags.
type CreateOptions struct {
	Bundle        string
	PidFile       string
	ConsoleSocket string
	// Stdio of the container; nil entries mean /dev/null.
	Stdin, Stdout, Stderr *os.File
}

// Created is a container whose monitor runs.
type Created struct {
	ID      string
	Monitor *os.Process
}

// Create makes a container up to "created": the guest is booted and set up,
// the process not started. The monitor is left running, not waited for.
func (r *Runtime) Create(ctx context.Context, id string, o CreateOptions) (_ *Created, err error) {
	if err := state.ValidateID(id); err != nil {
		return nil, err
	}
	b, err := bundle.Load(o.Bundle)
	if err != nil {
		return nil, err
	}
	if err := b.CheckNamespaceFiles(); err != nil {
		return nil, err
	}
	if o.ConsoleSocket == "" && b.Spec.Process.Terminal {
		return nil, errors.New("process.terminal is true in config.json but no --console-socket was given: pass one, or set terminal to false")
	}
	dir, err := r.store.Create(id)
	if err != nil {
		return nil, err
	}
	var mon *os.Process
	var poststop []specs.Hook // set once hooks have begun
	defer func() {
		if err != nil {
			if mon != nil {
				_ = mon.Kill()
			}
			r.destroyDomain(domainName(id))
			// The lifecycle continues at delete: poststop hooks run.
			if poststop != nil {
				r.runPoststop(context.Background(), poststop, id, b.Dir, b.Spec.Annotations)
			}
			_ = dir.Remove()
		}
	}()
	unlock, err := dir.Lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	c := &state.Container{
		ID: id, Bundle: b.Dir, Rootfs: b.Rootfs, Created: time.Now().UTC(),
		Annotations: b.Spec.Annotations, Hypervisor: r.opts.Hypervisor,
		Domain: domainName(id), Owner: os.Geteuid(),
	}
	if err := dir.Save(c); err != nil {
		return nil, err
	}
	cfg, err := r.monitorConfig(dir, b, o.ConsoleSocket)
	if err != nil {
		return nil, err
	}
	img := dir.File(state.RootfsImage)
	if err := rootfs.Build(b.Rootfs, img); err != nil {
		return nil, err
	}
	r.opts.Log.Debugf("container %s: guest console log %s, monitor log %s", id, dir.File(state.ConsoleLog), dir.File(state.MonitorLog))
	mon, err = r.startMonitor(dir, cfg, o)
	if err != nil {
		return nil, err
	}
	c.MonitorPid = mon.Pid
	if c.MonitorStart, err = procfs.StartTime(mon.Pid); err != nil {
		return nil, fmt.Errorf("the monitor exited right after create; see %s", dir.File(state.MonitorLog))
	}
	if err := dir.Save(c); err != nil {
		return nil, err
	}
	st := r.ociState(c, StatusCreating)
	poststop = append([]specs.Hook{}, hooks.For(b.Spec.Hooks, hooks.Poststop)...)
	for _, k := range []hooks.Kind{hooks.Prestart, hooks.CreateRuntime, hooks.CreateContainer} {
		if err := hooks.Run(ctx, k, hooks.For(b.Spec.Hooks, k), st); err != nil {
			return nil, err
		}
	}
	// After the hooks: Docker's prestart hook is what puts eth0 into the
	// monitor's network namespace.
	netStart := time.Now()
	if _, err := monitor.Call(dir.File(state.SocketFile), monitor.Request{Op: monitor.OpNetwork}, 2*time.Minute); err != nil {
		return nil, fmt.Errorf("giving the container its network: %w; see %s", err, dir.File(state.MonitorLog))
	}
	r.opts.Log.Debugf("container %s: network attached in %v", id, time.Since(netStart).Round(time.Millisecond))
	if o.PidFile != "" {
		if err := WritePidFile(o.PidFile, mon.Pid); err != nil {
			return nil, err
		}
	}
	return &Created{ID: id, Monitor: mon}, nil
}

func domainName(id string) string { return "vxn-" + id }

// monitorConfig resolves everything the monitor needs and saves it.
func (r *Runtime) monitorConfig(dir *state.Dir, b *bundle.Bundle, consoleSocket string) (*monitor.Config, error) {
	files, err := fileMounts(b.Spec)
	if err != nil {
		return nil, err
	}
	shares, guestShares, err := dirMounts(b.Spec)
	if err != nil {
		return nil, err
	}
	if consoleSocket != "" {
		if consoleSocket, err = filepath.Abs(consoleSocket); err != nil {
			return nil, err
		}
	}
	g, err := guestFor(r.opts.Guest, b.Spec)
	if err != nil {
		return nil, err
	}
	netns, err := containerNetns(b.Spec)
	if err != nil {
		return nil, err
	}
	cfg := &monitor.Config{
		ID:   dir.ID,
		Spec: b.Spec,
		Domain: hypervisor.DomainSpec{
			Name: domainName(dir.ID), Type: g.Type, Kernel: g.Kernel, Ramdisk: g.Initramfs,
			Cmdline: g.Cmdline, MemoryMiB: g.MemoryMiB, VCPUs: g.VCPUs, CPU: g.CPU,
			Disks: []hypervisor.Disk{{
				Path: dir.File(state.RootfsImage), Vdev: "xvda",
				ReadOnly: b.Spec.Root != nil && b.Spec.Root.Readonly,
			}},
			Shares:     shares,
			ConsoleLog: dir.File(state.ConsoleLog),
			RootfsDir:  b.Rootfs,
			StateDir:   dir.Path,
		},
		RootDevice:    "xvda",
		Files:         files,
		Shares:        guestShares,
		ConsoleSocket: consoleSocket,
		ControlSocket: dir.File(state.SocketFile),
		ExitFile:      dir.File(state.ExitFile),
		BootTimeout:   g.BootTimeout,
		Netns:         netns,
	}
	data, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return cfg, state.WriteFileAtomic(dir.File(monitorConfigFile), data, 0o600)
}

// Annotations that choose a container's guest, overriding the
// configuration file.
const (
	AnnotationKernel    = "org.vxn.kernel"
	AnnotationInitramfs = "org.vxn.initramfs"
	AnnotationMemory    = "org.vxn.memory-mib"
	AnnotationVCPUs     = "org.vxn.vcpus"
	AnnotationType      = "org.vxn.guest-type"
)

// guestFor sizes a container's guest: the defaults, then its
// linux.resources, then its annotations, which name the guest explicitly.
func guestFor(g Guest, spec *specs.Spec) (Guest, error) {
	g, err := sizeForResources(g, spec)
	if err != nil {
		return g, err
	}
	ann := spec.Annotations
	if v := ann[AnnotationKernel]; v != "" {
		g.Kernel = v
	}
	if v := ann[AnnotationInitramfs]; v != "" {
		g.Initramfs = v
	}
	if v := ann[AnnotationMemory]; v != "" {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n < 32 {
			return g, fmt.Errorf("annotation %s=%q: give the guest memory in MiB, at least 32", AnnotationMemory, v)
		}
		g.MemoryMiB = n
	}
	if v := ann[AnnotationVCPUs]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 128 {
			return g, fmt.Errorf("annotation %s=%q: give a number of vCPUs from 1 to 128", AnnotationVCPUs, v)
		}
		g.VCPUs = n
	}
	if v := ann[AnnotationType]; v != "" {
		switch t := hypervisor.GuestType(v); t {
		case hypervisor.GuestPV, hypervisor.GuestPVH:
			g.Type = t
		default:
			return g, fmt.Errorf("annotation %s=%q: use pv or pvh", AnnotationType, v)
		}
	}
	return g, nil
}

// maxFileMount bounds one file copied into the guest.
const maxFileMount = 1 << 20

// fileMounts reads the bind mounts whose source is a regular file: the
// guest gets copies (hosts, resolv.conf, hostname, .containerenv).
func fileMounts(spec *specs.Spec) ([]agent.File, error) {
	var files []agent.File
	for _, mnt := range spec.Mounts {
		if !bundle.IsBind(mnt) {
			continue
		}
		st, err := os.Stat(mnt.Source)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if st.Size() > maxFileMount {
			return nil, fmt.Errorf("config.json: mounts: bind of %s is %d bytes; vxn copies file mounts into the guest and takes at most %d", mnt.Source, st.Size(), maxFileMount)
		}
		if len(files) == agent.MaxFiles {
			return nil, fmt.Errorf("config.json: mounts: more than %d file bind mounts", agent.MaxFiles)
		}
		data, err := os.ReadFile(mnt.Source)
		if err != nil {
			return nil, fmt.Errorf("config.json: mounts: reading %s: %w", mnt.Source, err)
		}
		files = append(files, agent.File{Destination: mnt.Destination, Mode: uint32(st.Mode().Perm()), Data: data, ReadOnly: readOnly(mnt.Options)})
	}
	return files, nil
}

// readOnly says whether mount options make a mount read-only (the last of
// "ro" and "rw" wins).
func readOnly(options []string) bool {
	ro := false
	for _, o := range options {
		switch o {
		case "ro":
			ro = true
		case "rw":
			ro = false
		}
	}
	return ro
}

// dirMounts turns the bind mounts whose source is a host directory into
// shares, which the guest mounts live (directory volumes): the host side
// for the hypervisor and, for the guest, which mount each one replaces.
func dirMounts(spec *specs.Spec) ([]hypervisor.Share, []agent.Share, error) {
	var shares []hypervisor.Share
	var guest []agent.Share
	for i, mnt := range spec.Mounts {
		if !bundle.IsBind(mnt) {
			continue
		}
		st, err := os.Stat(mnt.Source)
		if err != nil || !st.IsDir() || path.Clean("/"+mnt.Destination) == "/dev/shm" {
			// The engines' /dev/shm directory: shared memory cannot cross
			// the guest's boundary, so the guest makes it a tmpfs.
			continue
		}
		if len(shares) == agent.MaxShares {
			return nil, nil, fmt.Errorf("config.json: mounts: more than %d bind mounts of directories", agent.MaxShares)
		}
		src, err := filepath.Abs(mnt.Source)
		if err != nil {
			return nil, nil, fmt.Errorf("config.json: mounts: %w", err)
		}
		tag := "vol" + strconv.Itoa(len(shares))
		shares = append(shares, hypervisor.Share{Tag: tag, Path: src, ReadOnly: readOnly(mnt.Options)})
		guest = append(guest, agent.Share{Tag: tag, Mount: i})
	}
	return shares, guest, nil
}

// startMonitor forks the monitor and waits until the guest is ready.
func (r *Runtime) startMonitor(dir *state.Dir, cfg *monitor.Config, o CreateOptions) (*os.Process, error) {
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer syncR.Close()
	args := append(append([]string(nil), r.opts.MonitorCmd[1:]...), dir.ID)
	cmd := exec.Command(r.opts.MonitorCmd[0], args...)
	cmd.ExtraFiles = []*os.File{syncW}
	if !cfg.Spec.Process.Terminal {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = o.Stdin, o.Stdout, o.Stderr
	}
	cmd.Env = os.Environ()
	ns := monitorNamespaces(cfg.Spec)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Cloneflags: ns.create}
	err = ns.start(cmd)
	syncW.Close()
	if err != nil {
		return nil, fmt.Errorf("starting the monitor: %w", err)
	}
	var msg syncMessage
	derr := json.NewDecoder(io.LimitReader(syncR, 1<<20)).Decode(&msg)
	switch {
	case derr == nil && msg.Error == "":
		return cmd.Process, nil
	case derr == nil:
		return cmd.Process, errors.New(msg.Error)
	}
	return cmd.Process, fmt.Errorf("the monitor exited before the container was created; see %s", dir.File(state.MonitorLog))
}

// ownNetns names, to the monitor, its own network namespace.
const ownNetns = "/proc/self/ns/net"

// containerNetns returns the network namespace whose interfaces the
// container's guest takes (monitor.Config.Netns): the monitor's own, which
// is the config's (monitorNamespaces: joined by path, as podman's, or new,
// which Docker's prestart hook fills). The host's network cannot be shared
// with a guest: a config without a network namespace, or whose path is the
// namespace vxn runs in, or one the monitor cannot have (only root can),
// leaves the guest loopback only.
func containerNetns(spec *specs.Spec) (string, error) {
	if spec.Linux == nil {
		return "", nil
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type != specs.NetworkNamespace {
			continue
		}
		m := monitorNamespaces(spec)
		inIt := m.create&syscall.CLONE_NEWNET != 0
		for _, j := range m.join {
			inIt = inIt || j.Type == specs.NetworkNamespace
		}
		if !inIt {
			return "", nil
		}
		if ns.Path != "" {
			host, err := network.SameNamespace(ns.Path, ownNetns)
			if err != nil {
				return "", fmt.Errorf("config.json: linux.namespaces: network: %w", err)
			}
			if host {
				return "", nil
			}
		}
		return ownNetns, nil
	}
	return "", nil
}

// syncMessage is what the monitor writes on its sync pipe (fd 3).
type syncMessage struct {
	Error string `json:"error,omitempty"`
}

// WritePidFile writes a PID the way engines read it.
func WritePidFile(path string, pid int) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// No trailing newline: containerd parses it with strconv.Atoi.
	return state.WriteFileAtomic(abs, []byte(strconv.Itoa(pid)), 0o644)
}

// loadMonitorConfig reads the monitor's Config back from the state dir.
func loadMonitorConfig(dir *state.Dir) (*monitor.Config, error) {
	b, err := os.ReadFile(dir.File(monitorConfigFile))
	if err != nil {
		return nil, err
	}
	var cfg monitor.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir.File(monitorConfigFile), err)
	}
	return &cfg, nil
}

// RunMonitor is the monitor process's main: boot, report to create over
// fd 3, serve until the container exits. It returns the exit status.
func (r *Runtime) RunMonitor(id string) int {
	sync := os.NewFile(3, "sync")
	report := func(err error) {
		msg := syncMessage{}
		if err != nil {
			msg.Error = err.Error()
		}
		_ = json.NewEncoder(sync).Encode(msg)
		sync.Close()
	}
	dir, err := r.store.Open(id)
	if err != nil {
		report(err)
		return 1
	}
	cfg, err := loadMonitorConfig(dir)
	if err != nil {
		report(err)
		return 1
	}
	hv, err := r.opts.Open(r.opts.Hypervisor)
	if err != nil {
		report(err)
		return 1
	}
	defer hv.Close()
	m := monitor.New(*cfg, hv, monitor.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, r.opts.Log)
	if err := m.Boot(context.Background()); err != nil {
		r.opts.Log.Errorf("create: %v", err)
		report(err)
		return 1
	}
	report(nil)
	status := m.Serve()
	r.opts.Log.Infof("monitor exiting with status %d", status)
	return status
}

// destroyDomain removes a guest left behind by a dead monitor.
func (r *Runtime) destroyDomain(name string) {
	hv, err := r.opts.Open(r.opts.Hypervisor)
	if err != nil {
		r.opts.Log.Warnf("cleaning up %s: %v", name, err)
		return
	}
	defer hv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := hv.Lookup(ctx, name)
	if err != nil {
		if !errors.Is(err, hypervisor.ErrNotFound) {
			r.opts.Log.Warnf("cleaning up %s: %v", name, err)
		}
		return
	}
	if err := d.Destroy(ctx); err != nil {
		r.opts.Log.Warnf("destroying %s: %v", name, err)
	}
}

func (r *Runtime) ociState(c *state.Container, status specs.ContainerState) specs.State {
	st := specs.State{
		Version: specs.Version, ID: c.ID, Status: status, Bundle: c.Bundle,
		Annotations: c.Annotations,
	}
	if status != specs.StateStopped {
		st.Pid = c.MonitorPid
	}
	return st
}

// status derives a container's status from live facts: the monitor
// process (PID and start time) and what the monitor itself says.
func (r *Runtime) status(dir *state.Dir, c *state.Container) specs.ContainerState {
	if c.MonitorPid == 0 {
		return StatusCreating
	}
	if !procfs.Alive(c.MonitorPid, c.MonitorStart) {
		return specs.StateStopped
	}
	if _, err := os.Stat(dir.File(state.ExitFile)); err == nil {
		return specs.StateStopped // the monitor is tearing the guest down
	}
	resp, err := monitor.Call(dir.File(state.SocketFile), monitor.Request{Op: monitor.OpState}, 10*time.Second)
	if err != nil {
		if !procfs.Alive(c.MonitorPid, c.MonitorStart) {
			return specs.StateStopped
		}
		if c.Started {
			return specs.StateRunning
		}
		return specs.StateCreated
	}
	return resp.Status
}

// open loads a container for a command.
func (r *Runtime) open(id string) (*state.Dir, *state.Container, error) {
	dir, err := r.store.Open(id)
	if err != nil {
		return nil, nil, err
	}
	c, err := dir.Load()
	if err != nil {
		return nil, nil, err
	}
	return dir, c, nil
}

// State returns the OCI state of a container.
func (r *Runtime) State(id string) (*specs.State, error) {
	dir, c, err := r.open(id)
	if err != nil {
		return nil, err
	}
	st := r.ociState(c, r.status(dir, c))
	return &st, nil
}

// Start starts the process of a created container.
func (r *Runtime) Start(ctx context.Context, id string) error {
	dir, c, err := r.open(id)
	if err != nil {
		return err
	}
	unlock, err := dir.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	switch s := r.status(dir, c); s {
	case specs.StateCreated:
	case specs.StateStopped:
		return fmt.Errorf("%w: cannot start a container that has stopped", ErrWrongState)
	case specs.StateRunning:
		return fmt.Errorf("%w: cannot start an already running container", ErrWrongState)
	default:
		return fmt.Errorf("%w: cannot start a container in the %s state", ErrWrongState, s)
	}
	cfg, err := loadMonitorConfig(dir)
	if err != nil {
		return err
	}
	sock := dir.File(state.SocketFile)
	// A failing startContainer or poststart hook stops the container
	// (runtime-spec lifecycle steps 7 and 9); delete then finishes it.
	stop := func(err error) error {
		_, _ = monitor.Call(sock, monitor.Request{Op: monitor.OpKill, Signal: int(syscall.SIGKILL), All: true}, 30*time.Second)
		return err
	}
	if err := hooks.Run(ctx, hooks.StartContainer, hooks.For(cfg.Spec.Hooks, hooks.StartContainer), r.ociState(c, specs.StateCreated)); err != nil {
		return stop(err)
	}
	if _, err := monitor.Call(sock, monitor.Request{Op: monitor.OpStart}, 2*time.Minute); err != nil {
		return err
	}
	c.Started = true
	if err := dir.Save(c); err != nil {
		return err
	}
	if err := hooks.Run(ctx, hooks.Poststart, hooks.For(cfg.Spec.Hooks, hooks.Poststart), r.ociState(c, specs.StateRunning)); err != nil {
		return stop(err)
	}
	return nil
}

// Kill sends a signal to the container's process (all: to every process).
func (r *Runtime) Kill(id string, sig int, all bool) error {
	dir, c, err := r.open(id)
	if err != nil {
		return err
	}
	if r.status(dir, c) == specs.StateStopped {
		return fmt.Errorf("%w: %s", ErrNotRunning, id)
	}
	_, err = monitor.Call(dir.File(state.SocketFile), monitor.Request{Op: monitor.OpKill, Signal: sig, All: all}, 30*time.Second)
	return err
}

// ExecTarget returns what exec needs of a running container: the monitor's
// control socket and the container's process (the base of an exec'd one).
func (r *Runtime) ExecTarget(id string) (socket string, base *specs.Process, err error) {
	dir, c, err := r.open(id)
	if err != nil {
		return "", nil, err
	}
	if s := r.status(dir, c); s != specs.StateRunning {
		return "", nil, fmt.Errorf("%w: cannot exec in a container that is %s", ErrWrongState, s)
	}
	cfg, err := loadMonitorConfig(dir)
	if err != nil {
		return "", nil, err
	}
	return dir.File(state.SocketFile), cfg.Spec.Process, nil
}

// Ps lists the processes of a running container's guest.
func (r *Runtime) Ps(id string) ([]agent.PsEntry, error) {
	dir, c, err := r.open(id)
	if err != nil {
		return nil, err
	}
	if r.status(dir, c) != specs.StateRunning {
		return nil, fmt.Errorf("%w: %s", ErrNotRunning, id)
	}
	resp, err := monitor.Call(dir.File(state.SocketFile), monitor.Request{Op: monitor.OpPs}, 30*time.Second)
	if err != nil {
		return nil, err
	}
	return resp.Processes, nil
}

// Pause freezes the container's guest; Resume continues it.
func (r *Runtime) Pause(id string) error  { return r.setPaused(id, monitor.OpPause) }
func (r *Runtime) Resume(id string) error { return r.setPaused(id, monitor.OpResume) }

func (r *Runtime) setPaused(id, op string) error {
	dir, unlock, err := r.lockLive(id)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = monitor.Call(dir.File(state.SocketFile), monitor.Request{Op: op}, time.Minute)
	return err
}

// lockLive opens and locks a container that is not stopped.
func (r *Runtime) lockLive(id string) (*state.Dir, func(), error) {
	dir, c, err := r.open(id)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := dir.Lock()
	if err != nil {
		return nil, nil, err
	}
	if r.status(dir, c) == specs.StateStopped {
		unlock()
		return nil, nil, fmt.Errorf("%w: %s", ErrNotRunning, id)
	}
	return dir, unlock, nil
}

// Delete removes a stopped container; with force, it kills it first.
// Deleting an unknown container with force succeeds (containerd relies on
// it).
func (r *Runtime) Delete(ctx context.Context, id string, force bool) error {
	dir, c, err := r.open(id)
	if err != nil {
		if force && errors.Is(err, state.ErrNotExist) {
			return nil
		}
		if errors.Is(err, state.ErrNotExist) || errors.Is(err, state.ErrInvalidID) {
			return err
		}
		// A corrupt state file: force removes what is there.
		if !force {
			return err
		}
		dir = &state.Dir{ID: id, Path: filepath.Join(r.opts.Root, id)}
		c = &state.Container{ID: id, Domain: domainName(id)}
	}
	unlock, err := dir.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if s := r.status(dir, c); s != specs.StateStopped {
		if !force {
			return fmt.Errorf("%w: cannot delete container %s that is not stopped: %s (use --force)", ErrWrongState, id, s)
		}
		r.stopMonitor(dir, c)
	}
	// A stopped container's monitor may still be tearing its guest down:
	// let it finish rather than destroy the same domain twice.
	waitGone(c, 30*time.Second)
	r.destroyDomain(c.Domain)
	if cfg, err := loadMonitorConfig(dir); err == nil {
		r.runPoststop(ctx, hooks.For(cfg.Spec.Hooks, hooks.Poststop), id, c.Bundle, c.Annotations)
	}
	return dir.Remove()
}

// runPoststop runs poststop hooks; a failure is only a warning.
func (r *Runtime) runPoststop(ctx context.Context, hks []specs.Hook, id, bundleDir string, annotations map[string]string) {
	st := specs.State{Version: specs.Version, ID: id, Status: specs.StateStopped, Bundle: bundleDir, Annotations: annotations}
	if err := hooks.Run(ctx, hooks.Poststop, hks, st); err != nil {
		r.opts.Log.Warnf("%v", err)
	}
}

// stopMonitor kills the container and waits for its monitor to exit,
// killing the monitor itself if it does not.
func (r *Runtime) stopMonitor(dir *state.Dir, c *state.Container) {
	if c.MonitorPid == 0 {
		return
	}
	sock := dir.File(state.SocketFile)
	// A paused guest cannot act on the kill (runc thaws first, too).
	_, _ = monitor.Call(sock, monitor.Request{Op: monitor.OpResume}, 10*time.Second)
	_, _ = monitor.Call(sock, monitor.Request{Op: monitor.OpKill, Signal: int(syscall.SIGKILL), All: true}, 10*time.Second)
	waitGone(c, 10*time.Second)
	if procfs.Alive(c.MonitorPid, c.MonitorStart) {
		r.opts.Log.Warnf("monitor %d did not exit; killing it", c.MonitorPid)
		_ = syscall.Kill(c.MonitorPid, syscall.SIGKILL)
	}
}

// waitGone waits up to timeout for the container's monitor to exit.
func waitGone(c *state.Container, timeout time.Duration) {
	for deadline := time.Now().Add(timeout); c.MonitorPid != 0 && procfs.Alive(c.MonitorPid, c.MonitorStart) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
}

// Entry is a row of List.
type Entry struct {
	ID      string            `json:"id"`
	Pid     int               `json:"pid"`
	Status  string            `json:"status"`
	Bundle  string            `json:"bundle"`
	Rootfs  string            `json:"rootfs"`
	Created time.Time         `json:"created"`
	Owner   string            `json:"owner"`
	Annot   map[string]string `json:"annotations,omitempty"`
}

// List returns every container under the root.
func (r *Runtime) List() ([]Entry, error) {
	ids, err := r.store.List()
	if err != nil {
		return nil, err
	}
	out := []Entry{}
	for _, id := range ids {
		dir, c, err := r.open(id)
		if err != nil {
			continue // deleted meanwhile
		}
		st := r.ociState(c, r.status(dir, c))
		out = append(out, Entry{
			ID: id, Pid: st.Pid, Status: string(st.Status), Bundle: c.Bundle, Rootfs: c.Rootfs,
			Created: c.Created, Owner: ownerName(c.Owner), Annot: c.Annotations,
		})
	}
	return out, nil
}

func ownerName(uid int) string {
	b, err := os.ReadFile("/etc/passwd")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Split(line, ":")
			if len(f) > 2 && f[2] == strconv.Itoa(uid) {
				return f[0]
			}
		}
	}
	return "#" + strconv.Itoa(uid)
}
