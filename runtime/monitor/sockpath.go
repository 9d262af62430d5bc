package monitor

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// maxSunPath is the longest path a unix socket address holds (sun_path is
// 108 bytes with its NUL). Engines choose long state roots: Docker's
// /var/run/docker/runtime-NAME/moby plus a 64-digit ID passes it.
const maxSunPath = 107

// withSocketPath calls f with a name for the socket at path that fits in a
// unix socket address: path itself when it is short enough, else
// /proc/self/fd/N/BASE through an O_PATH descriptor of its directory (what
// conmon does for its own sockets). The name is valid only during f.
func withSocketPath(path string, f func(name string) error) error {
	if len(path) <= maxSunPath {
		return f(path)
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket %s: opening its directory: %w", path, err)
	}
	defer unix.Close(fd)
	name := "/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path)
	if len(name) > maxSunPath {
		return fmt.Errorf("socket %s: the name %s is longer than a unix socket address takes (%d bytes)", path, filepath.Base(path), maxSunPath)
	}
	return f(name)
}

// listenUnix listens on the unix socket path, whatever its length. The
// listener does not remove the socket when closed.
func listenUnix(path string) (*net.UnixListener, error) {
	var ln *net.UnixListener
	err := withSocketPath(path, func(name string) (err error) {
		ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
		return err
	})
	if err != nil {
		return nil, err
	}
	// A /proc/self/fd name means nothing once the call is over.
	ln.SetUnlinkOnClose(false)
	return ln, nil
}

// dialUnix connects to the unix socket path, whatever its length, giving
// up after timeout (0: no limit).
func dialUnix(path string, timeout time.Duration) (*net.UnixConn, error) {
	var c net.Conn
	err := withSocketPath(path, func(name string) (err error) {
		c, err = (&net.Dialer{Timeout: timeout}).Dial("unix", name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}
