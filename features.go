package main

import (
	"encoding/json"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/urfave/cli/v2"

	"github.com/vxn-runtime/vxn/runtime/bundle"
)

var featuresCommand = &cli.Command{
	Name:  "features",
	Usage: "print the runtime-spec features vxn supports (JSON)",
	Action: func(c *cli.Context) error {
		if err := checkArgs(c, 0, ""); err != nil {
			return err
		}
		yes, no := true, false
		f := features.Features{
			OCIVersionMin: "1.0.0",
			OCIVersionMax: specs.Version,
			Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
			MountOptions: []string{
				"ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async",
				"relatime", "norelatime", "strictatime", "noatime", "nodiratime", "bind", "rbind",
				"private", "rprivate", "shared", "rshared", "slave", "rslave",
			},
			Linux: &features.Linux{
				// Every container has a whole guest kernel: each namespace
				// type is private to it, whether asked for or not.
				Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "user", "uts"},
				Capabilities: bundle.CapabilityNames(),
				Cgroup:       &features.Cgroup{V1: &no, V2: &yes, Systemd: &no, SystemdUser: &no},
				Seccomp:      &features.Seccomp{Enabled: &no},
				Apparmor:     &features.Apparmor{Enabled: &no},
				Selinux:      &features.Selinux{Enabled: &no},
			},
			Annotations: map[string]string{
				"org.vxn.hypervisor": "xen",
			},
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "    ")
		return enc.Encode(f)
	},
}
