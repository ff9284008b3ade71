package main

import "github.com/ferry-oss/ferry/foreign/imagetransmit"

// Bundles of other tools that every command reads (bundle.Format).
func init() { imagetransmit.Register() }
