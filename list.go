package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

var listCommand = &cli.Command{
	Name:  "list",
	Usage: "list containers",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "table or json"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the IDs"},
	},
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 0, ""); err != nil {
			return err
		}
		rt, err := newRuntime(c)
		if err != nil {
			return err
		}
		entries, err := rt.List()
		if err != nil {
			return err
		}
		switch {
		case c.Bool("quiet"):
			for _, e := range entries {
				fmt.Println(e.ID)
			}
		case c.String("format") == "json":
			return json.NewEncoder(os.Stdout).Encode(entries)
		case c.String("format") == "table":
			w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
			fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
			for _, e := range entries {
				fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", e.ID, e.Pid, e.Status, e.Bundle, e.Created.Format(time.RFC3339Nano), e.Owner)
			}
			return w.Flush()
		default:
			return fmt.Errorf("invalid --format %q: use table or json", c.String("format"))
		}
		return nil
	},
}
