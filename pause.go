package main

import "github.com/urfave/cli/v2"

var pauseCommand = &cli.Command{
	Name:      "pause",
	Usage:     "pause every process of the container (the whole guest)",
	ArgsUsage: "<container-id>",
	Action: func(c *cli.Context) error {
		id, err := idArg(c)
		if err != nil {
			return err
		}
		rt, err := newRuntime(c)
		if err != nil {
			return err
		}
		return rt.Pause(id)
	},
}

var resumeCommand = &cli.Command{
	Name:      "resume",
	Usage:     "resume a paused container",
	ArgsUsage: "<container-id>",
	Action: func(c *cli.Context) error {
		id, err := idArg(c)
		if err != nil {
			return err
		}
		rt, err := newRuntime(c)
		if err != nil {
			return err
		}
		return rt.Resume(id)
	},
}
