package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vxn-runtime/vxn/tests/testutil"
)

// poolMemoryMiB is the pool's guest memory: the containers' (configFile),
// so that they fit.
const poolMemoryMiB = 128

// poolStatus is `vxn pool status --format json`.
type poolStatus struct {
	Running bool `json:"running"`
	Pid     int  `json:"pid"`
	Guests  []struct {
		Name    string `json:"name"`
		Domid   uint32 `json:"domid"`
		State   string `json:"state"`
		Current bool   `json:"current"`
		Ready   bool   `json:"ready"`
	} `json:"guests"`
}

// poolCLI returns a CLI whose configuration has a pool of size guests,
// and starts the pool. The pool is stopped at the end of the test, which
// then checks that no pool guest is left.
func poolCLI(t *testing.T, size int) testutil.CLI {
	t.Helper()
	c := cli(t)
	var cfg map[string]any
	b, err := os.ReadFile(configFile)
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	cfg["pool"] = map[string]any{"size": size, "memoryMiB": poolMemoryMiB, "vcpus": 1}
	b, _ = json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Global = []string{"--config", path, "--debug"}
	t.Cleanup(func() {
		r := c.Run(t, nil, "pool", "stop")
		if r.Code != 0 {
			t.Errorf("pool stop: %v", r)
		}
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(c.Root, "pool", "manager.log")); err == nil {
				t.Logf("=== pool manager log (last 4000 bytes):\n%s", tail(log, 4000))
			}
		}
		if left := poolDomains(t); len(left) > 0 {
			t.Errorf("pool guests left after pool stop: %v", left)
		}
	})
	start := time.Now()
	c.MustRun(t, "pool", "start")
	waitPool(t, c, size, nil)
	t.Logf("TIMING pool of %d ready: %s", size, time.Since(start).Round(time.Millisecond))
	return c
}

func readPool(t *testing.T, c testutil.CLI) poolStatus {
	t.Helper()
	r := c.MustRun(t, "pool", "status", "--format", "json")
	var st poolStatus
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil {
		t.Fatalf("pool status: %v: %q", err, r.Stdout)
	}
	return st
}

// readyGuests are the domids of the pool's booted idle guests.
func readyGuests(st poolStatus) []uint32 {
	var ids []uint32
	for _, g := range st.Guests {
		if g.Ready && g.Current && g.State == "running" {
			ids = append(ids, g.Domid)
		}
	}
	slices.Sort(ids)
	return ids
}

// waitPool waits until n idle guests are booted, none of them in not.
func waitPool(t *testing.T, c testutil.CLI, n int, not []uint32) []uint32 {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	for {
		st := readPool(t, c)
		if !st.Running {
			t.Fatalf("the pool manager does not run: %+v", st)
		}
		ids := slices.DeleteFunc(readyGuests(st), func(id uint32) bool { return slices.Contains(not, id) })
		if len(ids) >= n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d idle guests ready after 4 minutes: %+v", len(ids), n, st)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// poolDomains lists the domains named like pool guests.
func poolDomains(t *testing.T) []string {
	out, err := exec.Command("xl", "list").Output()
	if err != nil {
		t.Fatalf("xl list: %v", err)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "vxnpool-") {
			names = append(names, f[0])
		}
	}
	return names
}

// domid is the domain ID of container id's guest.
func domid(t *testing.T, id string) uint32 {
	t.Helper()
	out, err := exec.Command("xl", "domid", "vxn-"+id).Output()
	n, perr := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 32)
	if err != nil || perr != nil {
		t.Fatalf("xl domid vxn-%s: %q, %v", id, out, err)
	}
	return uint32(n)
}

