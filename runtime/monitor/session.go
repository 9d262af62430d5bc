package monitor

import (
	"io"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

// session is one process in the guest as the monitor relays it: the
// container's process (session 0) or an exec.
type session struct {
	id       uint32
	in       io.Reader // nil: no stdin
	out, err io.Writer
	closeIn  bool // close the process's stdin at EOF (not for a terminal)
	startCh  chan error
	exitCh   chan agent.Exit
	unacked  int  // stdin bytes the guest has not acknowledged; Monitor.mu
	ended    bool // the process has exited; Monitor.mu
}

func newSession(id uint32, in io.Reader, out, err io.Writer, closeIn bool) *session {
	return &session{
		id: id, in: in, out: out, err: err, closeIn: closeIn,
		startCh: make(chan error, 1), exitCh: make(chan agent.Exit, 1),
	}
}
