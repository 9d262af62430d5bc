package main

import (
	"errors"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/bundle"
)

// shareMounter mounts the share tag (a directory volume) on target, a
// path naming an open directory, with the mount(2) flags flags if it can
// (shareMount applies them again to the new mount).
type shareMounter func(tag, target string, flags uintptr) error

// xen9pOptions: cache=none sends every access to the host, so changes on
// either side show on the other at once.
const xen9pOptions = "trans=xen,version=9p2000.L,cache=none"

// mountXen9p mounts a share that dom0 serves over Xen's 9pfs transport.
func mountXen9p(tag, target string, flags uintptr) error {
	err := unix.Mount(tag, target, "9p", flags, xen9pOptions)
	if errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("this guest kernel cannot mount 9p over Xen: directory volumes need one with 9p and 9pnet_xen (Debian's linux-image-amd64 has them, linux-image-cloud-amd64 does not): %w", err)
	}
	return err
}

// hostShares is host mode's side of the shares: tag -> host directory,
// bind mounted where the guest would mount the 9pfs share.
type hostShares map[string]string

// Set parses a -share TAG=DIR flag.
func (h hostShares) Set(v string) error {
	tag, dir, ok := strings.Cut(v, "=")
	if !ok || tag == "" || !strings.HasPrefix(dir, "/") {
		return fmt.Errorf("-share %q: want TAG=/DIR", v)
	}
	h[tag] = dir
	return nil
}

func (h hostShares) String() string { return fmt.Sprint(map[string]string(h)) }

func (h hostShares) mount(tag, target string, _ uintptr) error {
	dir, ok := h[tag]
	if !ok {
		return fmt.Errorf("no share %q was given with -share", tag)
	}
	return unix.Mount(dir, target, "", unix.MS_BIND|unix.MS_REC, "")
}

// maxTag bounds a share's tag (Linux's 9p transports take 31 bytes).
const maxTag = 31

// sharesByMount checks cfg.Shares and indexes their tags by the index of
// the bind mount each one replaces.
func sharesByMount(cfg *agent.Config) (map[int]string, error) {
	if len(cfg.Shares) > agent.MaxShares {
		return nil, fmt.Errorf("%d shares (limit %d)", len(cfg.Shares), agent.MaxShares)
	}
	byMount := map[int]string{}
	tags := map[string]bool{}
	for _, s := range cfg.Shares {
		if s.Tag == "" || len(s.Tag) > maxTag || strings.ContainsAny(s.Tag, "/,\x00") || tags[s.Tag] {
			return nil, fmt.Errorf("share tag %q: empty, too long, repeated or with a '/' or ','", s.Tag)
		}
		if s.Mount < 0 || s.Mount >= len(cfg.Spec.Mounts) || !bundle.IsBind(cfg.Spec.Mounts[s.Mount]) {
			return nil, fmt.Errorf("share %s: mount %d is not a bind mount of the spec", s.Tag, s.Mount)
		}
		if _, ok := byMount[s.Mount]; ok {
			return nil, fmt.Errorf("share %s: mount %d has two shares", s.Tag, s.Mount)
		}
		tags[s.Tag] = true
		byMount[s.Mount] = s.Tag
	}
	return byMount, nil
}

// shareMount mounts the share tag in place of the bind mount m, with m's
// options (ro, nosuid, propagation ...).
func (c *containerFS) shareMount(tag string, m specs.Mount) error {
	dest := cleanDest(m.Destination)
	if dest == "/" {
		return errors.New("a mount on / is not supported")
	}
	o, err := parseMountOptions(m.Options)
	if err != nil {
		return fmt.Errorf("mount on %s: %w", dest, err)
	}
	h, err := c.mkdirAll(dest)
	if err != nil {
		return err
	}
	defer h.Close()
	flags := o.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
	if err := c.mountShare(tag, fdPath(h), flags); err != nil {
		return fmt.Errorf("volume %s on %s: %w", m.Source, dest, err)
	}
	return c.finishMount(dest, o, nil, flags)
}

// mountShares is host mode's container setup of the shares: the root is
// a host directory where only the volumes are mounted.
func mountShares(root string, cfg *agent.Config, mount shareMounter) error {
	byMount, err := sharesByMount(cfg)
	if err != nil || len(byMount) == 0 {
		return err
	}
	c, err := openContainerFS(root, mount)
	if err != nil {
		return err
	}
	defer c.dir.Close()
	for i, m := range cfg.Spec.Mounts {
		if tag, ok := byMount[i]; ok {
			if err := c.shareMount(tag, m); err != nil {
				return err
			}
		}
	}
	return nil
}
