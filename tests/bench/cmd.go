package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cmdTimeout bounds every command the bench runs.
const cmdTimeout = 10 * time.Minute

// runner runs the commands under test with their stdout and stderr in
// files (as engines give them: a monitor that keeps them open does not
// hold the command up) and times them.
type runner struct {
	scratch string // where the output files go
}

// run runs argv with stdin /dev/null and returns how long it took. A
// non-zero exit is an error that quotes the stderr.
func (r *runner) run(argv ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := os.CreateTemp(r.scratch, "out")
	if err != nil {
		return 0, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	if err != nil {
		b, _ := os.ReadFile(out.Name())
		return took, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(string(b), 2000))
	}
	return took, nil
}

// output runs argv and returns its stdout.
func output(argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, tail(stderr.String(), 2000))
	}
	return string(out), nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// vxnCLI is the vxn under test with its state root and configuration.
type vxnCLI struct {
	bin, root, config string
}

func (v vxnCLI) argv(args ...string) []string {
	return append([]string{v.bin, "--root", v.root, "--config", v.config}, args...)
}

// state returns the OCI status of a container.
func (v vxnCLI) state(id string) (string, error) {
	out, err := output(v.argv("state", id)...)
	if err != nil {
		return "", err
	}
	var st struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return "", fmt.Errorf("vxn state %s: %w: %q", id, err, out)
	}
	return st.Status, nil
}

// waitState polls until the container has the status.
func (v vxnCLI) waitState(id, status string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		st, err := v.state(id)
		if err != nil {
			return err
		}
		if st == status {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s is %s, not %s, after %v", id, st, status, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// forceDelete removes what a failed measure left.
func (v vxnCLI) forceDelete(id string) {
	_, _ = output(v.argv("delete", "--force", id)...)
}

// hasCommand says whether the vxn binary has a top-level command: the
// first word of a line in the COMMANDS section of its help.
func hasCommand(help, name string) bool {
	in := false
	sc := bufio.NewScanner(strings.NewReader(help))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "COMMANDS:"):
			in = true
			continue
		case in && line != "" && !strings.HasPrefix(line, " "):
			in = false
		}
		if f := strings.Fields(line); in && len(f) > 0 && strings.TrimSuffix(f[0], ",") == name {
			return true
		}
	}
	return false
}

// poolGuests is `vxn pool status --format json`, the fields the bench uses.
type poolGuests struct {
	Running bool        `json:"running"`
	Guests  []poolGuest `json:"guests"`
}

type poolGuest struct {
	Domid   uint32 `json:"domid"`
	Ready   bool   `json:"ready"`
	Current bool   `json:"current"`
}

// ready returns the domids of the idle guests a create may claim.
func (p poolGuests) ready() map[uint32]bool {
	ids := map[uint32]bool{}
	for _, g := range p.Guests {
		if g.Ready && g.Current {
			ids[g.Domid] = true
		}
	}
	return ids
}

// claimedFrom says whether one of the ready guests has left the pool. By
// domid: the manager may give a replacement the name of the guest it
// replaces, never its domid.
func (p poolGuests) claimedFrom(ready map[uint32]bool) bool {
	for id := range ready {
		if !slices.ContainsFunc(p.Guests, func(g poolGuest) bool { return g.Domid == id }) {
			return true
		}
	}
	return false
}

func (v vxnCLI) poolStatus() (poolGuests, error) {
	var p poolGuests
	out, err := output(v.argv("pool", "status", "--format", "json")...)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		return p, fmt.Errorf("vxn pool status: %w: %q", err, out)
	}
	return p, nil
}

// waitPool waits until size idle guests are ready and returns their domids.
func (v vxnCLI) waitPool(size int, timeout time.Duration) (map[uint32]bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		p, err := v.poolStatus()
		if err != nil {
			return nil, err
		}
		if !p.Running {
			return nil, errors.New("the pool manager is not running")
		}
		if r := p.ready(); len(r) >= size {
			return r, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d pool guests ready after %v", len(p.ready()), size, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// procStatusKiB reads a "Name: N kB" field of /proc/PID/status.
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	return kibField(string(b), field)
}

// kibField finds "field: N kB" in a /proc file.
func kibField(text, field string) (int64, error) {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != field {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %q: %w", field, v, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("no %s", field)
}

// memAvailableKiB is MemAvailable of /proc/meminfo after the page cache
// is dropped, so that cached files do not blur it.
func memAvailableKiB() (int64, error) {
	unix.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return 0, fmt.Errorf("dropping caches: %w", err)
	}
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return kibField(string(b), "MemAvailable")
}

// pidFile reads a pid file.
func pidFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file %s: %w", path, err)
	}
	return pid, nil
}
