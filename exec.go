package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/creack/pty"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/vxn-runtime/vxn/runtime/bundle"
	"github.com/vxn-runtime/vxn/runtime/lifecycle"
	"github.com/vxn-runtime/vxn/runtime/monitor"
)

var execCommand = &cli.Command{
	Name:      "exec",
	Usage:     "run another process in a running container's guest",
	ArgsUsage: "<container-id> [command [args...]]",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "process", Aliases: []string{"p"}, Usage: "JSON file with the process (runtime-spec process)"},
		&cli.BoolFlag{Name: "tty", Aliases: []string{"t"}, Usage: "give the process a terminal"},
		&cli.StringFlag{Name: "console-socket", Usage: "unix socket that receives the terminal master"},
		&cli.BoolFlag{Name: "detach", Aliases: []string{"d"}, Usage: "do not wait for the process"},
		&cli.StringFlag{Name: "pid-file", Usage: "file to write the PID of the process that waits for the exec'd one"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "set an environment variable"},
		&cli.StringFlag{Name: "cwd", Usage: "working directory in the container"},
		&cli.StringFlag{Name: "user", Aliases: []string{"u"}, Usage: "uid[:gid]"},
		&cli.Int64SliceFlag{Name: "additional-gids", Aliases: []string{"g"}, Usage: "additional gids"},
		&cli.StringSliceFlag{Name: "cap", Aliases: []string{"c"}, Usage: "add a capability"},
		&cli.BoolFlag{Name: "no-new-privs", Usage: "set no_new_privs"},
		&cli.StringFlag{Name: "apparmor", Usage: "accepted for runc compatibility"},
		&cli.StringFlag{Name: "process-label", Usage: "accepted for runc compatibility"},
		&cli.BoolFlag{Name: "ignore-paused", Usage: "accepted for runc compatibility"},
		&cli.IntFlag{Name: "preserve-fds", Usage: "only 0: a guest cannot receive host fds"},
		&cli.IntFlag{Name: "exec-sync-fd", Hidden: true},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() < 1 {
			return checkArgs(c, 1, "<container-id> [command [args...]]")
		}
		if c.Int("preserve-fds") != 0 {
			return errors.New("--preserve-fds: a guest cannot receive host file descriptors")
		}
		rt, err := newRuntime(c)
		if err != nil {
			return err
		}
		socket, base, err := rt.ExecTarget(c.Args().First())
		if err != nil {
			return err
		}
		proc, err := execProcess(c, base)
		if err != nil {
			return err
		}
		if proc.Terminal && c.String("console-socket") == "" && c.Bool("detach") {
			return errors.New("exec: --tty with --detach needs --console-socket")
		}
		if c.Bool("detach") {
			return execDetached(c)
		}
		status, err := runExec(c, socket, proc)
		if err != nil {
			return err
		}
		return exitStatus(status)
	},
}

// execProcess builds the process to run: --process, or the container's
// process with the command line and flags applied.
func execProcess(c *cli.Context, base *specs.Process) (*specs.Process, error) {
	var p specs.Process
	if f := c.String("process"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("exec: reading --process: %w", err)
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("exec: --process %s: %w", f, err)
		}
	} else {
		if c.NArg() < 2 {
			return nil, errors.New("exec: give a command, or --process")
		}
		p = *base
		p.Args = c.Args().Slice()[1:]
		p.Terminal = c.Bool("tty")
		p.ConsoleSize = nil
		p.Env = append(append([]string(nil), base.Env...), c.StringSlice("env")...)
		if d := c.String("cwd"); d != "" {
			p.Cwd = d
		}
		if u := c.String("user"); u != "" {
			uid, gid, ok := strings.Cut(u, ":")
			n, err := strconv.ParseUint(uid, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("exec: --user %q: use uid[:gid]", u)
			}
			p.User.UID, p.User.GID = uint32(n), 0
			if ok {
				g, err := strconv.ParseUint(gid, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("exec: --user %q: use uid[:gid]", u)
				}
				p.User.GID = uint32(g)
			}
		}
		for _, g := range c.Int64Slice("additional-gids") {
			p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
		}
		if caps := c.StringSlice("cap"); len(caps) > 0 {
			cp := specs.LinuxCapabilities{}
			if base.Capabilities != nil {
				cp = *base.Capabilities
			}
			cp.Bounding = append(append([]string(nil), cp.Bounding...), caps...)
			cp.Effective = append(append([]string(nil), cp.Effective...), caps...)
			cp.Permitted = append(append([]string(nil), cp.Permitted...), caps...)
			p.Capabilities = &cp
		}
		p.NoNewPrivileges = p.NoNewPrivileges || c.Bool("no-new-privs")
	}
	if err := bundle.ValidateProcess(&p); err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	return &p, nil
}

