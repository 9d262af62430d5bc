// Package hooks runs OCI lifecycle hooks (runtime-spec config.md#posix-platform-hooks)
// the way runc does: the state JSON on stdin, the hook's own env verbatim,
// an optional timeout; the first failure stops the run.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Kind names a hook point of the runtime-spec.
type Kind string

// The hook points, in the order of a container's life.
const (
	Prestart        Kind = "prestart"
	CreateRuntime   Kind = "createRuntime"
	CreateContainer Kind = "createContainer"
	StartContainer  Kind = "startContainer"
	Poststart       Kind = "poststart"
	Poststop        Kind = "poststop"
)

// ErrHookFailed is wrapped by every error Run returns.
var ErrHookFailed = errors.New("hook failed")

const (
	// maxOutput bounds the hook output kept for the error message.
	maxOutput = 1024
	// outputGrace is how long Run waits, once a hook has exited, for
	// processes it left behind to close its stdout and stderr.
	outputGrace = time.Second
)

// For returns the hooks of kind k in h; nil if h is nil or k unknown.
func For(h *specs.Hooks, k Kind) []specs.Hook {
	if h == nil {
		return nil
	}
	switch k {
	case Prestart:
		return h.Prestart
	case CreateRuntime:
		return h.CreateRuntime
	case CreateContainer:
		return h.CreateContainer
	case StartContainer:
		return h.StartContainer
	case Poststart:
		return h.Poststart
	case Poststop:
		return h.Poststop
	}
	return nil
}

// Error is a failed hook.
type Error struct {
	Kind   Kind
	Index  int    // position among the hooks of Kind
	Path   string // the hook's path
	Err    error  // the exit status, the timeout, or why it did not start
	Output string // the start of what the hook wrote to stdout and stderr
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s hook #%d (%s): %v", e.Kind, e.Index, e.Path, e.Err)
	if e.Output != "" {
		msg += ": " + e.Output
	}
	return msg
}

// Unwrap returns ErrHookFailed and the cause, so errors.Is works for both
// (context.DeadlineExceeded for a timeout, fs.ErrNotExist for a missing
// binary ...).
func (e *Error) Unwrap() []error { return []error{ErrHookFailed, e.Err} }

// Run runs hooks of kind k in order, each with state as JSON on stdin, and
// stops at the first that fails, returning an *Error.
//
// As in runc, argv is hook.Args (argv[0] is the path when Args is empty)
// and the environment is hook.Env verbatim: nil Env (none in config.json)
// inherits the caller's environment, an empty one gives none. The hook
// inherits the caller's working directory. Its stdout and stderr never
// reach the caller's; their first bytes go into the error. A hook with a
// Timeout is killed (with the processes of its process group) when it
// expires, and so is any hook when ctx is done.
func Run(ctx context.Context, k Kind, hooks []specs.Hook, st specs.State) error {
	state, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("%w: %s hooks: encoding state: %w", ErrHookFailed, k, err)
	}
	for i, h := range hooks {
		if err := run(ctx, h, state); err != nil {
			err.Kind, err.Index = k, i
			return err
		}
	}
	return nil
}

// run runs one hook; the Error it returns lacks Kind and Index.
func run(ctx context.Context, h specs.Hook, state []byte) *Error {
	fail := func(err error, output string) *Error { return &Error{Path: h.Path, Err: err, Output: output} }
	if !filepath.IsAbs(h.Path) {
		return fail(errors.New("path is not absolute"), "")
	}
	hctx := ctx
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fail(fmt.Errorf("timeout %ds is not positive", *h.Timeout), "")
		}
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}

	cmd := exec.CommandContext(hctx, h.Path)
	if len(h.Args) > 0 {
		cmd.Args = h.Args
	}
	cmd.Env = h.Env
	cmd.Stdin = bytes.NewReader(state)
	out := &prefixWriter{max: maxOutput}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group, so that a timeout also kills what the hook
	// started (a shell script's children hold its output open).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = outputGrace

	err := cmd.Run()
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		// ErrWaitDelay: the hook succeeded but left a process holding its
		// output open; it is the hook's to manage, not a failure.
		return nil
	}
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("stopped: %w", context.Cause(ctx))
	case hctx.Err() != nil:
		err = fmt.Errorf("killed after the %ds timeout: %w", *h.Timeout, context.DeadlineExceeded)
	}
	return fail(err, out.String())
}

// prefixWriter keeps the first max bytes written to it and discards the
// rest, never failing a write (a failed write would kill the hook with
// SIGPIPE).
type prefixWriter struct {
	max       int
	buf       []byte
	truncated bool
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.max-len(w.buf))
	w.buf = append(w.buf, p[:n]...)
	if n < len(p) {
		w.truncated = true
	}
	return len(p), nil
}

// String returns the kept output, trimmed, valid UTF-8, marked when cut.
func (w *prefixWriter) String() string {
	s := strings.ToValidUTF8(strings.TrimSpace(string(w.buf)), "\uFFFD")
	if w.truncated {
		s += " [...]"
	}
	return s
}
