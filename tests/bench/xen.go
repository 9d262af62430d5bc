package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vxn-runtime/vxn/libxl"
	"github.com/vxn-runtime/vxn/libxl/vchan"
	"github.com/vxn-runtime/vxn/libxl/xenstore"
	"github.com/vxn-runtime/vxn/libxl/xtl"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/hypervisor/xen"
)

// bareBoot is a guest booted by plain `xl create` from a minimal config
// (vxn's kernel and initramfs, no disk, no NIC), the floor under vxn's
// cold create.
type bareBoot struct {
	kernel, initramfs string
	memoryMiB         int
	dir               string
	xl                *libxl.Context
	xs                *xenstore.Handle
}

// xlConfig is the domain config file `xl create` gets: what vxn's
// domainConfig sets for a PV guest (empty command line, like vxn's
// default).
func xlConfig(name, kernel, initramfs string, memoryMiB int) string {
	return fmt.Sprintf("name = %q\ntype = \"pv\"\nkernel = %q\nramdisk = %q\nmemory = %d\nmaxmem = %d\nvcpus = 1\n",
		name, kernel, initramfs, memoryMiB, memoryMiB)
}

// boot runs `xl create`, waits until guestinit publishes its agent channel
// in xenstore (the point where vxn's monitor can connect), then runs `xl
// destroy`. It returns the time to the channel and the destroy's.
func (b *bareBoot) boot(r *runner, name string) (up, destroy time.Duration, err error) {
	cfg := filepath.Join(b.dir, name+".cfg")
	if err := os.WriteFile(cfg, []byte(xlConfig(name, b.kernel, b.initramfs, b.memoryMiB)), 0o644); err != nil {
		return 0, 0, err
	}
	defer os.Remove(cfg)
	start := time.Now()
	if _, err := r.run("xl", "create", "-q", cfg); err != nil {
		return 0, 0, err
	}
	defer func() {
		if err != nil {
			_, _ = r.run("xl", "destroy", name)
		}
	}()
	domid, err := b.xl.NameToDomid(name)
	if err != nil {
		return 0, 0, fmt.Errorf("domain %s: %w", name, err)
	}
	key := vchan.AgentPath(domid) + "/event-channel"
	deadline := start.Add(5 * time.Minute)
	for {
		_, err := b.xs.Read(key)
		if err == nil {
			break
		}
		if !errors.Is(err, xenstore.ErrNotFound) {
			return 0, 0, err
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("%s: no %s after 5 minutes", name, key)
		}
		time.Sleep(10 * time.Millisecond)
	}
	up = time.Since(start)
	destroy, err = r.run("xl", "destroy", name)
	return up, destroy, err
}

// vchanThroughput boots the echo guest (libxl/vchan/testdata/echoguest,
// with the default 1 MiB rings that guestinit's agent channel also has)
// and times reps transfers of size bytes from the guest to this process,
// each from its first byte to its last.
func vchanThroughput(kernel, initramfs, logPath string, size int64, reps int) ([]time.Duration, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	h, err := xen.New(xen.Options{Log: xtl.WriterLog(lf), LogLevel: xtl.Detail})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	d, err := h.Create(ctx, hypervisor.DomainSpec{
		Name: "bench-echo", Type: hypervisor.GuestPV, Kernel: kernel, Ramdisk: initramfs,
		// The guest holds each transfer in memory before sending it.
		MemoryMiB: 256 + uint64(size>>20), VCPUs: 1,
		ConsoleLog: filepath.Join(filepath.Dir(logPath), "echo-guest.console"),
	})
	if err != nil {
		return nil, err
	}
	defer d.Destroy(context.Background())
	info, err := d.Info(ctx)
	if err != nil {
		return nil, err
	}
	var times []time.Duration
	for k := 0; k < reps; k++ {
		var c io.ReadWriteCloser
		if k == 0 {
			c, err = d.Connect(ctx)
		} else {
			c, err = dialRetry(ctx, info.ID, vchan.AgentPath(info.ID)+"-"+strconv.Itoa(k))
		}
		if err != nil {
			return times, err
		}
		took, err := echoSource(c, size, k == reps-1)
		c.Close()
		if err != nil {
			return times, fmt.Errorf("echo guest session %d: %w", k, err)
		}
		times = append(times, took)
	}
	if _, err := d.Wait(ctx); err != nil {
		return times, err
	}
	return times, nil
}

// dialRetry dials a vchan until its server listens.
func dialRetry(ctx context.Context, domid uint32, path string) (*vchan.Conn, error) {
	for {
		c, err := vchan.Dial(domid, path)
		if !errors.Is(err, vchan.ErrNoServer) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("dial %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// echoSource runs one session of the echo guest's source mode ('r', or
// 'R' for the last session): it asks for size bytes and reads them.
func echoSource(c io.ReadWriter, size int64, last bool) (time.Duration, error) {
	hello := make([]byte, 1)
	if _, err := io.ReadFull(c, hello); err != nil || hello[0] != 'H' {
		return 0, fmt.Errorf("greeting %q: %v", hello, err)
	}
	req := make([]byte, 9)
	req[0] = 'r'
	if last {
		req[0] = 'R'
	}
	binary.BigEndian.PutUint64(req[1:], uint64(size))
	if _, err := c.Write(req); err != nil {
		return 0, err
	}
	return timeStream(c, size)
}

// timeStream reads want bytes from r and returns the time from the end of
// the first read to the last byte, scaled to all the bytes (the first
// read's bytes arrived before the clock started).
func timeStream(r io.Reader, want int64) (time.Duration, error) {
	buf := make([]byte, 256<<10)
	var got, first int64
	var start time.Time
	for got < want {
		n, err := r.Read(buf)
		if n > 0 && got == 0 {
			start, first = time.Now(), int64(n)
		}
		got += int64(n)
		if err != nil {
			if errors.Is(err, io.EOF) && got >= want {
				break
			}
			return 0, fmt.Errorf("after %d of %d bytes: %w", got, want, err)
		}
	}
	took := time.Since(start)
	if got != want {
		return 0, fmt.Errorf("got %d bytes, want %d", got, want)
	}
	if first == want {
		return 0, fmt.Errorf("all %d bytes came in one read: nothing to time", want)
	}
	return time.Duration(float64(took) * float64(want) / float64(want-first)), nil
}
