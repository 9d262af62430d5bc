package xen

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// How often attachLoop retries when another process takes the free loop
// device it was given between LOOP_CTL_GET_FREE and LOOP_CONFIGURE.
const loopRetries = 16

// attachLoop binds the image file at path to a free loop device and
// returns that device, open. The device is set to clear itself on last
// close (LO_FLAGS_AUTOCLEAR): once blkback has opened it, closing the
// returned file leaves the device to blkback, and it is freed when the
// domain's disk goes away, whoever destroys the domain. This is what the
// stock block hotplug script does with losetup, without a shell.
func attachLoop(path string, readOnly bool) (*os.File, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	img, err := os.OpenFile(path, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("loop devices: %w (is the loop module loaded?)", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	if readOnly {
		cfg.Info.Flags |= unix.LO_FLAGS_READ_ONLY
	}
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], path)
	for range loopRetries {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return nil, fmt.Errorf("loop devices: no free device: %w", err)
		}
		dev, err := os.OpenFile(fmt.Sprintf("/dev/loop%d", n), flag|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("loop devices: %w", err)
		}
		err = unix.IoctlLoopConfigure(int(dev.Fd()), &cfg)
		if err == nil {
			return dev, nil
		}
		dev.Close()
		if !errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("loop devices: binding %s to %s: %w", path, dev.Name(), err)
		}
	}
	return nil, fmt.Errorf("loop devices: binding %s: every free device was taken by others %d times", path, loopRetries)
}
