package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
	"github.com/vxn-runtime/vxn/runtime/bundle"
)

// containerRoot is where prepareContainer mounts the container's root disk.
const containerRoot = "/run/vxn/root"

// rootDeviceTimeout bounds the wait for the root disk: xen-blkfront is a
// module, and the disk appears a moment after it loads.
const rootDeviceTimeout = 10 * time.Second

// prepareContainer mounts the root disk cfg.RootDevice at containerRoot and
// sets the container up in it from cfg.Spec and cfg.Files (see setupRoot).
// It returns the container's root directory and cgroup.
func prepareContainer(cfg *agent.Config) (prepared, error) {
	if cfg == nil || cfg.Spec == nil {
		return prepared{}, errors.New("no container spec")
	}
	dev, err := rootDevicePath(cfg.RootDevice)
	if err != nil {
		return prepared{}, err
	}
	var res *specs.LinuxResources
	if cfg.Spec.Linux != nil {
		res = cfg.Spec.Linux.Resources
	}
	cgroup, err := setupCgroup(res)
	if err != nil {
		return prepared{}, fmt.Errorf("the container's cgroup: %w", err)
	}
	start := time.Now()
	if err := waitForDevice(dev, rootDeviceTimeout); err != nil {
		return prepared{}, err
	}
	guestLogf("%s is there after %v", dev, time.Since(start).Round(time.Millisecond))
	readonly := cfg.Spec.Root != nil && cfg.Spec.Root.Readonly
	start = time.Now()
	if err := mountRootDisk(dev, containerRoot, readonly); err != nil {
		return prepared{}, err
	}
	mounted := time.Now()
	if err := setupRoot(containerRoot, cfg, containerCgroup); err != nil {
		return prepared{}, err
	}
	guestLogf("container root ready at %s (disk mounted in %v, set up in %v)", containerRoot,
		mounted.Sub(start).Round(time.Millisecond), time.Since(mounted).Round(time.Millisecond))
	return prepared{root: containerRoot, cgroup: cgroup}, nil
}

var deviceName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// rootDevicePath validates a device name such as "xvda" and returns its path.
func rootDevicePath(name string) (string, error) {
	if name == "" {
		return "", errors.New("no root device in the container config")
	}
	if !deviceName.MatchString(name) || len(name) > 32 {
		return "", fmt.Errorf("bad root device name %q", name)
	}
	return "/dev/" + name, nil
}

// waitForDevice waits until dev is a block device, at most timeout.
func waitForDevice(dev string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var st unix.Stat_t
		err := unix.Stat(dev, &st)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
			return nil
		}
		if err == nil {
			return fmt.Errorf("%s is not a block device", dev)
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: %w", dev, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s after %v (is xen-blkfront loaded? see the guest log)", dev, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mountRootDisk mounts the ext4 disk dev on dir. It is mounted read-write
// even for a read-only root, so that mount points, device nodes and files
// can be made; setupRoot makes it read-only at the end. A disk the host
// attached read-only is mounted read-only.
func mountRootDisk(dev, dir string, readonly bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	err := unix.Mount(dev, dir, "ext4", 0, "")
	if readonly && (errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES)) {
		guestLogf("%s is read-only: mounting it read-only", dev)
		err = unix.Mount(dev, dir, "ext4", unix.MS_RDONLY, "")
	}
	if err != nil {
		return fmt.Errorf("mount %s (ext4) on %s: %w", dev, dir, err)
	}
	return nil
}

// containerFS makes changes inside a container root. Every path it is given
// is resolved inside the root, symlinks included, as if the root were "/"
// (openat2 RESOLVE_IN_ROOT; filepath-securejoin where a path must be
// created), and the changes go through file descriptors of what was
// resolved, so neither ".." nor a symlink in the image reaches outside the
// root.
type containerFS struct {
	path string   // the root directory, clean
	dir  *os.File // the root directory, O_PATH
	// cgroup is the container's cgroup directory in the guest, shown as
	// the root of its cgroup mounts; "" mounts the whole hierarchy.
	cgroup string

	mountShare shareMounter // mounts cfg.Shares

	devBind     bool // /dev is a bind mount: make no device nodes there
	devpts      bool // a devpts is mounted on /dev/pts: /dev/ptmx links to it
	devReadonly bool // /dev is a read-only tmpfs, mounted rw until the end
}

