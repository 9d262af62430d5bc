// Command guestinit is vxn's PID 1 inside a container's guest.
//
// In a Xen guest it mounts what it needs, loads its kernel modules, serves
// the agent protocol (runtime/agent) to the host's monitor over vchan, sets
// the container up from the config it receives, starts the container's
// process on "start", relays its stdio, reaps every child, reports the exit
// status and powers the guest off. It never panics: every error is reported
// to the monitor (or the console) and the guest is powered off.
//
// With -host-mode it runs as an ordinary host process serving the protocol
// on a unix socket, the container process chrooted into a host directory.
// That mode exists for vxn's unit tests (the fake hypervisor); it is not a
// product feature.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/agent"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == shimArg {
		// The child side of process creation: never returns on success.
		os.Exit(runShim())
	}
	fs := flag.NewFlagSet("guestinit", flag.ContinueOnError)
	hostMode := fs.Bool("host-mode", false, "serve on a unix socket as a host process (tests only)")
	socket := fs.String("agent-socket", "", "host mode: unix socket path to listen on")
	rootfs := fs.String("rootfs", "", "host mode: container root directory")
	shares := hostShares{}
	fs.Var(shares, "share", "host mode: TAG=DIR, the host directory of a share (repeatable)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *hostMode {
		if err := runHostMode(*socket, *rootfs, shares); err != nil {
			fmt.Fprintf(os.Stderr, "guestinit: %v\n", err)
			os.Exit(1)
		}
		return
	}
	runGuest()
}

// runGuest is PID 1 in a real guest. It always ends in powerOff.
func runGuest() {
	defer powerOff()
	defer func() {
		if r := recover(); r != nil {
			logf("guestinit: internal error: %v", r)
		}
	}()
	if err := bootGuest(); err != nil {
		logf("guestinit: boot: %v", err)
		return
	}
	t, err := guestTransport()
	if err != nil {
		logf("guestinit: agent channel: %v", err)
		return
	}
	s := newServer(t, prepareContainer)
	if err := s.serve(); err != nil {
		logf("guestinit: %v", err)
	}
}

// runHostMode serves one monitor connection on a unix socket.
func runHostMode(socket, rootfs string, shares hostShares) error {
	if socket == "" || rootfs == "" {
		return errors.New("host mode needs -agent-socket and -rootfs")
	}
	if os.Getpid() == 1 {
		if err := hostModeNamespace(); err != nil {
			return err
		}
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := l.Accept()
	if err != nil {
		return err
	}
	s := newServer(c, func(cfg *agent.Config) (prepared, error) {
		root, err := prepareHostRoot(cfg, rootfs, shares)
		return prepared{root: root}, err
	})
	return s.serve()
}

// hostModeNamespace makes host mode look like a guest to its own code: the
// fake hypervisor starts it as PID 1 of new pid and mount namespaces, where
// it mounts a /proc of its own. SIGUSR1 and SIGUSR2 stop and continue every
// other process of the namespace (the fake's pause).
func hostModeNamespace() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGUSR1, unix.SIGUSR2)
	go func() {
		for s := range sigs {
			if s == unix.SIGUSR1 {
				_ = unix.Kill(-1, unix.SIGSTOP)
			} else {
				_ = unix.Kill(-1, unix.SIGCONT)
			}
		}
	}()
	return nil
}

// logf writes a line to the console: the host keeps it as the guest's log.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05.000")}, args...)...)
}
