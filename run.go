package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

var runCommand = &cli.Command{
	Name:      "run",
	Usage:     "create and start a container, and wait for it unless --detach",
	ArgsUsage: "<container-id>",
	Flags: append([]cli.Flag{
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "do not wait for the container"},
		&cli.BoolFlag{Name: "keep", Usage: "do not delete the container when it exits"},
	}, createFlags...),
	Action: func(c *cli.Context) error {
		id, err := idArg(c)
		if err != nil {
			return err
		}
		return doRun(c, id)
	},
}

func doRun(c *cli.Context, id string) error {
	// A terminal without a console socket uses this process's terminal,
	// as runc run does.
	var console *consoleRelay
	if c.String("console-socket") == "" && !c.Bool("detach") {
		var err error
		if console, err = newConsoleRelay(c.String("bundle")); err != nil {
			return err
		}
		if console != nil {
			defer console.Close()
			if err := c.Set("console-socket", console.Path); err != nil {
				return err
			}
		}
	}
	// Signals for the container arrive here first; the monitor forwards
	// them into the guest.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs)
	defer signal.Stop(sigs)

	created, err := doCreate(c, id)
	if err != nil {
		return err
	}
	rt, err := newRuntime(c)
	if err != nil {
		return err
	}
	if console != nil {
		if err := console.Start(); err != nil {
			_ = rt.Delete(context.Background(), id, true)
			return err
		}
	}
	if err := rt.Start(c.Context, id); err != nil {
		_ = rt.Delete(context.Background(), id, true)
		return err
	}
	if c.Bool("detach") {
		return nil
	}
	status := waitMonitor(created, sigs)
	if console != nil {
		console.Drain(time.Second)
	}
	if !c.Bool("keep") {
		if err := rt.Delete(context.Background(), id, true); err != nil {
			return err
		}
	}
	return exitStatus(status)
}

// waitMonitor waits for the monitor (our child) and returns its exit
// status, forwarding signals to it meanwhile.
func waitMonitor(created *lifecycle.Created, sigs <-chan os.Signal) int {
	done := make(chan *os.ProcessState, 1)
	go func() {
		ps, _ := created.Monitor.Wait()
		done <- ps
	}()
	for {
		select {
		case s := <-sigs:
			switch s {
			case syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPIPE:
				continue
			}
			_ = created.Monitor.Signal(s)
		case ps := <-done:
			if ps == nil {
				return 255
			}
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ps.ExitCode()
		}
	}
}

var errNoTerminal = errors.New("process.terminal is true but stdin is not a terminal: use --console-socket or set terminal to false")
