package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/bundle"
)

// shimArg makes guestinit act as the exec shim: the child that applies a
// process's root, limits, credentials and capabilities and then execs it.
// Fd 3 carries a shimRequest; fd 4 receives an error message when the exec
// cannot happen (it closes on a successful exec).
const shimArg = "--exec-shim"

// shimRequest is what the shim receives on fd 3.
type shimRequest struct {
	Root    string         `json:"root"`
	Process *specs.Process `json:"process"`
	// CgroupNS: the shim was started in the container's cgroup and gives
	// the process a cgroup namespace rooted there.
	CgroupNS bool `json:"cgroupns,omitempty"`
}

// defaultPath is used when the process has no PATH of its own (runc's).
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func runShim() int {
	errPipe := os.NewFile(4, "exec-error")
	if err := shimExec(os.NewFile(3, "exec-spec")); err != nil {
		fmt.Fprint(errPipe, err.Error())
		return 127
	}
	return 0 // not reached: shimExec only returns on error
}

func shimExec(specPipe *os.File) error {
	// unshare, capset and no_new_privs change only the calling thread, and
	// execve takes the calling thread's: all of them must be one thread.
	// Never unlocked: the thread either execs or the shim exits.
	runtime.LockOSThread()
	unix.CloseOnExec(4)
	var req shimRequest
	if err := json.NewDecoder(specPipe).Decode(&req); err != nil {
		return fmt.Errorf("reading process spec: %w", err)
	}
	specPipe.Close()
	p := req.Process
	if p == nil || len(p.Args) == 0 {
		return fmt.Errorf("process has no args")
	}
	if p.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*p.OOMScoreAdj)), 0); err != nil {
			return fmt.Errorf("setting oom_score_adj to %d: %w", *p.OOMScoreAdj, err)
		}
	}
	if req.CgroupNS {
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("cgroup namespace: %w", err)
		}
	}
	// Capabilities are read from /proc, which the new root may not have.
	caps, err := loadCaps(p)
	if err != nil {
		return err
	}
	if req.Root != "" && req.Root != "/" {
		if err := unix.Chroot(req.Root); err != nil {
			return fmt.Errorf("chroot %s: %w", req.Root, err)
		}
	}
	for _, rl := range p.Rlimits {
		res, ok := bundle.Rlimit(rl.Type)
		if !ok {
			return fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("setting %s to %d/%d: %w", rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	} else {
		unix.Umask(0o022)
	}
	if err := setUser(p, caps); err != nil {
		return err
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.Chdir(cwd); err != nil {
		return fmt.Errorf("changing to the working directory %s: %w", cwd, err)
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	bin, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		return err
	}
	if err := unix.Exec(bin, p.Args, p.Env); err != nil {
		return fmt.Errorf("exec %s: %w", p.Args[0], err)
	}
	return nil
}

// loadCaps applies the bounding set and returns the capability sets the
// process must end with, or nil when the spec leaves capabilities alone.
func loadCaps(p *specs.Process) (capability.Capabilities, error) {
	if p.Capabilities == nil {
		return nil, nil
	}
	c, err := capability.NewPid2(0)
	if err == nil {
		err = c.Load()
	}
	if err != nil {
		return nil, fmt.Errorf("reading capabilities: %w", err)
	}
	c.Clear(capability.CAPS | capability.BOUNDS | capability.AMBS)
	sets := []struct {
		which capability.CapType
		names []string
	}{
		{capability.BOUNDING, p.Capabilities.Bounding},
		{capability.EFFECTIVE, p.Capabilities.Effective},
		{capability.PERMITTED, p.Capabilities.Permitted},
		{capability.INHERITABLE, p.Capabilities.Inheritable},
		{capability.AMBIENT, p.Capabilities.Ambient},
	}
	for _, s := range sets {
		for _, n := range s.names {
			if cv, ok := bundle.Capability(n); ok {
				c.Set(s.which, capability.Cap(cv))
			}
		}
	}
	// The bounding set can only shrink while CAP_SETPCAP is held; doing it
	// before the chroot also lets the library read cap_last_cap from /proc.
	if err := c.Apply(capability.BOUNDS); err != nil {
		return nil, fmt.Errorf("setting the capability bounding set: %w", err)
	}
	return c, nil
}

// setUser switches to the process's user, keeping exactly the
// capabilities in caps (when not nil).
func setUser(p *specs.Process, caps capability.Capabilities) error {
	if caps != nil {
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("keeping capabilities across setuid: %w", err)
		}
	}
	gids := make([]int, 0, len(p.User.AdditionalGids))
	for _, g := range p.User.AdditionalGids {
		gids = append(gids, int(g))
	}
	if err := unix.Setgroups(gids); err != nil {
		return fmt.Errorf("setting supplementary groups %v: %w", gids, err)
	}
	if err := unix.Setgid(int(p.User.GID)); err != nil {
		return fmt.Errorf("setting gid %d: %w", p.User.GID, err)
	}
	if err := unix.Setuid(int(p.User.UID)); err != nil {
		return fmt.Errorf("setting uid %d: %w", p.User.UID, err)
	}
	if caps != nil {
		if err := caps.Apply(capability.CAPS | capability.AMBS); err != nil {
			return fmt.Errorf("setting capabilities: %w", err)
		}
	}
	return nil
}

// lookPath finds a command the way runc does: a name with a slash is used
// as is; otherwise PATH from the process's own environment is searched.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := defaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}
