package main

import (
	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

var pauseCommand = &cli.Command{
	Name:      "pause",
	Usage:     "pause every process of the container (the whole guest)",
	ArgsUsage: "<container-id>",
	Action: containerAction(func(_ *cli.Context, rt *lifecycle.Runtime, id string) error {
		return rt.Pause(id)
	}),
}

var resumeCommand = &cli.Command{
	Name:      "resume",
	Usage:     "resume a paused container",
	ArgsUsage: "<container-id>",
	Action: containerAction(func(_ *cli.Context, rt *lifecycle.Runtime, id string) error {
		return rt.Resume(id)
	}),
}
