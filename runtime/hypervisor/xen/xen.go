// Package xen implements hypervisor.Hypervisor with Xen: every guest is a
// DomU created through libxl (package libxl), its agent channel is a vchan
// (package libxl/vchan) that guestinit serves at vchan.AgentPath, and its
// console is captured from the pty that xenconsoled gives it.
package xen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/vxn-runtime/vxn/libxl"
	"github.com/vxn-runtime/vxn/libxl/vchan"
	"github.com/vxn-runtime/vxn/libxl/xenstore"
	"github.com/vxn-runtime/vxn/libxl/xtl"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
)

// DefaultConsoleLogMax bounds a ConsoleLog file when Options do not.
const DefaultConsoleLogMax = 1 << 20

// How long Create waits for xenconsoled to publish a new guest's console.
const consoleWait = 10 * time.Second

// How often Connect retries while the guest boots.
const connectRetry = 50 * time.Millisecond

// Options configure New.
type Options struct {
	// Log receives the messages of libxl and the other Xen libraries at
	// LogLevel and above. nil: they are dropped.
	Log      xtl.LogFunc
	LogLevel xtl.Level
	// ConsoleLogMax bounds each ConsoleLog file (0: DefaultConsoleLogMax).
	// Past it the file keeps its first half (the boot log) and the most
	// recent output.
	ConsoleLogMax int64
	// NativeHotplug makes vxn attach image files to loop devices itself
	// and name its own binary as libxl's hotplug script, which must then
	// run Hotplug when called as one (see hotplug.go). Otherwise libxl
	// runs Xen's stock bash scripts.
	NativeHotplug bool
}

// Hypervisor creates and finds Xen guests.
type Hypervisor struct {
	log        *xtl.Logger
	xl         *libxl.Context
	consoleMax int64
	script     string // hotplug script for vxn's devices, "" = stock

	mu    sync.Mutex
	conns map[*conn]bool // open agent channels, closed by Close
}

var _ hypervisor.Hypervisor = (*Hypervisor)(nil)

// New opens libxl. It fails when Xen is not running or the caller may not
// manage it.
func New(opts Options) (*Hypervisor, error) {
	h := &Hypervisor{
		log:        xtl.NewLogger(opts.LogLevel, opts.Log),
		consoleMax: opts.ConsoleLogMax,
		conns:      map[*conn]bool{},
	}
	if h.consoleMax <= 0 {
		h.consoleMax = DefaultConsoleLogMax
	}
	var err error
	if h.script, err = hotplugScript(opts); err != nil {
		return nil, err
	}
	xl, err := libxl.New(h.log)
	if err != nil {
		h.log.Close()
		return nil, fmt.Errorf("xen: %w", err)
	}
	h.xl = xl
	return h, nil
}

// Close closes the agent channels still open and libxl. Guests keep
// running.
func (h *Hypervisor) Close() error {
	h.mu.Lock()
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	err := h.xl.Close()
	h.log.Close()
	return err
}

// domainConfig turns a DomainSpec into libxl's terms; sharePaths are the
// directories the 9pfs backend serves for spec.Shares (see shareViews).
func domainConfig(spec hypervisor.DomainSpec, sharePaths []string) (*libxl.DomainConfig, error) {
	cfg := &libxl.DomainConfig{
		Name:        spec.Name,
		UUID:        libxl.NewUUID(),
		Kernel:      spec.Kernel,
		Ramdisk:     spec.Ramdisk,
		Cmdline:     spec.Cmdline,
		MaxMemKiB:   spec.MemoryMiB << 10,
		VCPUs:       spec.VCPUs,
		Sched:       libxl.Sched{Weight: spec.CPU.Weight, Cap: spec.CPU.CapPercent},
		CPUAffinity: spec.CPU.Affinity,
	}
	switch spec.Type {
	case hypervisor.GuestPV, "":
		cfg.Type = libxl.TypePV
	case hypervisor.GuestPVH:
		// Native TSC: required under QEMU/TCG, whose nested SVM
		// misreports RDTSCP, and harmless on hardware for guests that
		// are never migrated.
		cfg.Type, cfg.TSCMode = libxl.TypePVH, libxl.TSCNative
	default:
		return nil, fmt.Errorf("guest type %q: %w", spec.Type, hypervisor.ErrUnsupported)
	}
	for _, d := range spec.Disks {
		cfg.Disks = append(cfg.Disks, libxl.Disk{Path: d.Path, Vdev: d.Vdev, ReadOnly: d.ReadOnly})
	}
	if len(sharePaths) != len(spec.Shares) {
		return nil, fmt.Errorf("%d shares but %d paths to serve", len(spec.Shares), len(sharePaths))
	}
	for i, s := range spec.Shares {
		cfg.P9s = append(cfg.P9s, libxl.P9{Tag: s.Tag, Path: sharePaths[i], SecurityModel: securityModel})
	}
	return cfg, nil
}