// setupRoot sets the container up in the directory root, in runc's order:
// the root's propagation; cfg.Spec.Mounts in order, writing each of
// cfg.Files in place of the bind mount with the same destination; the other
// files; device nodes and /dev links; hostname and domain name; sysctls;
// read-only and masked paths; and last a read-only root.
func setupRoot(root string, cfg *agent.Config, cgroup string) error {
	spec := cfg.Spec
	shares, err := sharesByMount(cfg)
	if err != nil {
		return err
	}
	c, err := openContainerFS(root, mountXen9p)
	if err != nil {
		return err
	}
	defer c.dir.Close()
	c.cgroup = cgroup
	linux := spec.Linux
	if linux == nil {
		linux = &specs.Linux{}
	}
	if p := linux.RootfsPropagation; p != "" {
		flags, ok := propagationOptions[p]
		if !ok {
			return fmt.Errorf("bad rootfsPropagation %q", p)
		}
		if err := unix.Mount("", c.path, "", flags, ""); err != nil {
			return fmt.Errorf("rootfsPropagation %s: %w", p, err)
		}
	}

	if len(cfg.Files) > agent.MaxFiles {
		return fmt.Errorf("%d files to copy in (limit %d)", len(cfg.Files), agent.MaxFiles)
	}
	files := map[string]int{} // destination -> index in cfg.Files (the last one wins)
	for i, f := range cfg.Files {
		dest := cleanDest(f.Destination)
		if dest == "/" {
			return fmt.Errorf("file destination %q", f.Destination)
		}
		files[dest] = i
	}
	for n, m := range spec.Mounts {
		if tag, ok := shares[n]; ok {
			if err := c.shareMount(tag, m); err != nil {
				return err
			}
			continue
		}
		dest := cleanDest(m.Destination)
		if i, ok := files[dest]; ok && bundle.IsBind(m) {
			o, err := parseMountOptions(m.Options)
			if err != nil {
				return fmt.Errorf("mount on %s: %w", dest, err)
			}
			if err := c.writeFile(cfg.Files[i], o.flags&unix.MS_RDONLY != 0); err != nil {
				return err
			}
			delete(files, dest)
			continue
		}
		if err := c.mount(m); err != nil {
			return err
		}
	}
	for i, f := range cfg.Files {
		if j, ok := files[cleanDest(f.Destination)]; ok && j == i {
			if err := c.writeFile(f, false); err != nil {
				return err
			}
		}
	}

	if !c.devBind {
		if err := c.setupDev(linux.Devices); err != nil {
			return err
		}
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("hostname %q: %w", spec.Hostname, err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("domainname %q: %w", spec.Domainname, err)
		}
	}
	if err := applySysctls(linux.Sysctl); err != nil {
		return err
	}
	for _, p := range linux.ReadonlyPaths {
		if err := c.readonlyPath(p); err != nil {
			return err
		}
	}
	for _, p := range linux.MaskedPaths {
		if err := c.maskPath(p); err != nil {
			return err
		}
	}
	if c.devReadonly {
		if err := c.remountReadonly("/dev"); err != nil {
			return err
		}
	}
	if spec.Root != nil && spec.Root.Readonly {
		if err := c.remountReadonly("/"); err != nil {
			return err
		}
	}
	return nil
}

// openContainerFS opens the container root root; mountShare mounts its
// directory volumes.
func openContainerFS(root string, mountShare shareMounter) (*containerFS, error) {
	d, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &containerFS{path: path.Clean(root), dir: d, mountShare: mountShare}, nil
}

// cleanDest makes a spec destination absolute and clean ("etc/x" is /etc/x).
func cleanDest(p string) string { return path.Clean("/" + p) }

// fdPath names an open file for mount(2) and friends.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }

// resolve returns p resolved inside the root (symlinks included, a
// dangling one to where it points), as a path relative to the root
// starting with "/".
func (c *containerFS) resolve(p string) (string, error) {
	full, err := securejoin.SecureJoin(c.path, p)
	if err != nil {
		return "", fmt.Errorf("resolving %s in the container root: %w", p, err)
	}
	return cleanDest(strings.TrimPrefix(full, c.path)), nil
}