// waitMemory waits until container id's guest has at most mib MiB, as
// `xl list` shows it (the balloon driver gives memory back gradually).
func waitMemory(t *testing.T, id string, mib int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := exec.Command("xl", "list", "vxn-"+id).Output()
		if err != nil {
			t.Fatalf("xl list vxn-%s: %v", id, err)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		f := strings.Fields(lines[len(lines)-1])
		if len(f) > 2 {
			if got, err := strconv.Atoi(f[2]); err == nil && got <= mib {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("guest of %s still has more than %d MiB after a minute:\n%s", id, mib, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// timedCreate creates container id and returns how long create took.
func timedCreate(t *testing.T, c testutil.CLI, bundle, id string) time.Duration {
	t.Helper()
	start := time.Now()
	c.MustRun(t, "create", "--bundle", bundle, id)
	return time.Since(start)
}

// finish starts created containers, waits until they stop and deletes
// them.
func finish(t *testing.T, c testutil.CLI, ids ...string) {
	t.Helper()
	for _, id := range ids {
		c.MustRun(t, "start", id)
	}
	for _, id := range ids {
		c.WaitStatus(t, id, specs.StateStopped, 2*time.Minute)
		c.MustRun(t, "delete", id)
	}
	for _, id := range ids {
		assertClean(t, c, id)
	}
}

// TestPoolWarmCreate: containers land in idle guests, run correctly and
// leave nothing; the pool refills; a container the pool does not fit
// boots cold. It measures cold against warm create in the same run.
func TestPoolWarmCreate(t *testing.T) {
	const rounds = 3
	b, _ := testutil.Bundle(t, "sh", "-c", "exit 0")
	cold := cli(t)
	var colds, warms []time.Duration
	for i := range rounds {
		id := fmt.Sprintf("cold%d", i)
		colds = append(colds, timedCreate(t, cold, b, id))
		finish(t, cold, id)
	}

	c := poolCLI(t, 2)
	for i := range rounds {
		idle := waitPool(t, c, 2, nil)
		id := fmt.Sprintf("warm%d", i)
		warms = append(warms, timedCreate(t, c, b, id))
		if got := domid(t, id); !slices.Contains(idle, got) {
			t.Errorf("%s runs in domain %d, not in an idle guest %v", id, got, idle)
		}
		finish(t, c, id)
	}
	t.Logf("TIMING create cold %v (median %v), warm %v (median %v): warm/cold %.2f",
		colds, median(colds), warms, median(warms), float64(median(warms))/float64(median(colds)))

	// Output through the warm path, with run.
	idle := waitPool(t, c, 2, nil)
	echo, _ := testutil.Bundle(t, "/bin/echo", "hello from a warm guest")
	if r := c.Run(t, nil, "run", "--bundle", echo, "warm-echo"); r.Code != 0 || r.Stdout != "hello from a warm guest\n" {
		t.Fatalf("run: %v", r)
	}
	assertClean(t, c, "warm-echo")
	st := readPool(t, c)
	for _, g := range st.Guests {
		idle = slices.DeleteFunc(idle, func(id uint32) bool { return id == g.Domid })
	}
	if len(idle) != 1 {
		t.Errorf("run took %d idle guests (%v are gone), want 1", len(idle), idle)
	}

	// A smaller guest lands in an idle guest, whose memory goes down to
	// what it asked for.
	idle = waitPool(t, c, 2, nil)
	small, spec := testutil.Bundle(t, "sh", "-c", "exit 0")
	spec.Annotations = map[string]string{"org.vxn.memory-mib": strconv.Itoa(poolMemoryMiB - 32)}
	testutil.WriteSpec(t, small, spec)
	timedCreate(t, c, small, "small")
	if got := domid(t, "small"); !slices.Contains(idle, got) {
		t.Errorf("a %d MiB guest was not taken from a pool of %d MiB guests", poolMemoryMiB-32, poolMemoryMiB)
	}
	waitMemory(t, "small", poolMemoryMiB-32)
	finish(t, c, "small")

	// A guest of another size boots cold and leaves the pool alone.
	idle = waitPool(t, c, 2, nil)
	big, spec := testutil.Bundle(t, "sh", "-c", "exit 0")
	spec.Annotations = map[string]string{"org.vxn.memory-mib": strconv.Itoa(poolMemoryMiB + 32)}
	testutil.WriteSpec(t, big, spec)
	timedCreate(t, c, big, "big")
	if got := domid(t, "big"); slices.Contains(idle, got) {
		t.Errorf("a %d MiB guest was taken from a pool of %d MiB guests", poolMemoryMiB+32, poolMemoryMiB)
	}
	if now := readyGuests(readPool(t, c)); !slices.Equal(now, idle) {
		t.Errorf("idle guests %v before a cold create, %v after", idle, now)
	}
	finish(t, c, "big")
	waitPool(t, c, 2, nil)
}

// TestPoolConcurrentClaims: two creates at once get different idle
// guests.
func TestPoolConcurrentClaims(t *testing.T) {
	c := poolCLI(t, 2)
	idle := waitPool(t, c, 2, nil)
	b, _ := testutil.Bundle(t, "sh", "-c", "exit 0")
	var wg sync.WaitGroup
	for _, id := range []string{"race1", "race2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := c.Run(t, nil, "create", "--bundle", b, id); r.Code != 0 {
				t.Errorf("create %s: %v", id, r)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	d1, d2 := domid(t, "race1"), domid(t, "race2")
	if d1 == d2 || !slices.Contains(idle, d1) || !slices.Contains(idle, d2) {
		t.Errorf("concurrent creates got domains %d and %d; idle guests were %v", d1, d2, idle)
	}
	finish(t, c, "race1", "race2")
}

// TestPoolReplacesDeadGuest: an idle guest destroyed behind the pool's
// back is replaced.
func TestPoolReplacesDeadGuest(t *testing.T) {
	c := poolCLI(t, 2)
	idle := waitPool(t, c, 2, nil)
	if out, err := exec.Command("xl", "destroy", strconv.FormatUint(uint64(idle[0]), 10)).CombinedOutput(); err != nil {
		t.Fatalf("xl destroy: %v: %s", err, out)
	}
	start := time.Now()
	now := waitPool(t, c, 2, idle[:1])
	t.Logf("domain %d destroyed; idle guests now %v after %s", idle[0], now, time.Since(start).Round(time.Millisecond))
}

// TestPoolStop: stop destroys the idle guests and leaves claimed ones to
// their containers.
func TestPoolStop(t *testing.T) {
	c := poolCLI(t, 2)
	waitPool(t, c, 2, nil)
	b, _ := testutil.Bundle(t, "sh", "-c", "exit 7")
	c.MustRun(t, "create", "--bundle", b, "claimed")
	c.MustRun(t, "pool", "stop")
	if left := poolDomains(t); len(left) > 0 {
		t.Errorf("pool guests left: %v", left)
	}
	if st := readPool(t, c); st.Running || len(st.Guests) > 0 {
		t.Errorf("after stop: %+v", st)
	}
	c.MustRun(t, "start", "claimed")
	c.WaitStatus(t, "claimed", specs.StateStopped, 2*time.Minute)
	c.MustRun(t, "delete", "claimed")
	assertClean(t, c, "claimed")
}
