package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// Control requests the monitor answers on its socket.
const (
	OpState  = "state"
	OpStart  = "start"
	OpKill   = "kill"
	OpPause  = "pause"
	OpResume = "resume"
	OpPs     = "ps"
	// OpNetwork gives the guest the container's network (AttachNetwork).
	OpNetwork = "network"
	// OpUpdate gives the container's cgroup in the guest new limits.
	OpUpdate = "update"
	// OpExec starts another process in the container. The connection
	// stays open: after the first answer the client sends the process's
	// stdin, stdout and stderr as SCM_RIGHTS in a one-byte message; the
	// monitor answers when the process runs (Response.Session) and again
	// when it exits (Response.Exit). Meanwhile the client may send OpSignal
	// and OpResize requests for the session.
	OpExec   = "exec"
	OpSignal = "signal"
	OpResize = "resize"
)

// Request is one control request.
type Request struct {
	Op      string         `json:"op"`
	Signal  int            `json:"signal,omitempty"`
	All     bool           `json:"all,omitempty"`
	Process *specs.Process `json:"process,omitempty"` // OpExec
	Rows    uint16         `json:"rows,omitempty"`    // OpResize
	Cols    uint16         `json:"cols,omitempty"`
	// Resources are the container's new limits (OpUpdate).
	Resources *specs.LinuxResources `json:"resources,omitempty"`
}

// Response answers a Request. Status is the container's status after it.
type Response struct {
	Status    specs.ContainerState `json:"status"`
	Pid       int                  `json:"pid"`
	Error     string               `json:"error,omitempty"`
	Processes []agent.PsEntry      `json:"processes,omitempty"`
	Session   uint32               `json:"session,omitempty"` // OpExec: the process runs
	Exit      *int                 `json:"exit,omitempty"`    // OpExec: the process ended
}

// ErrNoMonitor means the control socket did not answer: the monitor is
// gone (or was never started).
var ErrNoMonitor = errors.New("the container's monitor is not running")

// Call sends one request to the monitor listening on socket.
func Call(socket string, req Request, timeout time.Duration) (*Response, error) {
	c, err := dialUnix(socket, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoMonitor, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("sending %s to the monitor: %w", req.Op, err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("%w: no answer to %s (%v)", ErrNoMonitor, req.Op, err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