// openat2 opens name relative to dirfd without leaving the directory dirfd
// (resolve is RESOLVE_IN_ROOT or RESOLVE_BENEATH, plus more RESOLVE_ flags).
func openat2(dirfd int, name string, flags int, resolve uint64) (*os.File, error) {
	fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Resolve: resolve | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// openFlags opens p in the root with flags, following symlinks as if the
// root were "/".
func (c *containerFS) openFlags(p string, flags int) (*os.File, error) {
	f, err := openat2(int(c.dir.Fd()), cleanDest(p), flags, unix.RESOLVE_IN_ROOT)
	if err != nil {
		return nil, fmt.Errorf("opening %s in the container root: %w", p, err)
	}
	return f, nil
}

// open opens p in the root (O_PATH).
func (c *containerFS) open(p string) (*os.File, error) { return c.openFlags(p, unix.O_PATH) }

// mkdirAll makes directory p and its parents in the root and opens it
// (O_PATH).
func (c *containerFS) mkdirAll(p string) (*os.File, error) {
	rel, err := c.resolve(p)
	if err != nil {
		return nil, err
	}
	return c.mkdirAllResolved(rel)
}

// mkdirAllResolved makes directory rel, a path resolve returned, and its
// parents, one component at a time beneath the root and following no
// symlink (resolve has followed them), and opens it (O_PATH).
func (c *containerFS) mkdirAllResolved(rel string) (*os.File, error) {
	cur, err := openat2(int(c.dir.Fd()), ".", unix.O_PATH|unix.O_DIRECTORY, unix.RESOLVE_BENEATH)
	if err != nil {
		return nil, err
	}
	for _, name := range strings.Split(strings.Trim(rel, "/"), "/") {
		if name == "" {
			continue
		}
		const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS
		next, err := openat2(int(cur.Fd()), name, unix.O_PATH|unix.O_DIRECTORY, resolve)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(int(cur.Fd()), name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openat2(int(cur.Fd()), name, unix.O_PATH|unix.O_DIRECTORY, resolve)
			}
		}
		cur.Close()
		if err != nil {
			return nil, fmt.Errorf("mkdir %s in the container root: %w", rel, err)
		}
		cur = next
	}
	return cur, nil
}

// parentOf makes the parent directory of p in the root and opens it
// (O_PATH); it also returns the base name of the resolved p.
func (c *containerFS) parentOf(p string) (*os.File, string, error) {
	rel, err := c.resolve(p)
	if err != nil {
		return nil, "", err
	}
	if rel == "/" {
		return nil, "", fmt.Errorf("%s is the container root", p)
	}
	h, err := c.mkdirAllResolved(path.Dir(rel))
	if err != nil {
		return nil, "", err
	}
	return h, path.Base(rel), nil
}

// mkfile makes an empty file p in the root unless p exists, and opens it
// (O_PATH): the mount point of a file bind mount.
func (c *containerFS) mkfile(p string) (*os.File, error) {
	parent, base, err := c.parentOf(p)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_RDONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("creating %s in the container root: %w", p, err)
	}
	if err == nil {
		unix.Close(fd)
	}
	return c.open(p)
}

