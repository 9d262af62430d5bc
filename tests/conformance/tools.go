//go:build tools

// Package conformance pins the runtime-tools validation suite. The
// conformance program builds these packages from the module cache; this
// file (never compiled) keeps them and their dependencies in go.mod.
package conformance

import (
	_ "github.com/opencontainers/runtime-tools/cmd/runtimetest"
	_ "github.com/opencontainers/runtime-tools/validation/util"
)
