package xen

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vxn-runtime/vxn/libxl"
	"github.com/vxn-runtime/vxn/libxl/vchan"
	"github.com/vxn-runtime/vxn/libxl/xenstore"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
)

// The warm pool: idle guests booted ahead of time, each already running
// guestinit and serving its agent channel without a container. Create
// claims one that fits instead of booting a guest (see Hypervisor.claim);
// a Pool keeps their number up.
//
// An idle guest is named
//
//	vxnpool-<key>-<memory MiB>m<vCPUs>v-<n>
//
// where key (PoolKey) stands for what it was booted from: guest type,
// kernel, initramfs and kernel command line. A claimer tells from the
// name alone which guests fit, without asking a daemon. It claims one by
// renaming it to the container's domain name: libxl checks the old name
// and writes the new one in one xenstore transaction, so two claimers
// never get the same guest. A claimed guest belongs to its container
// from then on and is destroyed with it, never returned to the pool.
// Container domains are "vxn-<id>", so no container's domain can look
// like a pool guest.

// PoolPrefix begins the name of every pool guest.
const PoolPrefix = "vxnpool-"

// retiredPrefix begins the name a pool guest is given just before it is
// destroyed by the pool, which thereby claims it like a container would.
const retiredPrefix = PoolPrefix + "retired-"

var poolNameRE = regexp.MustCompile(`^vxnpool-([0-9a-f]{8})-([1-9][0-9]{0,6})m([1-9][0-9]{0,2})v-(0|[1-9][0-9]{0,5})$`)

// PoolKey names what a guest is booted from: its type, kernel, initramfs
// and command line. Files count by path, size and modification time, so a
// rebuilt initramfs makes the guests booted from the old one stale
// instead of claimable. Memory and vCPUs are not in it: they are in the
// guest's name.
func PoolKey(spec hypervisor.DomainSpec) (string, error) {
	h := sha256.New()
	typ := spec.Type
	if typ == "" {
		typ = hypervisor.GuestPV
	}
	fmt.Fprintf(h, "type %q\ncmdline %q\n", typ, spec.Cmdline)
	for _, f := range []struct{ what, path string }{{"kernel", spec.Kernel}, {"initramfs", spec.Ramdisk}} {
		what, p := f.what, f.path
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("pool: guest %s: %w", what, err)
		}
		fmt.Fprintf(h, "%s %q %d %d\n", what, p, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:8], nil
}

// poolGuestName is the name of idle guest n of key with the size of spec.
func poolGuestName(key string, spec hypervisor.DomainSpec, n int) string {
	return fmt.Sprintf("%s%s-%dm%dv-%d", PoolPrefix, key, spec.MemoryMiB, vcpus(spec), n)
}

func vcpus(spec hypervisor.DomainSpec) int {
	if spec.VCPUs < 1 {
		return 1
	}
	return spec.VCPUs
}

// poolName is a parsed idle guest name.
type poolName struct {
	key       string
	memoryMiB uint64
	vcpus     int
	n         int
}

func parsePoolName(name string) (poolName, bool) {
	m := poolNameRE.FindStringSubmatch(name)
	if m == nil {
		return poolName{}, false
	}
	mem, _ := strconv.ParseUint(m[2], 10, 64)
	cpus, _ := strconv.Atoi(m[3])
	n, _ := strconv.Atoi(m[4])
	return poolName{key: m[1], memoryMiB: mem, vcpus: cpus, n: n}, true
}

// poolXL is the part of libxl the pool uses (a fake in unit tests).
type poolXL interface {
	ListDomains() ([]libxl.DomainInfo, error)
	RenameDomain(domid uint32, oldName, newName string) error
	Destroy(domid uint32) error
}

// idle reports whether a pool guest can be handed out: it runs (or waits
// for an event) and is neither paused nor on its way out.
func idle(info libxl.DomainInfo) bool {
	return !info.Paused && !info.Shutdown && !info.Dying
}

// fits reports whether an idle guest called pn can serve spec, whose
// image has key: same image and vCPUs, at least the memory asked for
// (the claimer lowers it), and no CPU affinity asked for (it is set when a
// domain is built).
func fits(pn poolName, key string, spec hypervisor.DomainSpec) bool {
	return pn.key == key && pn.vcpus == vcpus(spec) && pn.memoryMiB >= spec.MemoryMiB && len(spec.CPU.Affinity) == 0
}