// writeFile writes f into the root, making its parent directories; a
// read-only file is made so by a read-only bind mount onto itself.
func (c *containerFS) writeFile(f agent.File, readonly bool) error {
	dest := cleanDest(f.Destination)
	parent, base, err := c.parentOf(dest)
	if err != nil {
		return err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	w := os.NewFile(uintptr(fd), dest)
	_, err = w.Write(f.Data)
	mode := f.Mode & 0o7777
	if mode == 0 {
		mode = 0o644
	}
	if err == nil {
		err = unix.Fchmod(fd, mode)
	}
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	if readonly || f.ReadOnly {
		if err := c.bindSelf(dest); err != nil {
			return err
		}
		return c.remountReadonly(dest)
	}
	return nil
}

// mount performs one of the spec's mounts.
func (c *containerFS) mount(m specs.Mount) error {
	dest := cleanDest(m.Destination)
	if dest == "/" {
		return errors.New("a mount on / is not supported")
	}
	o, err := parseMountOptions(m.Options)
	if err != nil {
		return fmt.Errorf("mount on %s: %w", dest, err)
	}
	if bundle.IsBind(m) {
		return c.bindMount(m.Source, dest, o)
	}
	fstype, data := m.Type, o.data
	if (fstype == "cgroup" || fstype == "cgroup2") && c.cgroup != "" {
		return c.mountCgroup(dest, o)
	}
	readonly := false
	switch fstype {
	case "cgroup":
		// The guest has cgroup v2 only; v1 options mean nothing to it.
		fstype, data = "cgroup2", nil
	case "devpts":
		data = devptsData(data)
	case "tmpfs":
		// Made read-only after it is filled (tmpcopyup, device nodes).
		readonly = o.flags&unix.MS_RDONLY != 0
		o.flags &^= unix.MS_RDONLY
	}
	if o.tmpcopyup && fstype != "tmpfs" {
		return fmt.Errorf("mount on %s: tmpcopyup needs a tmpfs, not %s", dest, fstype)
	}
	h, err := c.mkdirAll(dest)
	if err != nil {
		return err
	}
	defer h.Close()
	var lower *os.File
	if o.tmpcopyup {
		// Still the directory under the tmpfs once that is mounted.
		if lower, err = c.openFlags(dest, unix.O_RDONLY|unix.O_DIRECTORY); err != nil {
			return fmt.Errorf("tmpcopyup %s: %w", dest, err)
		}
		defer lower.Close()
	}
	source := m.Source
	if source == "" {
		source = fstype
	}
	if err := unix.Mount(source, fdPath(h), fstype, o.flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("mount %s on %s (options %q): %w", fstype, dest, strings.Join(m.Options, ","), err)
	}
	switch {
	case fstype == "devpts" && dest == "/dev/pts":
		c.devpts = true
	case dest == "/dev" && readonly:
		c.devReadonly, readonly = true, false
	}
	var remount uintptr
	if readonly {
		remount = o.flags | unix.MS_RDONLY
	}
	return c.finishMount(dest, o, lower, remount)
}

// mountCgroup shows the container its own cgroup (c.cgroup) as the root of
// the cgroup2 hierarchy mounted at dest.
func (c *containerFS) mountCgroup(dest string, o mountOptions) error {
	h, err := c.mkdirAll(dest)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := unix.Mount(c.cgroup, fdPath(h), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount of the container's cgroup %s on %s: %w", c.cgroup, dest, err)
	}
	return c.finishMount(dest, o, nil, o.flags|unix.MS_BIND)
}

// devptsData gives a devpts its own instance of ptys, with a /dev/pts/ptmx
// that everyone can open.
func devptsData(data []string) []string {
	var newinstance, ptmxmode bool
	for _, d := range data {
		newinstance = newinstance || d == "newinstance"
		ptmxmode = ptmxmode || strings.HasPrefix(d, "ptmxmode=")
	}
	if !newinstance {
		data = append(data, "newinstance")
	}
	if !ptmxmode {
		data = append(data, "ptmxmode=0666")
	}
	return data
}

// bindMount binds source, a path in the guest, on dest. A source the guest
// does not have is a host path: file bind mounts of the host arrive as
// cfg.Files and directory ones as cfg.Shares instead, but for /dev/shm,
// which gets a tmpfs; for any other (a source the host did not have
// either) dest is made an (empty) directory and the container goes on
// without it.
func (c *containerFS) bindMount(source, dest string, o mountOptions) error {
	fi, err := os.Stat(source)
	if err != nil && dest == "/dev/shm" {
		// The engines' shared memory directory: the guest's own tmpfs.
		h, err := c.mkdirAll(dest)
		if err != nil {
			return err
		}
		defer h.Close()
		flags := o.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT)
		if err := unix.Mount("shm", fdPath(h), "tmpfs", flags, "mode=1777"); err != nil {
			return fmt.Errorf("tmpfs for the bind mount on /dev/shm: %w", err)
		}
		return c.finishMount(dest, o, nil, 0)
	}
	if err != nil {
		guestLogf("warning: bind mount of %s on %s: %v; leaving %s as the image has it", source, dest, err, dest)
		h, err := c.mkdirAll(dest)
		if err != nil {
			guestLogf("warning: %v", err)
			return nil
		}
		return h.Close()
	}
	var h *os.File
	if fi.IsDir() {
		h, err = c.mkdirAll(dest)
	} else {
		h, err = c.mkfile(dest)
	}
	if err != nil {
		return err
	}
	defer h.Close()
	if err := unix.Mount(source, fdPath(h), "", unix.MS_BIND|o.flags&unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", source, dest, err)
	}
	if dest == "/dev" {
		c.devBind = true
	}
	var remount uintptr
	if o.flags&^(unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT) != 0 {
		remount = o.flags
	}
	return c.finishMount(dest, o, nil, remount)
}

