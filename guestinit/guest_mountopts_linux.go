package main

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOptions is an OCI mount's option list parsed the way runc parses it.
type mountOptions struct {
	flags       uintptr   // mount(2) flags
	propagation []uintptr // MS_SHARED, MS_PRIVATE ... (with MS_REC), applied after the mount
	attr        unix.MountAttr
	data        []string // filesystem options (mode=, size= ...)
	tmpcopyup   bool     // copy the directory's content into the new tmpfs
}

// recursive reports whether there are recursive (mount_setattr) attributes.
func (o *mountOptions) recursive() bool { return o.attr.Attr_set|o.attr.Attr_clr != 0 }

// mountFlagOptions map an option to the mount(2) flag it sets or clears.
var mountFlagOptions = map[string]struct {
	clear bool
	flag  uintptr
}{
	"acl":           {false, unix.MS_POSIXACL},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noacl":         {true, unix.MS_POSIXACL},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// propagationOptions map a propagation option to its mount(2) flags.
var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// recursiveOptions map a recursive option ("rro", "rnosuid" ...) to the
// mount_setattr(2) attribute it sets or clears on the whole mount tree.
var recursiveOptions = map[string]struct {
	clear bool
	attr  uint64
}{
	"rro":          {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":          {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":      {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":        {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":       {false, unix.MOUNT_ATTR_NODEV},
	"rdev":         {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":      {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":        {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":  {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":    {true, unix.MOUNT_ATTR_NODIRATIME},
	"rnosymfollow": {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":   {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// recursiveAtimeOptions set the access time mode of a whole mount tree.
var recursiveAtimeOptions = map[string]uint64{
	"rrelatime":      unix.MOUNT_ATTR_RELATIME,
	"ratime":         unix.MOUNT_ATTR_RELATIME,
	"rnostrictatime": unix.MOUNT_ATTR_RELATIME,
	"rnoatime":       unix.MOUNT_ATTR_NOATIME,
	"rstrictatime":   unix.MOUNT_ATTR_STRICTATIME,
	"rnorelatime":    unix.MOUNT_ATTR_STRICTATIME,
}

// parseMountOptions parses an OCI mount's options: mount flags, propagation,
// recursive attributes and vxn's own ("tmpcopyup"); the rest is filesystem
// data. Idmapped mounts are refused: the guest has no user namespaces to
// map.
func parseMountOptions(opts []string) (mountOptions, error) {
	var o mountOptions
	for _, opt := range opts {
		if f, ok := mountFlagOptions[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
			} else {
				o.flags |= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.propagation = append(o.propagation, p)
			continue
		}
		if r, ok := recursiveOptions[opt]; ok {
			if r.clear {
				o.attr.Attr_clr |= r.attr
				o.attr.Attr_set &^= r.attr
			} else {
				o.attr.Attr_set |= r.attr
				o.attr.Attr_clr &^= r.attr
			}
			continue
		}
		if a, ok := recursiveAtimeOptions[opt]; ok {
			o.attr.Attr_clr |= unix.MOUNT_ATTR__ATIME
			o.attr.Attr_set = o.attr.Attr_set&^unix.MOUNT_ATTR__ATIME | a
			continue
		}
		switch {
		case opt == "tmpcopyup":
			o.tmpcopyup = true
		case opt == "idmap" || opt == "ridmap" || strings.HasPrefix(opt, "X-mount.idmap"):
			return mountOptions{}, fmt.Errorf("mount option %q: idmapped mounts are not supported in a vxn guest", opt)
		case opt != "":
			o.data = append(o.data, opt)
		}
	}
	return o, nil
}
