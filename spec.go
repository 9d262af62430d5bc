package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/bundle"
)

var specCommand = &cli.Command{
	Name:  "spec",
	Usage: "write a default config.json to the bundle directory",
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Value: ".", Usage: "bundle directory"},
		&cli.BoolFlag{Name: "rootless", Usage: "accepted for runc compatibility: a guest needs no rootless spec"},
	},
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 0, ""); err != nil {
			return err
		}
		p := filepath.Join(c.String("bundle"), bundle.ConfigFile)
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("file %s exists: remove it first", p)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		b, err := json.MarshalIndent(bundle.DefaultSpec(), "", "\t")
		if err != nil {
			return err
		}
		return os.WriteFile(p, append(b, '\n'), 0o666)
	},
}