// finishMount applies to the mount just made on dest what mount(2) could
// not: the copy of the covered directory's content (lower, for tmpcopyup),
// a remount with the flags remount (per-mount flags of a bind mount, a
// read-only tmpfs), propagation, and recursive attributes.
func (c *containerFS) finishMount(dest string, o mountOptions, lower *os.File, remount uintptr) error {
	if lower == nil && remount == 0 && len(o.propagation) == 0 && !o.recursive() {
		return nil
	}
	h, err := c.open(dest)
	if err != nil {
		return err
	}
	defer h.Close()
	if lower != nil {
		upper, err := c.openFlags(dest, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			return fmt.Errorf("tmpcopyup %s: %w", dest, err)
		}
		err = copyTree(lower, upper)
		upper.Close()
		if err != nil {
			return fmt.Errorf("tmpcopyup %s: %w", dest, err)
		}
	}
	if remount != 0 {
		flags := remount&^(unix.MS_REC|unix.MS_REMOUNT|unix.MS_BIND) | unix.MS_REMOUNT | unix.MS_BIND
		if err := unix.Mount("", fdPath(h), "", flags, ""); err != nil {
			return fmt.Errorf("remount %s: %w", dest, err)
		}
	}
	for _, p := range o.propagation {
		if err := unix.Mount("", fdPath(h), "", p, ""); err != nil {
			return fmt.Errorf("propagation of %s: %w", dest, err)
		}
	}
	if o.recursive() {
		if err := unix.MountSetattr(int(h.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &o.attr); err != nil {
			return fmt.Errorf("recursive mount options of %s: %w", dest, err)
		}
	}
	return nil
}

// bindSelf bind mounts p (recursively) onto itself.
func (c *containerFS) bindSelf(p string) error {
	h, err := c.open(p)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := unix.Mount(fdPath(h), fdPath(h), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount %s on itself: %w", p, err)
	}
	return nil
}

// remountReadonly makes the mount on p read-only, keeping its other flags.
func (c *containerFS) remountReadonly(p string) error {
	h, err := c.open(p)
	if err != nil {
		return err
	}
	defer h.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(h.Fd()), &st); err != nil {
		return fmt.Errorf("statfs %s: %w", p, err)
	}
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_NOSYMFOLLOW)
	if err := unix.Mount("", fdPath(h), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|keep, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", p, err)
	}
	return nil
}

// readonlyPath makes p read-only with a read-only bind mount onto itself;
// a p the root does not have is skipped.
func (c *containerFS) readonlyPath(p string) error {
	if err := c.bindSelf(p); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("readonly path: %w", err)
	}
	return c.remountReadonly(p)
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a
// directory; a p the root does not have is skipped.
func (c *containerFS) maskPath(p string) error {
	h, err := c.open(p)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("masked path: %w", err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return fmt.Errorf("masked path %s: %w", p, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = unix.Mount("tmpfs", fdPath(h), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
	} else {
		err = unix.Mount("/dev/null", fdPath(h), "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("masking %s: %w", p, err)
	}
	return nil
}

// defaultDevices are the device nodes every container gets, as with runc.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// setupDev makes the spec's device nodes, then the default ones the spec
// did not replace, the /dev/fd and /dev/std* links and, with a devpts on
// /dev/pts, /dev/ptmx as a link to its pts/ptmx.
func (c *containerFS) setupDev(devices []specs.LinuxDevice) error {
	for _, d := range append(append([]specs.LinuxDevice(nil), devices...), defaultDevices...) {
		if err := c.mknod(d); err != nil {
			return err
		}
	}
	dev, err := c.mkdirAll("/dev")
	if err != nil {
		return err
	}
	defer dev.Close()
	dfd := int(dev.Fd())
	names := make([]string, 0, len(devLinks))
	for name := range devLinks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := unix.Symlinkat(devLinks[name], dfd, name); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s: %w", name, err)
		}
	}
	if c.devpts {
		if err := unix.Unlinkat(dfd, "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing /dev/ptmx: %w", err)
		}
		if err := unix.Symlinkat("pts/ptmx", dfd, "ptmx"); err != nil {
			return fmt.Errorf("symlink /dev/ptmx: %w", err)
		}
	}
	return nil
}

