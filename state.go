package main

import (
	"encoding/json"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/lifecycle"
)

var stateCommand = &cli.Command{
	Name:      "state",
	Usage:     "print the OCI state of a container",
	ArgsUsage: "<container-id>",
	Action: containerAction(func(_ *cli.Context, rt *lifecycle.Runtime, id string) error {
		st, err := rt.State(id)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}),
}
