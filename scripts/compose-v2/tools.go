//go:build tools

// Package tools pins github.com/docker/compose/v2/cmd, the docker compose CLI plugin, for go build.
package tools

import _ "github.com/docker/compose/v2/cmd"
