package xen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAttachLoop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for loop devices")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices here:", err)
	}
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, []byte(strings.Repeat("vxn!", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		dev, err := attachLoop(img, ro)
		if err != nil {
			t.Fatal(err)
		}
		name := dev.Name()
		info, err := unix.IoctlLoopGetStatus64(int(dev.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if info.Flags&unix.LO_FLAGS_AUTOCLEAR == 0 || (info.Flags&unix.LO_FLAGS_READ_ONLY != 0) != ro {
			t.Errorf("%s: flags %#x, read-only %v", name, info.Flags, ro)
		}
		buf := make([]byte, 8)
		if _, err := dev.ReadAt(buf, 0); err != nil || string(buf) != "vxn!vxn!" {
			t.Errorf("%s reads %q, %v", name, buf, err)
		}
		dev.Close()
		// Autoclear: the device is released on last close.
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile("/sys/block/" + filepath.Base(name) + "/loop/backing_file")
			if !strings.Contains(string(b), img) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still bound to %s after close", name, b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if _, err := attachLoop(filepath.Join(t.TempDir(), "missing"), false); err == nil || !strings.Contains(err.Error(), "disk image") {
		t.Errorf("missing image: %v", err)
	}
}