// Create claims an idle pool guest that fits spec (see pool.go) and
// hot-plugs its disks, or else creates the domain paused, starts
// capturing its console, and lets it run. On any error the domain is
// destroyed.
func (h *Hypervisor) Create(ctx context.Context, spec hypervisor.DomainSpec) (hypervisor.Domain, error) {
	for what, p := range map[string]string{"guest kernel": spec.Kernel, "guest initramfs": spec.Ramdisk} {
		if p == "" {
			return nil, fmt.Errorf("no %s configured: set it in the vxn config file (`vxn check` tells)", what)
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%s: %w (`vxn check` tells)", what, err)
		}
	}
	if d, err := h.claim(ctx, spec); d != nil || err != nil {
		return d, err
	}
	start := time.Now()
	d, err := h.boot(ctx, spec)
	if err == nil {
		h.log.Log(xtl.Info, fmt.Sprintf("xen: %s: booted cold as domain %d in %v", spec.Name, d.domid, time.Since(start).Round(time.Millisecond)))
	}
	return d, err
}

// boot creates the domain paused, starts capturing its console, and lets
// it run. On any error the domain is destroyed.
func (h *Hypervisor) boot(ctx context.Context, spec hypervisor.DomainSpec) (_ *domain, err error) {
	paths, views, err := shareViews(spec.Shares)
	if err != nil {
		return nil, fmt.Errorf("xen: create %s: %w", spec.Name, err)
	}
	cfg, err := domainConfig(spec, paths)
	if err != nil {
		closeViews(views)
		return nil, fmt.Errorf("xen: create %s: %w", spec.Name, err)
	}
	if err := ctx.Err(); err != nil {
		closeViews(views)
		return nil, fmt.Errorf("xen: create %s: %w", spec.Name, err)
	}
	d := &domain{h: h, name: spec.Name, uuid: cfg.UUID, views: views}
	defer func() {
		if err != nil {
			if derr := d.Destroy(context.Background()); derr != nil {
				err = errors.Join(err, derr)
			}
			err = fmt.Errorf("xen: create %s: %w", spec.Name, err)
		}
	}()
	if err := h.attachDisks(d, cfg.Disks); err != nil {
		return nil, err
	}
	d.domid, err = h.xl.CreateDomain(cfg)
	if err != nil {
		if d.domid == libxl.NoDomid {
			d.domid = 0 // nothing to destroy: libxl cleaned up
		}
		return nil, err
	}
	if spec.ConsoleLog != "" {
		if d.console, err = h.captureConsole(ctx, d.domid, spec.ConsoleLog); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := h.xl.Unpause(d.domid); err != nil {
		return nil, err
	}
	return d, nil
}

// claim takes an idle pool guest that fits spec, if there is one, and
// gives it spec's disks and console log. It returns nil, nil when there is
// none (or the pool cannot be read): the caller boots a guest.
func (h *Hypervisor) claim(ctx context.Context, spec hypervisor.DomainSpec) (*domain, error) {
	if len(spec.Shares) > 0 {
		// libxl starts the 9pfs backend only when it builds a domain.
		h.log.Log(xtl.Info, fmt.Sprintf("xen: %s: directory volumes need a guest of their own", spec.Name))
		return nil, nil
	}
	if _, err := domainConfig(spec, nil); err != nil {
		return nil, nil // boot reports it
	}
	key, err := PoolKey(spec)
	if err != nil {
		return nil, nil // boot reports what is wrong with the files
	}
	for {
		start := time.Now()
		info, ok, err := claimIdle(h.xl, key, spec)
		if err != nil {
			h.log.Log(xtl.Warn, fmt.Sprintf("xen: %s: %v; booting a guest instead", spec.Name, err))
			return nil, nil
		}
		if !ok {
			h.log.Log(xtl.Info, fmt.Sprintf("xen: %s: no idle pool guest of key %s fits", spec.Name, key))
			return nil, nil
		}
		d := &domain{h: h, name: spec.Name, domid: info.Domid, uuid: info.UUID}
		if now, err := d.info(); err != nil || now.Shutdown || now.Dying {
			// It stopped since it was listed: it is ours now, so clear it
			// away and try the next one.
			if err := d.Destroy(context.Background()); err != nil {
				h.log.Log(xtl.Warn, err.Error())
			}
			continue
		}
		if err := h.adopt(ctx, d, spec, info.Name); err != nil {
			return nil, fmt.Errorf("xen: create %s from an idle pool guest: %w", spec.Name, err)
		}
		h.log.Log(xtl.Info, fmt.Sprintf("xen: %s: claimed idle pool guest %s (domain %d) in %v",
			spec.Name, info.Name, d.domid, time.Since(start).Round(time.Millisecond)))
		return d, nil
	}
}

// adopt gives a claimed guest, which had poolName, spec's disks, console
// log, memory (a pool guest has at least as much) and CPU share. On error
// the guest is destroyed: a claimed guest never returns to the pool.
func (h *Hypervisor) adopt(ctx context.Context, d *domain, spec hypervisor.DomainSpec, poolName string) (err error) {
	defer func() {
		if err != nil {
			if derr := d.Destroy(context.Background()); derr != nil {
				err = errors.Join(err, derr)
			}
		}
	}()
	cfg, err := domainConfig(spec, nil)
	if err != nil {
		return err
	}
	if err := h.attachDisks(d, cfg.Disks); err != nil {
		return err
	}
	for _, disk := range cfg.Disks {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := h.xl.DiskAdd(d.domid, disk); err != nil {
			return fmt.Errorf("disk %s: %w", disk.Vdev, err)
		}
	}
	if spec.ConsoleLog != "" {
		if d.console, err = h.captureConsole(ctx, d.domid, spec.ConsoleLog); err != nil {
			return err
		}
	}
	r := hypervisor.Resources{CPU: spec.CPU}
	if pn, ok := parsePoolName(poolName); ok && pn.memoryMiB > spec.MemoryMiB {
		r.MemoryMiB = spec.MemoryMiB
	}
	return d.SetResources(ctx, r)
}

// attachDisks puts the image files among disks on loop devices of their
// own when vxn does hotplug itself, and names vxn's handler as the
// script. The loop devices stay open (d.loops) until Destroy, so that they
// outlive the moment blkback opens them.
func (h *Hypervisor) attachDisks(d *domain, disks []libxl.Disk) error {
	if h.script == "" {
		return nil
	}
	for i := range disks {
		st, err := os.Stat(disks[i].Path)
		if err != nil {
			return fmt.Errorf("disk %s: %w", disks[i].Vdev, err)
		}
		if st.Mode().IsRegular() {
			dev, err := attachLoop(disks[i].Path, disks[i].ReadOnly)
			if err != nil {
				return fmt.Errorf("disk %s: %w", disks[i].Vdev, err)
			}
			d.loops = append(d.loops, dev)
			disks[i].Path = dev.Name()
		}
		disks[i].Script = h.script
	}
	return nil
}

// Lookup finds a guest by name. Dom0 is never found.
func (h *Hypervisor) Lookup(_ context.Context, name string) (hypervisor.Domain, error) {
	domid, err := h.xl.NameToDomid(name)
	if err == nil && domid == 0 {
		err = libxl.ErrDomainNotFound
	}
	var info libxl.DomainInfo
	if err == nil {
		info, err = h.xl.DomainInfo(domid)
	}
	if errors.Is(err, libxl.ErrDomainNotFound) {
		return nil, fmt.Errorf("xen: lookup %s: %w", name, hypervisor.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("xen: lookup %s: %w", name, err)
	}
	return &domain{h: h, name: name, domid: domid, uuid: info.UUID}, nil
}

// domain is one guest, known by domid and, against domid reuse, UUID.
// domid 0 means no domain (creation failed).
type domain struct {
	h       *Hypervisor
	name    string
	domid   uint32
	uuid    libxl.UUID
	console *console   // nil unless this process created the domain
	loops   []*os.File // loop devices of its disks (attachDisks)
	views   []*os.File // read-only views of its shares (shareViews)
}

var _ hypervisor.Domain = (*domain)(nil)

func (d *domain) Name() string { return d.name }

func (d *domain) errorf(op string, err error) error {
	return fmt.Errorf("xen: %s %s (domain %d): %w", op, d.name, d.domid, err)
}

// info reports on the domain, or hypervisor.ErrNotFound if it is gone
// (or its domid now belongs to another domain).
func (d *domain) info() (libxl.DomainInfo, error) {
	if d.domid == 0 {
		return libxl.DomainInfo{}, hypervisor.ErrNotFound
	}
	info, err := d.h.xl.DomainInfo(d.domid)
	if errors.Is(err, libxl.ErrDomainNotFound) || (err == nil && info.UUID != d.uuid) {
		return info, fmt.Errorf("%w: %w", hypervisor.ErrNotFound, libxl.ErrDomainNotFound)
	}
	return info, err
}

// Connect dials the guest's agent channel until guestinit listens, the
// guest stops, or ctx ends.
func (d *domain) Connect(ctx context.Context) (io.ReadWriteCloser, error) {
	path := vchan.AgentPath(d.domid)
	for {
		vc, err := vchan.Dial(d.domid, path, vchan.WithLogger(d.h.log))
		if err == nil {
			return d.h.track(vc, d.domid)
		}
		if !errors.Is(err, vchan.ErrNoServer) {
			return nil, d.errorf("connect", err)
		}
		info, err := d.info()
		if err != nil {
			return nil, d.errorf("connect", err)
		}
		if info.Shutdown || info.Dying {
			return nil, d.errorf("connect", fmt.Errorf("guest stopped (%v) before its agent listened", info.ShutdownReason))
		}
		select {
		case <-ctx.Done():
			return nil, d.errorf("connect", fmt.Errorf("agent not listening at %s: %w", path, ctx.Err()))
		case <-time.After(connectRetry):
		}
	}
}

// Wait returns when the guest has shut down or gone. The domain stays
// until Destroy.
func (d *domain) Wait(ctx context.Context) (hypervisor.ShutdownReason, error) {
	r, err := d.h.xl.WaitForDeath(ctx, d.domid)
	if err != nil {
		return hypervisor.ReasonUnknown, d.errorf("wait", err)
	}
	return shutdownReason(r), nil
}

func shutdownReason(r libxl.ShutdownReason) hypervisor.ShutdownReason {
	switch r {
	case libxl.ShutdownPoweroff:
		return hypervisor.ReasonPoweroff
	case libxl.ShutdownReboot:
		return hypervisor.ReasonReboot
	case libxl.ShutdownCrash, libxl.ShutdownWatchdog:
		return hypervisor.ReasonCrash
	case libxl.ShutdownDestroyed:
		return hypervisor.ReasonDestroyed
	}
	return hypervisor.ReasonUnknown
}

func (d *domain) Pause(context.Context) error {
	if _, err := d.info(); err != nil {
		return d.errorf("pause", err)
	}
	if err := d.h.xl.Pause(d.domid); err != nil {
		return d.errorf("pause", err)
	}
	return nil
}

func (d *domain) Unpause(context.Context) error {
	if _, err := d.info(); err != nil {
		return d.errorf("unpause", err)
	}
	if err := d.h.xl.Unpause(d.domid); err != nil {
		return d.errorf("unpause", err)
	}
	return nil
}

func (d *domain) Info(context.Context) (hypervisor.DomainInfo, error) {
	info, err := d.info()
	if err != nil {
		return hypervisor.DomainInfo{}, d.errorf("info", err)
	}
	return hypervisor.DomainInfo{
		ID:        info.Domid,
		Name:      d.name,
		State:     domainState(info),
		MemoryKiB: info.CurrentMemKiB,
		VCPUs:     info.VCPUs,
		CPUTimeNs: uint64(info.CPUTime),
	}, nil
}

func (d *domain) SetResources(_ context.Context, r hypervisor.Resources) error {
	if _, err := d.info(); err != nil {
		return d.errorf("set resources", err)
	}
	if r.MemoryMiB > 0 {
		if err := d.h.xl.SetMemoryTarget(d.domid, r.MemoryMiB<<10); err != nil {
			return d.errorf("set memory", err)
		}
	}
	if r.CPU.Weight > 0 || r.CPU.CapPercent > 0 {
		if err := d.h.xl.SetSched(d.domid, libxl.Sched{Weight: r.CPU.Weight, Cap: r.CPU.CapPercent}); err != nil {
			return d.errorf("set scheduler parameters", err)
		}
	}
	return nil
}

func domainState(info libxl.DomainInfo) hypervisor.DomainState {
	switch {
	case info.Dying:
		return hypervisor.StateDying
	case info.Shutdown && (info.ShutdownReason == libxl.ShutdownCrash || info.ShutdownReason == libxl.ShutdownWatchdog):
		return hypervisor.StateCrashed
	case info.Shutdown:
		return hypervisor.StateShutdown
	case info.Paused:
		return hypervisor.StatePaused
	}
	return hypervisor.StateRunning
}

// Destroy closes the agent channels to the guest (dom0 must unmap the
// guest's pages for it to die), destroys it if it still exists, and stops
// the console capture.
func (d *domain) Destroy(context.Context) error {
	d.h.closeConns(d.domid)
	_, err := d.info()
	if err == nil {
		err = guardBackendPid(d.domid)
	}
	if err == nil {
		err = d.h.xl.Destroy(d.domid)
	}
	if errors.Is(err, hypervisor.ErrNotFound) || errors.Is(err, libxl.ErrDomainNotFound) {
		err = nil
	}
	if d.console != nil {
		d.console.stop()
	}
	// With the domain gone, blkback has closed the devices: closing them
	// here frees them (autoclear).
	for _, f := range d.loops {
		f.Close()
	}
	d.loops = nil
	if err == nil {
		closeViews(d.views)
		d.views = nil
	}
	if err != nil {
		return d.errorf("destroy", err)
	}
	return nil
}

// conn is an agent channel that the Hypervisor tracks until it is closed.
type conn struct {
	*vchan.Conn
	h     *Hypervisor
	domid uint32
}

func (h *Hypervisor) track(vc *vchan.Conn, domid uint32) (io.ReadWriteCloser, error) {
	c := &conn{Conn: vc, h: h, domid: domid}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns == nil {
		vc.Close()
		return nil, errors.New("xen: hypervisor closed")
	}
	h.conns[c] = true
	return c, nil
}

func (c *conn) Close() error {
	c.h.mu.Lock()
	delete(c.h.conns, c)
	c.h.mu.Unlock()
	return c.Conn.Close()
}

func (h *Hypervisor) closeConns(domid uint32) {
	h.mu.Lock()
	var cs []*conn
	for c := range h.conns {
		if c.domid == domid {
			cs = append(cs, c)
		}
	}
	h.mu.Unlock()
	for _, c := range cs {
		c.Close()
	}
}

// backendNetns is where netback creates a NIC's backend interface: the
// initial network namespace, PID 1's (the monitor shares the host's /proc).
const backendNetns = "/proc/1/ns/net"

// AddNIC hot-plugs a vif into the guest. Its backend, the dom0 network
// interface vif<domid>.<devid>, is left down and unattached: the caller
// wires it (package network moves it into the container's namespace).
func (d *domain) AddNIC(_ context.Context, nic hypervisor.NIC) (hypervisor.NICBackend, error) {
	if len(nic.MAC) != 6 {
		return hypervisor.NICBackend{}, d.errorf("add nic", fmt.Errorf("MAC %q is not 6 bytes", nic.MAC))
	}
	if _, err := d.info(); err != nil {
		return hypervisor.NICBackend{}, d.errorf("add nic", err)
	}
	if d.h.script == "" {
		return hypervisor.NICBackend{}, d.errorf("add nic", errors.New("NICs need vxn's own hotplug handler (xen.Options.NativeHotplug): the stock vif scripts want a bridge"))
	}
	n := libxl.NIC{Script: d.h.script, MTU: nic.MTU}
	copy(n.MAC[:], nic.MAC)
	devid, err := d.h.xl.NICAdd(d.domid, n)
	if err != nil {
		return hypervisor.NICBackend{}, d.errorf("add nic", err)
	}
	if err := vifConnected(d.domid, devid); err != nil {
		return hypervisor.NICBackend{}, d.errorf("add nic", err)
	}
	return hypervisor.NICBackend{Name: fmt.Sprintf("vif%d.%d", d.domid, devid), Netns: backendNetns}, nil
}

// vifConnected tells netback that the vif's hotplug step is done, as the
// stock vif scripts do last: libxl writes an empty hotplug-status node
// for every vif, and netback does not connect the guest's netfront until
// it reads "connected". (vxn's hotplug handler has nothing to do for a
// vif when libxl calls it: the backend is wired after NICAdd returns.)
func vifConnected(domid uint32, devid int) error {
	xs, err := xenstore.Open()
	if err != nil {
		return err
	}
	defer xs.Close()
	return xs.Write(fmt.Sprintf("backend/vif/%d/%d/hotplug-status", domid, devid), "connected")
}
