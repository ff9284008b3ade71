package main

import "flag"

// imageTransmit pushes regtest.ImageTransmitFixtures: the images
// testdata/imagetransmit's bundles were saved from.
var imageTransmit = flag.Bool("imagetransmit", false, "push the images of testdata/imagetransmit (Docker schema 2, OCI, a manifest list)")
