package xen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// console copies a guest's console pty into a bounded log file.
type console struct {
	tty  *os.File
	done chan struct{}
}

// captureConsole opens the console pty of domid (waiting for xenconsoled
// to publish it) and copies it to path until the pty closes (the domain
// is gone) or stop.
func (h *Hypervisor) captureConsole(ctx context.Context, domid uint32, path string) (*console, error) {
	deadline := time.Now().Add(consoleWait)
	var ttyPath string
	for {
		var err error
		if ttyPath, err = h.xl.ConsoleTTY(domid); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("console: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("console: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	tty, err := os.OpenFile(ttyPath, os.O_RDONLY|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		tty.Close()
		return nil, fmt.Errorf("console log: %w", err)
	}
	c := &console{tty: tty, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		defer f.Close()
		log := &boundedLog{w: f, max: h.consoleMax}
		_, err := io.Copy(log, tty)
		// EIO: xenconsoled closed the pty; ErrClosed: stop.
		if err != nil && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrClosed) {
			fmt.Fprintf(f, "\n[vxn: console capture failed: %v]\n", err)
		}
	}()
	return c, nil
}

// stop ends the capture and waits until the log file is closed.
func (c *console) stop() {
	c.tty.Close()
	<-c.done
}

// logFile is what boundedLog writes to.
type logFile interface {
	io.Writer
	io.Seeker
	Truncate(size int64) error
}

// boundedLog keeps a log file under max bytes: when full it cuts the file
// back to its first half (the boot log), notes the cut and goes on, so the
// file holds the start and the most recent output.
type boundedLog struct {
	w   logFile
	max int64
	off int64
}

const truncatedMark = "\n[vxn: console log truncated]\n"

func (b *boundedLog) Write(p []byte) (int, error) {
	n := len(p)
	if b.off+int64(len(p)) > b.max {
		head := b.max / 2
		if err := b.w.Truncate(head); err != nil {
			return 0, err
		}
		if _, err := b.w.Seek(head, io.SeekStart); err != nil {
			return 0, err
		}
		b.off = head
		m, err := io.WriteString(b.w, truncatedMark)
		b.off += int64(m)
		if err != nil {
			return 0, err
		}
		if room := b.max - b.off; int64(len(p)) > room {
			p = p[int64(len(p))-room:]
		}
	}
	m, err := b.w.Write(p)
	b.off += int64(m)
	if err != nil {
		return m, err
	}
	return n, nil
}
