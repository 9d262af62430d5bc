// Command vxn is an OCI runtime that runs every container as its own Xen
// guest. It speaks runc's command line, so podman, Docker, containerd and
// the runtime-tools validation suite drive it as they drive runc.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/hypervisor/fake"
	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

// version is set at build time (-ldflags -X main.version=...).
var (
	version = "0.1.0-dev"
	commit  = "unknown"
)

// exitStatus is returned by commands that end with a container's status.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	if isHotplugCall(os.Args, os.Getenv) {
		os.Exit(hotplug(os.Args[1]))
	}
	app := newApp()
	err := app.Run(os.Args)
	var st exitStatus
	switch {
	case err == nil:
	case errors.As(err, &st):
		os.Exit(int(st))
	default:
		logrus.Error(err.Error())
		fmt.Fprintf(os.Stderr, "vxn: %v\n", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	cli.VersionPrinter = func(*cli.Context) {
		fmt.Printf("vxn version %s\ncommit: %s\nspec: %s\n", version, commit, specs.Version)
	}
	return &cli.App{
		Name:    "vxn",
		Usage:   "OCI runtime that runs each container as its own Xen guest",
		Version: version,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "root", Value: "/run/vxn", Usage: "directory for container state"},
			&cli.StringFlag{Name: "log", Usage: "log file (errors are also printed on stderr)"},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format: text or json"},
			&cli.BoolFlag{Name: "debug", Usage: "log debug messages"},
			&cli.StringFlag{Name: "config", Value: defaultConfigFile, Usage: "vxn configuration file (guest kernel, initramfs, memory)"},
			&cli.StringFlag{Name: "kernel", Usage: "guest kernel (overrides the configuration file)"},
			&cli.StringFlag{Name: "initramfs", Usage: "guest initramfs (overrides the configuration file)"},
			&cli.BoolFlag{Name: "systemd-cgroup", Usage: "accepted for runc compatibility; a guest has no host cgroup"},
			&cli.StringFlag{Name: "rootless", Usage: "accepted for runc compatibility"},
			&cli.StringFlag{Name: "criu", Usage: "accepted for runc compatibility; checkpoints need no CRIU"},
			&cli.StringFlag{Name: "hypervisor", Value: "xen", EnvVars: []string{"VXN_HYPERVISOR"}, Hidden: true},
			&cli.StringFlag{Name: "fake-guestinit", EnvVars: []string{"VXN_FAKE_GUESTINIT"}, Hidden: true},
		},
		Before: setupLogging,
		Commands: []*cli.Command{
			createCommand, startCommand, runCommand, stateCommand, killCommand, deleteCommand,
			listCommand, psCommand, execCommand, checkCommand, pauseCommand, resumeCommand, updateCommand, specCommand, featuresCommand, monitorCommand,
			poolCommand,
		},
		// Errors are reported once, by main.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// setupLogging sends logrus to --log in runc's format. The file is always
// created: containerd reads it after every call.
func setupLogging(c *cli.Context) error {
	logrus.SetOutput(discard{})
	if c.Bool("debug") {
		logrus.SetLevel(logrus.DebugLevel)
	}
	switch f := c.String("log-format"); f {
	case "text", "":
		logrus.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	case "json":
		logrus.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	default:
		return fmt.Errorf("unknown --log-format %q: use text or json", f)
	}
	if p := c.String("log"); p != "" {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("opening the log file: %w", err)
		}
		logrus.SetOutput(f)
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// newRuntime builds the lifecycle runtime from the global flags.
func newRuntime(c *cli.Context) (*lifecycle.Runtime, error) {
	root, err := filepath.Abs(c.String("root"))
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(c.String("config"))
	if err != nil {
		return nil, err
	}
	cfg.override(c)
	hvName := c.String("hypervisor")
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the vxn binary: %w", err)
	}
	// The monitor reads the container's resolved settings from its state.
	monitorCmd := []string{exe, "--root", root, "--hypervisor", hvName, "--config", c.String("config")}
	if c.Bool("debug") {
		monitorCmd = append(monitorCmd, "--debug")
	}
	monitorCmd = append(monitorCmd, "monitor")
	fakeGuestinit := c.String("fake-guestinit")
	return lifecycle.New(lifecycle.Options{
		Root:       root,
		Hypervisor: hvName,
		Open: func(name string) (hypervisor.Hypervisor, error) {
			return openHypervisor(name, root, fakeGuestinit)
		},
		Guest:      cfg.guest(),
		MonitorCmd: monitorCmd,
		Log:        logrus.StandardLogger(),
	}), nil
}

func openHypervisor(name, root, fakeGuestinit string) (hypervisor.Hypervisor, error) {
	switch name {
	case "fake":
		return fake.New(filepath.Join(root, ".fake"), fakeGuestinit)
	case "xen":
		return openXen()
	}
	return nil, fmt.Errorf("unknown hypervisor %q: vxn supports xen", name)
}

// containerAction is the Action of a command whose one argument is a
// container ID: it builds the runtime and runs f.
func containerAction(f func(c *cli.Context, rt *lifecycle.Runtime, id string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		id, err := idArg(c)
		if err != nil {
			return err
		}
		rt, err := newRuntime(c)
		if err != nil {
			return err
		}
		return f(c, rt, id)
	}
}

// checkArgs checks a command's positional arguments.
func checkArgs(c *cli.Context, n int, usage string) error {
	if c.NArg() != n {
		return fmt.Errorf("%s: expects %d argument(s): %s", c.Command.Name, n, usage)
	}
	return nil
}

// idArg returns the container ID argument.
func idArg(c *cli.Context) (string, error) {
	if err := checkArgs(c, 1, "<container-id>"); err != nil {
		return "", err
	}
	return c.Args().First(), nil
}
