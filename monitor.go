package main

import (
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/state"
)

// monitorCommand is the per-container monitor: vxn re-executed by create.
var monitorCommand = &cli.Command{
	Name:   "monitor",
	Hidden: true,
	Action: func(c *cli.Context) error {
		id, err := idArg(c)
		if err != nil {
			return err
		}
		if err := state.ValidateID(id); err != nil {
			return err
		}
		// The monitor's stdio is the container's: it logs to its own file.
		f, err := os.OpenFile(filepath.Join(c.String("root"), id, state.MonitorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		logrus.SetOutput(f)
		rt, err := newRuntime(c)
		if err != nil {
			return err
		}
		return exitStatus(rt.RunMonitor(id))
	},
}
