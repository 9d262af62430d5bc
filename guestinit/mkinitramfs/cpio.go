package main

import (
	"fmt"
	"io"
	"path"
	"strings"
)

// File type bits of a newc header's mode.
const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeChar = 0o020000
)

// archive writes a newc ("070701") cpio archive, the format the kernel
// unpacks as an initramfs. Entries are owned by root with mtime 0, so the
// output depends only on the content. Parent directories are added before
// the first entry inside them, as the kernel's unpacker needs.
type archive struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newArchive(w io.Writer) *archive {
	return &archive{w: w, dirs: map[string]bool{".": true, "": true}}
}

// dir adds directory name (and its parents) unless already added.
func (a *archive) dir(name string) {
	if a.dirs[name] {
		return
	}
	a.dir(path.Dir(name))
	a.dirs[name] = true
	a.entry(name, modeDir|0o755, 0, 0, nil)
}

// add adds an entry with a relative path (no leading '/'), after its
// parent directories.
func (a *archive) add(name string, mode, rdevMajor, rdevMinor uint32, data []byte) {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	a.dir(path.Dir(name))
	a.entry(name, mode, rdevMajor, rdevMinor, data)
}

func (a *archive) entry(name string, mode, rdevMajor, rdevMinor uint32, data []byte) {
	if a.err != nil {
		return
	}
	a.ino++
	nlink := 1
	if mode&modeDir != 0 {
		nlink = 2
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check.
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		a.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	a.write([]byte(hdr))
	a.write([]byte(name + "\x00"))
	a.pad(len(hdr) + len(name) + 1)
	a.write(data)
	a.pad(len(data))
}

func (a *archive) write(b []byte) {
	if a.err == nil {
		_, a.err = a.w.Write(b)
	}
}

// pad writes the zeros that align n bytes to 4.
func (a *archive) pad(n int) {
	a.write(make([]byte, (4-n%4)%4))
}

// close writes the trailer and returns the first error met.
func (a *archive) close() error {
	a.entry("TRAILER!!!", 0, 0, 0, nil)
	return a.err
}
