package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

var psCommand = &cli.Command{
	Name:  "ps",
	Usage: "list the processes of a container's guest",
	Description: `The table lists the processes running in the container's guest, with
their PIDs in the guest. --format json prints what engines ask runc for:
the host PIDs of the container, which for a guest is its monitor's PID.`,
	ArgsUsage: "<container-id>",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() < 1 {
			return checkArgs(c, 1, "<container-id>")
		}
		if c.NArg() > 1 {
			return fmt.Errorf("ps: options for ps(1) are not supported: a guest's processes are not host processes")
		}
		rt, err := newRuntime(c)
		if err != nil {
			return err
		}
		id := c.Args().First()
		switch c.String("format") {
		case "json":
			st, err := rt.State(id)
			if err != nil {
				return err
			}
			pids := []int{}
			if st.Pid > 0 {
				pids = append(pids, st.Pid)
			}
			return json.NewEncoder(os.Stdout).Encode(pids)
		case "table":
			procs, err := rt.Ps(id)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(os.Stdout, 5, 1, 3, ' ', 0)
			fmt.Fprint(w, "PID\tCMD\n")
			for _, p := range procs {
				fmt.Fprintf(w, "%d\t%s\n", p.Pid, p.Command)
			}
			return w.Flush()
		}
		return fmt.Errorf("invalid --format %q: use table or json", c.String("format"))
	},
}