// mknod makes device node d unless its path exists.
func (c *containerFS) mknod(d specs.LinuxDevice) error {
	var mode uint32
	switch d.Type {
	case "c", "u":
		mode = unix.S_IFCHR
	case "b":
		mode = unix.S_IFBLK
	case "p":
		mode = unix.S_IFIFO
	default:
		return fmt.Errorf("device %s: bad type %q", d.Path, d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	parent, base, err := c.parentOf(d.Path)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.Path, err)
	}
	defer parent.Close()
	pfd := int(parent.Fd())
	err = unix.Mknodat(pfd, base, mode|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err == nil {
		err = unix.Fchmodat(pfd, base, perm, 0)
	}
	if err == nil && (d.UID != nil || d.GID != nil) {
		uid, gid := -1, -1
		if d.UID != nil {
			uid = int(*d.UID)
		}
		if d.GID != nil {
			gid = int(*d.GID)
		}
		err = unix.Fchownat(pfd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("device %s: %w", d.Path, err)
	}
	return nil
}

// sysctlPath is the /proc/sys file of a sysctl key ("net.ipv4.ip_forward"
// or "net/ipv4/ip_forward").
func sysctlPath(key string) (string, error) {
	rel := strings.ReplaceAll(key, ".", "/")
	p := path.Join("/proc/sys", rel)
	if key == "" || strings.Contains(key, "//") || strings.Contains(key, "..") || !strings.HasPrefix(p, "/proc/sys/") || p != "/proc/sys/"+strings.Trim(rel, "/") {
		return "", fmt.Errorf("bad sysctl name %q", key)
	}
	return p, nil
}

// applySysctls writes the sysctls, in name order. The guest kernel is the
// container's own, so they apply to the container alone.
func applySysctls(sysctls map[string]string) error {
	keys := make([]string, 0, len(sysctls))
	for k := range sysctls {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p, err := sysctlPath(k)
		if err != nil {
			return err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err == nil {
			_, err = f.WriteString(sysctls[k])
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, sysctls[k], err)
		}
	}
	return nil
}

// copyTree copies the content of directory src into directory dst: files,
// directories, symlinks and device nodes with their modes and owners.
func copyTree(src, dst *os.File) error {
	names, err := src.Readdirnames(-1)
	if err != nil {
		return err
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		perm := st.Mode & 0o7777
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			err = copyDir(sfd, dfd, name)
		case unix.S_IFREG:
			err = copyFile(sfd, dfd, name)
		case unix.S_IFLNK:
			var target string
			if target, err = readlinkat(sfd, name); err == nil {
				err = unix.Symlinkat(target, dfd, name)
			}
		default:
			err = unix.Mknodat(dfd, name, st.Mode, int(st.Rdev))
		}
		if err == nil {
			err = unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW)
		}
		if err == nil && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			err = unix.Fchmodat(dfd, name, perm, 0)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

func copyDir(sfd, dfd int, name string) error {
	if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
		return err
	}
	s, err := openAt(sfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := openAt(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return err
	}
	defer d.Close()
	return copyTree(s, d)
}

func copyFile(sfd, dfd int, name string) error {
	s, err := openAt(sfd, name, unix.O_RDONLY)
	if err != nil {
		return err
	}
	defer s.Close()
	d, err := openAt(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL)
	if err != nil {
		return err
	}
	_, err = io.Copy(d, s)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// openAt opens name in directory dirfd without following a final symlink.
func openAt(dirfd int, name string, flags int) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}
