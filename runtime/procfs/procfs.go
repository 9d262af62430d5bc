// Package procfs reads the few process facts vxn needs from /proc.
package procfs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// stat returns the fields of /proc/PID/stat after the command name, so
// that index 0 is field 3 (state) of proc(5).
func stat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	// The command is in parentheses and may contain anything.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return nil, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return f, nil
}

// StartTime returns the start time of a live (not zombie) process in clock
// ticks since boot.
func StartTime(pid int) (uint64, error) {
	f, err := stat(pid)
	if err != nil {
		return 0, err
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("process %d has exited", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// Alive reports whether pid is running and started at start (so it is not
// a later process that reused the PID).
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := StartTime(pid)
	return err == nil && st == start
}

// Descendants lists every descendant of the given processes.
func Descendants(pids ...int) []int {
	kids := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f, err := stat(p); err == nil {
			pp, _ := strconv.Atoi(f[1])
			kids[pp] = append(kids[pp], p)
		}
	}
	var out []int
	q := append([]int(nil), pids...)
	for len(q) > 0 {
		p := q[0]
		q = q[1:]
		out = append(out, kids[p]...)
		q = append(q, kids[p]...)
	}
	return out
}

// PidfdPid returns the PID of the process a pidfd refers to, in the pid
// namespace of /proc (from the "Pid:" line of its fdinfo).
func PidfdPid(pidfd int) (int, error) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(pidfd))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("pidfd %d: process has exited or is not visible in /proc", pidfd)
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("fd %d is not a pidfd", pidfd)
}
