package main

import (
	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

var deleteCommand = &cli.Command{
	Name:      "delete",
	Usage:     "delete a stopped container and everything vxn made for it",
	ArgsUsage: "<container-id>",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "kill the container first if it is running"},
	},
	Action: containerAction(func(c *cli.Context, rt *lifecycle.Runtime, id string) error {
		return rt.Delete(c.Context, id, c.Bool("force"))
	}),
}
