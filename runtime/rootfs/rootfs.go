// Package rootfs turns a bundle's rootfs directory into the block image a
// guest boots with: an ext4 file system built by mke2fs -d (e2fsprogs, on
// every Xen dom0), sparse, with room to write.
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Headroom is the free space an image gets beyond its content, so that a
// writable container has room to write. Images are sparse: unused space
// costs nothing on the host.
const Headroom = 1 << 30

// mke2fsPaths are where e2fsprogs installs mke2fs. Absolute paths: podman
// calls the runtime with no PATH.
var mke2fsPaths = []string{"/usr/sbin/mke2fs", "/sbin/mke2fs", "/usr/bin/mke2fs"}

// ErrNoMke2fs means e2fsprogs is not installed.
var ErrNoMke2fs = errors.New("mke2fs not found: install e2fsprogs")

// Mke2fs returns the path of mke2fs.
func Mke2fs() (string, error) {
	for _, p := range mke2fsPaths {
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", ErrNoMke2fs
}

// Size returns the bytes of content under dir, counting each file at
// least one 4 KiB block.
func Size(dir string) (int64, error) {
	bytes, _, err := measure(dir)
	return bytes, err
}

// measure returns the bytes (as Size counts them) and the number of
// entries under dir.
func measure(dir string) (bytes, entries int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		entries++
		bytes += (info.Size() + 4095) &^ 4095
		if info.Size() == 0 {
			bytes += 4096
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measuring rootfs %s: %w", dir, err)
	}
	return bytes, entries, nil
}

// Build writes an ext4 image of dir to img. The image is created anew.
func Build(dir, img string) error {
	mke2fs, err := Mke2fs()
	if err != nil {
		return err
	}
	used, entries, err := measure(dir)
	if err != nil {
		return err
	}
	// ext4 metadata and inode tables take a few percent.
	size := used + used/8 + Headroom
	size = (size + 1<<20 - 1) &^ (1<<20 - 1)
	f, err := os.OpenFile(img, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating rootfs image: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(img)
		return fmt.Errorf("sizing rootfs image: %w", err)
	}
	cmd := exec.Command(mke2fs, "-q", "-F", "-t", "ext4", "-O", "^has_journal",
		"-E", "lazy_itable_init=1,nodiscard", "-m", "0", "-L", "vxn-rootfs",
		// mke2fs's default of one inode per 16 KiB runs out on trees of
		// many small files: size the table for the content, with room.
		"-N", strconv.FormatInt(entries+entries/4+16384, 10),
		"-d", dir, img,
		strconv.FormatInt(size/1024, 10)+"k")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(img)
		return fmt.Errorf("building rootfs image from %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}
