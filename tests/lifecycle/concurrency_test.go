package lifecycle_test

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// listEntry is one element of `vxn list --format json` (runc's keys).
type listEntry struct {
	ID      string `json:"id"`
	Pid     int    `json:"pid"`
	Status  string `json:"status"`
	Bundle  string `json:"bundle"`
	Created string `json:"created"`
	Owner   string `json:"owner"`
}

// list runs `vxn list --format json`.
func (h *harness) list() []listEntry {
	h.t.Helper()
	r := h.mustVxn("list", "--format", "json")
	var out []listEntry
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		h.t.Fatalf("list --format json: %v: %q", err, r.stdout)
	}
	return out
}

// TestConcurrentSameID races two creates of one ID: exactly one wins, the
// other fails cleanly, and the winner works.
func TestConcurrentSameID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	b := h.bundle(withArgs("sh", "-c", "echo winner"))
	for round := 0; round < 3; round++ {
		id := fmt.Sprintf("same%d", round)
		type attempt struct {
			c   *ctr
			r   result
			err error
		}
		var (
			wg  sync.WaitGroup
			res [2]attempt
		)
		gate := make(chan struct{})
		for i := range res {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				res[i].c, res[i].r, res[i].err = h.createRaw(nil, nil, id, b, nil)
			}()
		}
		close(gate)
		wg.Wait()
		var winner *ctr
		for _, a := range res {
			if a.err != nil {
				t.Fatal(a.err)
			}
			switch a.r.code {
			case 0:
				if winner != nil {
					t.Fatalf("both creates of %s succeeded", id)
				}
				winner = a.c
				if a.r.stdout != "" || a.r.stderr != "" {
					t.Errorf("the winning create printed: %v", a.r)
				}
			default:
				wantFail(t, a.r, "already exists")
				if _, err := os.Stat(a.c.pidFile); err == nil {
					t.Errorf("the losing create wrote its pid file")
				}
			}
		}
		if winner == nil {
			t.Fatalf("no create of %s succeeded: %v / %v", id, res[0].r, res[1].r)
		}
		st := h.wantStatus(id, specs.StateCreated)
		if pid := winner.pid(); st.Pid != pid || !alive(pid) {
			t.Errorf("state pid %d, winner's pid file %d (alive: %v)", st.Pid, pid, alive(pid))
		}
		h.mustVxn("start", id)
		h.waitStatus(id, specs.StateStopped, 10*time.Second)
		if out := winner.output(); out != "winner\n" {
			t.Errorf("the winner printed %q, want %q", out, "winner\n")
		}
		h.mustVxn("delete", id)
		h.assertGone(id)
	}
}

// TestConcurrentMany creates, starts and deletes 20 containers at once.
func TestConcurrentMany(t *testing.T) {
	t.Parallel()
	const n = 20
	h := newHarness(t)
	// One bundle for all: runc allows it, and engines do it.
	b := h.bundle(withArgs("sh", "-c", `read x; echo "got $x"`))
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("many%02d", i)
	}
	ctrs := make([]*ctr, n)
	stdins := make([]*os.File, n)
	errs := make([]error, n)
	results := make([]result, n)
	var wg sync.WaitGroup
	for i, id := range ids {
		r, w := h.pipe()
		stdins[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctrs[i], results[i], errs[i] = h.createRaw(nil, nil, id, b, r)
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i].code != 0 {
			t.Fatalf("concurrent create: %v", results[i])
		}
	}
	list := h.list()
	if len(list) != n {
		t.Fatalf("list shows %d containers, want %d: %+v", len(list), n, list)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	for i, e := range list {
		if e.ID != ids[i] || e.Status != string(specs.StateCreated) || e.Pid != ctrs[i].pid() || e.Bundle != b {
			t.Errorf("list entry %+v: want id %s, status created, pid %d, bundle %s", e, ids[i], ctrs[i].pid(), b)
		}
	}

	// Start all at once.
	runAll := func(args func(id string) []string) {
		t.Helper()
		var wg sync.WaitGroup
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i], errs[i] = execVxn(nil, append([]string{"--root", h.root}, args(id)...)...)
			}()
		}
		wg.Wait()
		for i := range ids {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if results[i].code != 0 {
				t.Fatalf("%v", results[i])
			}
		}
	}
	runAll(func(id string) []string { return []string{"start", id} })
	for _, e := range h.list() {
		if e.Status != string(specs.StateRunning) {
			t.Errorf("after start: %s is %s, want running", e.ID, e.Status)
		}
	}
	// Each container gets its own line on its own stdin.
	for i, w := range stdins {
		fmt.Fprintf(w, "line-%d\n", i)
		w.Close()
	}
	if !eventually(20*time.Second, func() bool {
		for _, e := range h.list() {
			if e.Status != string(specs.StateStopped) || !h.monitorGone(e.ID) {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("not every container stopped: %+v", h.list())
	}
	for i, c := range ctrs {
		if out, want := c.output(), fmt.Sprintf("got line-%d\n", i); out != want {
			t.Errorf("%s printed %q, want %q", c.id, out, want)
		}
	}
	runAll(func(id string) []string { return []string{"delete", id} })
	if l := h.list(); len(l) != 0 {
		t.Errorf("list after deleting all: %+v", l)
	}
	if l := h.rootLeaks(); len(l) > 0 {
		t.Errorf("left after deleting all:\n%s", strings.Join(l, "\n"))
	}
}
