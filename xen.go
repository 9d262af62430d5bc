package main

import (
	"github.com/sirupsen/logrus"

	"github.com/vxn-runtime/vxn/libxl/xtl"
	"github.com/vxn-runtime/vxn/runtime/hypervisor"
	"github.com/vxn-runtime/vxn/runtime/hypervisor/xen"
)

// openXen opens libxl with its messages routed into vxn's log: warnings
// and worse always, everything with --debug.
func openXen() (hypervisor.Hypervisor, error) {
	level := xtl.Warn
	if logrus.IsLevelEnabled(logrus.DebugLevel) {
		level = xtl.Detail
	}
	return xen.New(xen.Options{
		NativeHotplug: true,
		LogLevel:      level,
		Log: func(l xtl.Level, msg string) {
			// Never at error level: engines show the last error line of
			// the log as the command's failure, and vxn reports its own.
			if l >= xtl.Warn {
				logrus.Warn(msg)
			} else {
				logrus.Debug(msg)
			}
		},
	})
}