// execDetached runs the exec in a child (vxn re-executed), waits until the
// process runs, writes the child's PID to --pid-file and returns. The
// child is what engines wait on: it exits with the process's status.
func execDetached(c *cli.Context) error {
	args := []string{}
	for _, a := range os.Args[1:] {
		if a != "--detach" && a != "-d" && a != "-detach" {
			args = append(args, a)
		}
	}
	// The sync fd goes right after "exec" so it is parsed as its flag.
	for i, a := range args {
		if a == "exec" {
			args = append(args[:i+1], append([]string{"--exec-sync-fd", "3"}, args[i+1:]...)...)
			break
		}
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer syncR.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{syncW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	syncW.Close()
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	msg, _ := io.ReadAll(io.LimitReader(syncR, 64<<10))
	if string(msg) != "ok" {
		if len(msg) == 0 {
			msg = []byte("the exec process exited before the process started")
		}
		return errors.New(string(msg))
	}
	if p := c.String("pid-file"); p != "" {
		return lifecycle.WritePidFile(p, cmd.Process.Pid)
	}
	return nil
}

// runExec runs proc through the monitor and returns its exit status.
func runExec(c *cli.Context, socket string, proc *specs.Process) (int, error) {
	report := func(string) {}
	if fd := c.Int("exec-sync-fd"); fd > 0 {
		sync := os.NewFile(uintptr(fd), "sync")
		report = func(msg string) {
			_, _ = io.WriteString(sync, msg)
			sync.Close()
		}
	}
	stdio := [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
	var tty *os.File
	if proc.Terminal {
		master, slave, err := pty.Open()
		if err != nil {
			report(err.Error())
			return 0, err
		}
		defer slave.Close()
		if cs := c.String("console-socket"); cs != "" {
			err = monitor.SendConsole(cs, master)
			master.Close()
		} else {
			var restore func()
			restore, err = relayTerminal(master)
			if err == nil {
				defer restore()
			}
		}
		if err != nil {
			report(err.Error())
			return 0, err
		}
		_ = unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0)
		tty = slave
		stdio = [3]*os.File{slave, slave, slave}
	}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedExecSignals...)
	defer signal.Stop(sigs)
	e, err := monitor.StartExec(socket, proc, stdio)
	if err != nil {
		report(err.Error())
		return 0, err
	}
	report("ok")
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == unix.SIGWINCH {
					if tty != nil {
						if ws, err := unix.IoctlGetWinsize(int(tty.Fd()), unix.TIOCGWINSZ); err == nil {
							_ = e.Resize(ws.Row, ws.Col)
						}
					}
					continue
				}
				_ = e.Signal(int(s.(unix.Signal)))
			case <-done:
				return
			}
		}
	}()
	if tty != nil {
		sigs <- unix.SIGWINCH
	}
	return e.Wait()
}

var forwardedExecSignals = []os.Signal{
	unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH,
}

// relayTerminal connects this process's own terminal to a pty master; the
// returned function restores the terminal.
func relayTerminal(master *os.File) (func(), error) {
	in := int(os.Stdin.Fd())
	saved, err := monitor.MakeRaw(in)
	if err != nil {
		return nil, errors.New("exec: --tty needs a terminal on stdin or --console-socket")
	}
	if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
		_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
	}
	go func() { _, _ = io.Copy(master, os.Stdin) }()
	go func() { _, _ = io.Copy(os.Stdout, master) }()
	return func() { _ = unix.IoctlSetTermios(in, unix.TCSETS, saved) }, nil
}
