package xen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/vxn-runtime/vxn/libxl"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
)

// fakeXL is a domain table whose rename is atomic as libxl's is.
type fakeXL struct {
	mu      sync.Mutex
	doms    map[uint32]*libxl.DomainInfo
	next    uint32
	listErr error
	// between runs after every ListDomains, outside the lock: other
	// actors move in between a claimer's listing and its rename.
	between func()
}

func newFakeXL() *fakeXL {
	return &fakeXL{doms: map[uint32]*libxl.DomainInfo{0: {Domid: 0, Name: "Domain-0"}}, next: 1}
}

func (f *fakeXL) add(name string) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	f.doms[id] = &libxl.DomainInfo{Domid: id, Name: name, Running: true}
	return id
}

func (f *fakeXL) ListDomains() ([]libxl.DomainInfo, error) {
	f.mu.Lock()
	var ds []libxl.DomainInfo
	for _, d := range f.doms {
		ds = append(ds, *d)
	}
	err := f.listErr
	f.mu.Unlock()
	sort.Slice(ds, func(i, j int) bool { return ds[i].Domid > ds[j].Domid }) // any order
	if f.between != nil {
		f.between()
	}
	return ds, err
}

func (f *fakeXL) RenameDomain(domid uint32, oldName, newName string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.doms[domid]
	if d == nil {
		return libxl.ErrDomainNotFound
	}
	if d.Name != oldName {
		return libxl.ErrNameChanged
	}
	for _, o := range f.doms {
		if o.Name == newName {
			return libxl.ErrInvalid
		}
	}
	d.Name = newName
	return nil
}

func (f *fakeXL) Destroy(domid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.doms[domid] == nil {
		return libxl.ErrDomainNotFound
	}
	delete(f.doms, domid)
	return nil
}

func (f *fakeXL) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ns []string
	for _, d := range f.doms {
		if d.Domid != 0 {
			ns = append(ns, d.Name)
		}
	}
	sort.Strings(ns)
	return ns
}

func (f *fakeXL) set(domid uint32, mod func(*libxl.DomainInfo)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mod(f.doms[domid])
}

