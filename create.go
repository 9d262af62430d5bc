package main

import (
	"errors"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

// createFlags are shared by create and run.
var createFlags = []cli.Flag{
	&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Value: ".", Usage: "path to the bundle directory"},
	&cli.StringFlag{Name: "pid-file", Usage: "file to write the container's PID to (the monitor's)"},
	&cli.StringFlag{Name: "console-socket", Usage: "unix socket that receives the terminal master when process.terminal is true"},
	&cli.BoolFlag{Name: "no-pivot", Usage: "accepted for runc compatibility"},
	&cli.BoolFlag{Name: "no-new-keyring", Usage: "accepted for runc compatibility"},
	&cli.IntFlag{Name: "preserve-fds", Usage: "pass N extra fds; a guest cannot receive host fds, so only 0 is accepted"},
}

var createCommand = &cli.Command{
	Name:      "create",
	Usage:     "create a container: boot its guest and set it up, without starting the process",
	ArgsUsage: "<container-id>",
	Flags:     createFlags,
	Action: func(c *cli.Context) error {
		id, err := idArg(c)
		if err != nil {
			return err
		}
		_, err = doCreate(c, id)
		return err
	},
}

func doCreate(c *cli.Context, id string) (*lifecycle.Created, error) {
	if c.Int("preserve-fds") != 0 {
		return nil, errors.New("--preserve-fds: a guest cannot receive host file descriptors")
	}
	// Only the container's stdio may reach the monitor (engines leak
	// sockets into the runtime: containerd-shim's ttrpc socket is fd 3).
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	rt, err := newRuntime(c)
	if err != nil {
		return nil, err
	}
	return rt.Create(c.Context, id, lifecycle.CreateOptions{
		Bundle:        c.String("bundle"),
		PidFile:       c.String("pid-file"),
		ConsoleSocket: c.String("console-socket"),
		Stdin:         os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
	})
}
