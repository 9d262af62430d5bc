// Package guestkernel finds vxn's default guest kernel, which both the
// runtime (its default "kernel") and guestinit/mkinitramfs (whose modules
// the initramfs carries) must agree on: the newest Debian generic kernel
// in /boot, /boot/vmlinuz-VERSION-amd64 from linux-image-amd64. It boots
// as a Xen PV or PVH guest and, unlike linux-image-cloud-amd64, has 9p
// over Xen (9pnet_xen), which directory volumes need.
package guestkernel

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// Package is the Debian package that provides the default guest kernel.
const Package = "linux-image-amd64"

// Newest returns the path and version of the newest generic kernel in
// bootDir: vmlinuz-*-amd64 that is not a cloud or realtime flavour.
func Newest(bootDir string) (path, version string, err error) {
	matches, err := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*-amd64"))
	if err != nil {
		return "", "", err
	}
	var versions []string
	for _, m := range matches {
		v := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
		if strings.HasSuffix(v, "-cloud-amd64") || strings.HasSuffix(v, "-rt-amd64") {
			continue
		}
		versions = append(versions, v)
	}
	if len(versions) == 0 {
		return "", "", fmt.Errorf("no generic kernel %s/vmlinuz-*-amd64: install %s", bootDir, Package)
	}
	sort.Slice(versions, func(i, j int) bool { return VersionLess(versions[i], versions[j]) })
	v := versions[len(versions)-1]
	return filepath.Join(bootDir, "vmlinuz-"+v), v, nil
}

// VersionLess compares kernel versions, numeric runs as numbers
// ("6.1.0-9" < "6.1.0-56").
func VersionLess(a, b string) bool {
	for a != "" && b != "" {
		an, arest := splitRun(a)
		bn, brest := splitRun(b)
		if an != bn {
			if isDigit(an[0]) && isDigit(bn[0]) {
				an, bn = strings.TrimLeft(an, "0"), strings.TrimLeft(bn, "0")
				if len(an) != len(bn) {
					return len(an) < len(bn)
				}
			}
			return an < bn
		}
		a, b = arest, brest
	}
	return len(a) < len(b)
}

// splitRun splits off the leading run of digits or of non-digits of a
// non-empty s.
func splitRun(s string) (run, rest string) {
	d := isDigit(s[0])
	i := 1
	for i < len(s) && isDigit(s[i]) == d {
		i++
	}
	return s[:i], s[i:]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