// guestFiles makes a kernel and an initramfs and returns a spec that
// boots them.
func guestFiles(t *testing.T) hypervisor.DomainSpec {
	dir := t.TempDir()
	spec := hypervisor.DomainSpec{
		Kernel: filepath.Join(dir, "vmlinuz"), Ramdisk: filepath.Join(dir, "initramfs.img"),
		Cmdline: "quiet", MemoryMiB: 128, VCPUs: 1,
	}
	for _, p := range []string{spec.Kernel, spec.Ramdisk} {
		if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return spec
}

func TestPoolKey(t *testing.T) {
	spec := guestFiles(t)
	key, err := PoolKey(spec)
	if err != nil || len(key) != 8 {
		t.Fatalf("PoolKey = %q, %v", key, err)
	}
	same := spec
	same.MemoryMiB, same.VCPUs, same.Name = 512, 4, "vxn-x"
	same.Disks = []hypervisor.Disk{{Path: "/img", Vdev: "xvda"}}
	if k, _ := PoolKey(same); k != key {
		t.Errorf("memory, vCPUs, name and disks changed the key: %s, %s", k, key)
	}
	pv := spec
	pv.Type = hypervisor.GuestPV
	if k, _ := PoolKey(pv); k != key {
		t.Errorf("an empty type is PV: %s, %s", k, key)
	}
	for name, mod := range map[string]func(*hypervisor.DomainSpec){
		"type":    func(s *hypervisor.DomainSpec) { s.Type = hypervisor.GuestPVH },
		"cmdline": func(s *hypervisor.DomainSpec) { s.Cmdline = "quiet loglevel=7" },
		"rebuilt initramfs": func(s *hypervisor.DomainSpec) {
			if err := os.WriteFile(s.Ramdisk, []byte("a new initramfs"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"other kernel": func(s *hypervisor.DomainSpec) {
			s.Kernel = s.Ramdisk
		},
	} {
		s := spec
		mod(&s)
		if k, err := PoolKey(s); err != nil || k == key {
			t.Errorf("%s: key %s, %v; want a key other than %s", name, k, err, key)
		}
	}
	spec.Kernel = filepath.Join(t.TempDir(), "missing")
	if _, err := PoolKey(spec); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing kernel: %v", err)
	}
}

func TestPoolNames(t *testing.T) {
	spec := hypervisor.DomainSpec{MemoryMiB: 256, VCPUs: 2}
	name := poolGuestName("0123abcd", spec, 7)
	if name != "vxnpool-0123abcd-256m2v-7" {
		t.Errorf("name %q", name)
	}
	pn, ok := parsePoolName(name)
	if !ok || pn != (poolName{key: "0123abcd", memoryMiB: 256, vcpus: 2, n: 7}) {
		t.Errorf("parse(%s) = %+v, %v", name, pn, ok)
	}
	for _, ok := range []hypervisor.DomainSpec{spec, {MemoryMiB: 128, VCPUs: 2}, {MemoryMiB: 256, VCPUs: 2, CPU: hypervisor.CPU{Weight: 64, CapPercent: 50}}} {
		if !fits(pn, "0123abcd", ok) {
			t.Errorf("%s does not fit %+v", name, ok)
		}
	}
	for _, other := range []hypervisor.DomainSpec{{MemoryMiB: 257, VCPUs: 2}, {MemoryMiB: 256, VCPUs: 1}, {MemoryMiB: 256, VCPUs: 3},
		{MemoryMiB: 256, VCPUs: 2, CPU: hypervisor.CPU{Affinity: []int{1}}}} {
		if fits(pn, "0123abcd", other) {
			t.Errorf("%s fits %+v", name, other)
		}
	}
	if fits(pn, "0123abce", spec) {
		t.Errorf("%s fits another key", name)
	}
	for _, bad := range []string{
		"vxn-pool-0123abcd-256m2v-7", "vxnpool-0123ABCD-256m2v-7", "vxnpool-0123abc-256m2v-7",
		"vxnpool-0123abcd-0m2v-7", "vxnpool-0123abcd-256m0v-7", "vxnpool-0123abcd-256m2v-07",
		"vxnpool-0123abcd-256m2v-", "vxnpool-retired-12", "vxnpool-0123abcd-256m2v-7x",
		"vxnpool-0123abcd-99999999m2v-1",
	} {
		if pn, ok := parsePoolName(bad); ok {
			t.Errorf("parse(%s) = %+v", bad, pn)
		}
	}
}

func TestClaimIdle(t *testing.T) {
	xl := newFakeXL()
	spec := hypervisor.DomainSpec{Name: "vxn-c1", MemoryMiB: 128, VCPUs: 1}
	xl.add("vxn-other")
	xl.add(poolGuestName("aaaaaaaa", spec, 0))                                            // other image
	xl.add(poolGuestName("bbbbbbbb", hypervisor.DomainSpec{MemoryMiB: 64}, 1))            // too small
	xl.add(poolGuestName("bbbbbbbb", hypervisor.DomainSpec{MemoryMiB: 128, VCPUs: 2}, 2)) // other vCPUs
	paused := xl.add(poolGuestName("bbbbbbbb", spec, 3))
	xl.set(paused, func(d *libxl.DomainInfo) { d.Paused = true })
	crashed := xl.add(poolGuestName("bbbbbbbb", spec, 4))
	xl.set(crashed, func(d *libxl.DomainInfo) { d.Shutdown, d.ShutdownReason = true, libxl.ShutdownCrash })
	bigger := xl.add(poolGuestName("bbbbbbbb", hypervisor.DomainSpec{MemoryMiB: 256, VCPUs: 1}, 6))
	older := xl.add(poolGuestName("bbbbbbbb", spec, 5))
	newer := xl.add(poolGuestName("bbbbbbbb", spec, 0))

	info, ok, err := claimIdle(xl, "bbbbbbbb", spec)
	if err != nil || !ok || info.Domid != older || info.Name != poolGuestName("bbbbbbbb", spec, 5) {
		t.Fatalf("claim = %+v, %v, %v; want domain %d", info, ok, err, older)
	}
	spec.Name = "vxn-c2"
	if info, ok, err = claimIdle(xl, "bbbbbbbb", spec); err != nil || !ok || info.Domid != newer {
		t.Fatalf("second claim = %+v, %v, %v; want domain %d", info, ok, err, newer)
	}
	spec.Name = "vxn-c3"
	if info, ok, err = claimIdle(xl, "bbbbbbbb", spec); err != nil || !ok || info.Domid != bigger {
		t.Fatalf("third claim = %+v, %v, %v; want the bigger guest %d", info, ok, err, bigger)
	}
	spec.Name = "vxn-c4"
	if info, ok, err = claimIdle(xl, "bbbbbbbb", spec); err != nil || ok {
		t.Fatalf("fourth claim = %+v, %v, %v; want none left", info, ok, err)
	}
	names := fmt.Sprint(xl.names())
	for _, want := range []string{"vxn-c1", "vxn-c2", poolGuestName("bbbbbbbb", spec, 3), poolGuestName("bbbbbbbb", spec, 4)} {
		if !contains(xl.names(), want) {
			t.Errorf("no %s among %s", want, names)
		}
	}

	xl.listErr = errors.New("xenstore down")
	if _, _, err := claimIdle(xl, "bbbbbbbb", spec); err == nil {
		t.Error("a listing error is not reported")
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Claimers that race for the same guests: each guest goes to exactly one,
// and the losers move on to the next guest or find none.
func TestClaimIdleRace(t *testing.T) {
	xl := newFakeXL()
	spec := hypervisor.DomainSpec{MemoryMiB: 128, VCPUs: 1}
	const guests, claimers = 3, 8
	for n := range guests {
		xl.add(poolGuestName("cccccccc", spec, n))
	}
	// Every claimer lists before any renames: all see all the guests and
	// all go for the same oldest one first.
	var listed sync.WaitGroup
	listed.Add(claimers)
	xl.between = func() { listed.Done(); listed.Wait() }
	got := make(chan uint32, claimers)
	var wg sync.WaitGroup
	for i := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := spec
			s.Name = fmt.Sprintf("vxn-c%d", i)
			info, ok, err := claimIdle(xl, "cccccccc", s)
			if err != nil {
				t.Errorf("claimer %d: %v", i, err)
			}
			if ok {
				got <- info.Domid
			}
		}()
	}
	wg.Wait()
	close(got)
	seen := map[uint32]bool{}
	for id := range got {
		if seen[id] {
			t.Errorf("domain %d claimed twice", id)
		}
		seen[id] = true
	}
	if len(seen) != guests {
		t.Errorf("%d guests claimed, want %d", len(seen), guests)
	}
	for _, n := range xl.names() {
		if _, ok := parsePoolName(n); ok {
			t.Errorf("%s left unclaimed", n)
		}
	}
}

// stubBoot records the guests a Pool boots as running domains.
func stubPool(xl *fakeXL, spec hypervisor.DomainSpec, size int) (*Pool, *[]string) {
	var logs []string
	p := &Pool{
		xl: xl, key: "dddddddd", spec: spec, size: size,
		logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
		boot: func(_ context.Context, s hypervisor.DomainSpec) error {
			if len(s.Disks) > 0 || s.MemoryMiB != spec.MemoryMiB {
				return fmt.Errorf("boot of %+v", s)
			}
			xl.add(s.Name)
			return nil
		},
	}
	return p, &logs
}

func TestPoolReconcile(t *testing.T) {
	xl := newFakeXL()
	spec := hypervisor.DomainSpec{MemoryMiB: 96, VCPUs: 1}
	p, logs := stubPool(xl, spec, 2)
	ctx := context.Background()
	if err := p.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{poolGuestName("dddddddd", spec, 0), poolGuestName("dddddddd", spec, 1)}
	if got := xl.names(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the first pass: %v, want %v", got, want)
	}
	if err := p.Reconcile(ctx); err != nil || len(xl.names()) != 2 {
		t.Fatalf("a full pool changed: %v, %v", xl.names(), err)
	}

	// A container claims guest 0, guest 1 crashes, a stale guest of
	// another configuration and a half-retired one are around.
	claimSpec := spec
	claimSpec.Name = "vxn-web"
	claimed, ok, err := claimIdle(xl, "dddddddd", claimSpec)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	id1, _ := xl.NameToDomid(want[1])
	xl.set(id1, func(d *libxl.DomainInfo) { d.Shutdown, d.ShutdownReason = true, libxl.ShutdownCrash })
	stale := xl.add(poolGuestName("eeeeeeee", spec, 0))
	retired := xl.add(retiredPrefix + "99")
	dying := xl.add(poolGuestName("dddddddd", spec, 5))
	xl.set(dying, func(d *libxl.DomainInfo) { d.Dying = true })
	if err := p.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	got := xl.names()
	if !contains(got, "vxn-web") || len(got) != 4 {
		t.Errorf("after the second pass: %v; want vxn-web, the dying guest and two new idle guests", got)
	}
	for _, id := range []uint32{id1, stale, retired} {
		if _, ok := xl.doms[id]; ok {
			t.Errorf("domain %d not destroyed: %v", id, got)
		}
	}
	if _, ok := xl.doms[claimed.Domid]; !ok {
		t.Error("the claimed guest was destroyed")
	}
	if len(*logs) < 4 {
		t.Errorf("log: %q", *logs)
	}

	// Drain: every idle guest goes, the claimed one stays.
	n, err := drainPool(xl)
	if err != nil || n != 3 {
		t.Errorf("drain: %d, %v (left %v)", n, err, xl.names())
	}
	if got := xl.names(); fmt.Sprint(got) != "[vxn-web]" {
		t.Errorf("after drain: %v", got)
	}
}

func (f *fakeXL) NameToDomid(name string) (uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, d := range f.doms {
		if d.Name == name {
			return id, true
		}
	}
	return 0, false
}

// A container that claims the guest the pool is retiring keeps it.
func TestRetireLosesToClaimer(t *testing.T) {
	xl := newFakeXL()
	spec := hypervisor.DomainSpec{MemoryMiB: 128, VCPUs: 1}
	id := xl.add(poolGuestName("ffffffff", spec, 0))
	doms, _ := xl.ListDomains()
	spec.Name = "vxn-first"
	if _, ok, err := claimIdle(xl, "ffffffff", spec); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for _, d := range doms {
		if d.Domid != id {
			continue
		}
		if done, err := retire(xl, d); done || err != nil {
			t.Errorf("retire = %v, %v", done, err)
		}
	}
	if fmt.Sprint(xl.names()) != "[vxn-first]" {
		t.Errorf("domains %v", xl.names())
	}
}

func TestPoolBootFailureBacksOff(t *testing.T) {
	xl := newFakeXL()
	p, _ := stubPool(xl, hypervisor.DomainSpec{MemoryMiB: 64, VCPUs: 1}, 3)
	boots := 0
	p.boot = func(context.Context, hypervisor.DomainSpec) error { boots++; return errors.New("out of memory") }
	if err := p.Reconcile(context.Background()); err == nil || boots != 1 {
		t.Fatalf("first pass: %v after %d boots", err, boots)
	}
	if err := p.Reconcile(context.Background()); err != nil || boots != 1 {
		t.Fatalf("second pass at once: %v after %d boots; want no boot", err, boots)
	}
	p.retryBoot = time.Now().Add(-time.Second)
	if err := p.Reconcile(context.Background()); err == nil || boots != 2 {
		t.Fatalf("after the backoff: %v after %d boots", err, boots)
	}
}

func TestPoolRunDrainsOnStop(t *testing.T) {
	xl := newFakeXL()
	p, _ := stubPool(xl, hypervisor.DomainSpec{MemoryMiB: 64, VCPUs: 1}, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx, 10*time.Millisecond) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(xl.names()) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := xl.names(); len(n) != 0 {
		t.Errorf("left after stop: %v", n)
	}
}
