//go:build !linux

package storage

import "github.com/cockroachdb/pebble/v2/vfs"

// osFS is the filesystem a database uses when Options.FS is nil.
func osFS() vfs.FS { return vfs.Default }
