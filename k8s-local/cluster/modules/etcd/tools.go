//go:build tools

// The command built from this module; the tag keeps `go build ./...` from trying to import it.
package tools

import _ "go.etcd.io/etcd/server/v3"