// claimIdle claims an idle guest that fits spec by renaming it to
// spec.Name: of the smallest that fit, the oldest (the likeliest to have
// finished booting). It returns false when none is left; a guest another
// claimer took first is skipped. The DomainInfo has the name the guest
// had.
func claimIdle(xl poolXL, key string, spec hypervisor.DomainSpec) (libxl.DomainInfo, bool, error) {
	doms, err := xl.ListDomains()
	if err != nil {
		return libxl.DomainInfo{}, false, fmt.Errorf("listing domains: %w", err)
	}
	var cands []libxl.DomainInfo
	for _, d := range doms {
		if pn, ok := parsePoolName(d.Name); ok && d.Domid != 0 && idle(d) && fits(pn, key, spec) {
			cands = append(cands, d)
		}
	}
	memory := func(d libxl.DomainInfo) uint64 { pn, _ := parsePoolName(d.Name); return pn.memoryMiB }
	sort.Slice(cands, func(i, j int) bool {
		if mi, mj := memory(cands[i]), memory(cands[j]); mi != mj {
			return mi < mj
		}
		return cands[i].Domid < cands[j].Domid
	})
	for _, d := range cands {
		err := xl.RenameDomain(d.Domid, d.Name, spec.Name)
		switch {
		case err == nil:
			return d, true, nil
		case errors.Is(err, libxl.ErrNameChanged) || errors.Is(err, libxl.ErrDomainNotFound):
			// Another claimer (or the pool retiring it) was first.
		default:
			return libxl.DomainInfo{}, false, fmt.Errorf("claiming %s: %w", d.Name, err)
		}
	}
	return libxl.DomainInfo{}, false, nil
}

// retire claims the pool guest d for the pool itself and destroys it.
// It returns false, nil when a container claimed it first: that guest is
// the container's and is left alone.
func retire(xl poolXL, d libxl.DomainInfo) (bool, error) {
	if !strings.HasPrefix(d.Name, retiredPrefix) {
		err := xl.RenameDomain(d.Domid, d.Name, retiredPrefix+strconv.FormatUint(uint64(d.Domid), 10))
		if errors.Is(err, libxl.ErrNameChanged) || errors.Is(err, libxl.ErrDomainNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("pool: retiring %s: %w", d.Name, err)
		}
	}
	if err := xl.Destroy(d.Domid); err != nil && !errors.Is(err, libxl.ErrDomainNotFound) {
		return false, fmt.Errorf("pool: destroying %s (domain %d): %w", d.Name, d.Domid, err)
	}
	return true, nil
}

// drainPool destroys every idle pool guest, of any key. Claimed guests
// are not pool guests any more and are left alone.
func drainPool(xl poolXL) (int, error) {
	doms, err := xl.ListDomains()
	if err != nil {
		return 0, fmt.Errorf("pool: listing domains: %w", err)
	}
	n := 0
	var errs []error
	for _, d := range doms {
		if d.Domid == 0 || !strings.HasPrefix(d.Name, PoolPrefix) {
			continue
		}
		done, err := retire(xl, d)
		if done {
			n++
		}
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// PoolGuest is an idle pool guest, as `vxn pool status` shows it.
type PoolGuest struct {
	Name      string `json:"name"`
	Domid     uint32 `json:"domid"`
	State     string `json:"state"`
	MemoryMiB uint64 `json:"memoryMiB"`
	VCPUs     int    `json:"vcpus"`
	// Current is false for a guest booted from another configuration
	// than the pool's now: no container will claim it.
	Current bool `json:"current"`
	// Ready: guestinit serves the agent channel (the guest has booted).
	Ready bool `json:"ready"`
}

// PoolGuests lists the pool guests of this host; key is the current
// configuration's PoolKey ("" if unknown).
func (h *Hypervisor) PoolGuests(key string) ([]PoolGuest, error) {
	doms, err := h.xl.ListDomains()
	if err != nil {
		return nil, fmt.Errorf("pool: listing domains: %w", err)
	}
	xs, err := xenstore.Open()
	if err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	defer xs.Close()
	var gs []PoolGuest
	for _, d := range doms {
		if d.Domid == 0 || !strings.HasPrefix(d.Name, PoolPrefix) {
			continue
		}
		g := PoolGuest{Name: d.Name, Domid: d.Domid, State: string(domainState(d)), VCPUs: d.VCPUs}
		if pn, ok := parsePoolName(d.Name); ok {
			g.MemoryMiB, g.Current = pn.memoryMiB, pn.key == key
			// The guest writes this key: only whether it exists counts.
			_, err := xs.Read(vchan.AgentPath(d.Domid) + "/event-channel")
			g.Ready = err == nil
		} else {
			g.State = "retired"
		}
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].Domid < gs[j].Domid })
	return gs, nil
}

