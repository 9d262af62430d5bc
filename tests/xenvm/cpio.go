package main

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"strings"
)

// cpioWriter writes a "newc" cpio archive, the format the kernel unpacks
// as an initramfs. It creates missing parent directories itself.
type cpioWriter struct {
	w    *bufio.Writer
	ino  int
	dirs map[string]bool
	err  error
}

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeLink = 0o120000
	modeChr  = 0o020000
)

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), dirs: map[string]bool{"": true, ".": true}}
}

func (c *cpioWriter) pad(n int) {
	if c.err != nil {
		return
	}
	if p := (4 - n%4) % 4; p > 0 {
		_, c.err = c.w.Write(make([]byte, p))
	}
}

func (c *cpioWriter) header(name string, mode uint32, size int, rdevMajor, rdevMinor int) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	if _, c.err = io.WriteString(c.w, hdr+name+"\x00"); c.err != nil {
		return
	}
	c.pad(len(hdr) + len(name) + 1)
}

// parents creates the directories above name.
func (c *cpioWriter) parents(name string) {
	d := path.Dir(name)
	if c.dirs[d] {
		return
	}
	c.parents(d)
	c.dirs[d] = true
	c.header(d, modeDir|0o755, 0, 0, 0)
}

func clean(name string) string { return strings.TrimPrefix(path.Clean("/"+name), "/") }

// Dir adds a directory.
func (c *cpioWriter) Dir(name string, perm uint32) {
	name = clean(name)
	if c.dirs[name] {
		return
	}
	c.parents(name)
	c.dirs[name] = true
	c.header(name, modeDir|perm, 0, 0, 0)
}

// File adds a regular file.
func (c *cpioWriter) File(name string, perm uint32, data []byte) {
	name = clean(name)
	c.parents(name)
	c.header(name, modeFile|perm, len(data), 0, 0)
	if c.err == nil {
		_, c.err = c.w.Write(data)
	}
	c.pad(len(data))
}

// Symlink adds a symbolic link.
func (c *cpioWriter) Symlink(name, target string) {
	name = clean(name)
	c.parents(name)
	c.header(name, modeLink|0o777, len(target), 0, 0)
	if c.err == nil {
		_, c.err = io.WriteString(c.w, target)
	}
	c.pad(len(target))
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm uint32, major, minor int) {
	name = clean(name)
	c.parents(name)
	c.header(name, modeChr|perm, 0, major, minor)
}

// Close writes the trailer and flushes; it does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err == nil {
		c.err = c.w.Flush()
	}
	return c.err
}
