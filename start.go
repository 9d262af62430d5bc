package main

import (
	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

var startCommand = &cli.Command{
	Name:      "start",
	Usage:     "start the process of a created container",
	ArgsUsage: "<container-id>",
	Action: containerAction(func(c *cli.Context, rt *lifecycle.Runtime, id string) error {
		return rt.Start(c.Context, id)
	}),
}