// DrainPool destroys every idle pool guest and returns how many.
func (h *Hypervisor) DrainPool() (int, error) { return drainPool(h.xl) }

// Pool keeps Size idle guests of one configuration booted.
type Pool struct {
	xl   poolXL
	boot func(ctx context.Context, spec hypervisor.DomainSpec) error
	key  string
	spec hypervisor.DomainSpec
	size int
	logf func(format string, args ...any)

	retryBoot time.Time // no boot before this, after a failed one
}

// bootBackoff is how long a Pool waits after a failed boot before it
// tries again.
const bootBackoff = 10 * time.Second

// NewPool returns a Pool of size guests like spec (its Type, Kernel,
// Ramdisk, Cmdline, MemoryMiB and VCPUs; no disks). logf receives what
// the pool does.
func (h *Hypervisor) NewPool(spec hypervisor.DomainSpec, size int, logf func(format string, args ...any)) (*Pool, error) {
	if size < 1 {
		return nil, fmt.Errorf("pool: size %d: give at least 1", size)
	}
	if spec.MemoryMiB < 32 {
		return nil, fmt.Errorf("pool: memory %d MiB: give at least 32", spec.MemoryMiB)
	}
	if len(spec.Disks) > 0 || len(spec.Shares) > 0 {
		return nil, errors.New("pool: pool guests take no disks and no shares")
	}
	if _, err := domainConfig(spec, nil); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	key, err := PoolKey(spec)
	if err != nil {
		return nil, err
	}
	spec.VCPUs = vcpus(spec)
	return &Pool{
		xl: h.xl, key: key, spec: spec, size: size, logf: logf,
		boot: func(ctx context.Context, spec hypervisor.DomainSpec) error {
			// No disks and no console log: nothing of the domain is
			// held in this process.
			_, err := h.boot(ctx, spec)
			return err
		},
	}, nil
}

// Key is the PoolKey of the pool's guests.
func (p *Pool) Key() string { return p.key }

// Reconcile makes one pass: it destroys the pool's guests that died,
// guests of other configurations and retired guests left behind, then
// boots guests until Size are idle.
func (p *Pool) Reconcile(ctx context.Context) error {
	doms, err := p.xl.ListDomains()
	if err != nil {
		return fmt.Errorf("pool: listing domains: %w", err)
	}
	used := map[int]bool{}
	live := 0
	var errs []error
	for _, d := range doms {
		if d.Domid == 0 || !strings.HasPrefix(d.Name, PoolPrefix) {
			continue
		}
		pn, ok := parsePoolName(d.Name)
		ours := ok && pn.key == p.key && pn.memoryMiB == p.spec.MemoryMiB && pn.vcpus == p.spec.VCPUs
		if ours {
			used[pn.n] = true // its name, until it is gone
		}
		if d.Dying {
			continue // on its way out
		}
		if ours && !d.Shutdown {
			live++
			continue
		}
		why := "booted from another configuration"
		switch {
		case !ok:
			why = "left retired"
		case ours:
			why = fmt.Sprintf("stopped (%v)", d.ShutdownReason)
		}
		done, err := retire(p.xl, d)
		if done {
			p.logf("destroyed idle guest %s (domain %d): %s", d.Name, d.Domid, why)
		}
		errs = append(errs, err)
	}
	for n := 0; live < p.size && ctx.Err() == nil && !time.Now().Before(p.retryBoot); n++ {
		if used[n] {
			continue
		}
		spec := p.spec
		spec.Name = poolGuestName(p.key, p.spec, n)
		start := time.Now()
		if err := p.boot(ctx, spec); err != nil {
			p.retryBoot = time.Now().Add(bootBackoff)
			errs = append(errs, fmt.Errorf("pool: booting %s (next try in %v): %w", spec.Name, bootBackoff, err))
			break
		}
		p.logf("booted idle guest %s in %v", spec.Name, time.Since(start).Round(time.Millisecond))
		used[n] = true
		live++
	}
	return errors.Join(errs...)
}

// Run reconciles every interval until ctx ends, then destroys the idle
// guests. Errors of a pass are logged; the next pass tries again.
func (p *Pool) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := p.Reconcile(ctx); err != nil {
			p.logf("%v", err)
		}
		select {
		case <-ctx.Done():
			n, err := drainPool(p.xl)
			p.logf("stopping: destroyed %d idle guests", n)
			return err
		case <-t.C:
		}
	}
}
