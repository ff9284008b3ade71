package main

import (
	"github.com/ferry-oss/ferry/foreign/imagearchive"
	"github.com/ferry-oss/ferry/foreign/imagetransmit"
)

// Bundles of other tools that every command reads (bundle.Format):
// image-transmit's, and image archives (docker-archive, oci-archive, OCI
// layout).
func init() {
	imagetransmit.Register()
	imagearchive.Register()
}
