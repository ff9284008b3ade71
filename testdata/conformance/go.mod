// The OCI distribution-spec conformance suite, pinned as a tool of its own
// module so that it is no dependency of ferry: registry/serve TestConformance
// builds it and runs its pull workflow against ferry serve.
module github.com/ferry-oss/ferry/testdata/conformance

go 1.24.0

require github.com/opencontainers/distribution-spec/conformance v0.0.0-20260831232431-97274622c111 // indirect

require (
	github.com/goccy/go-yaml v1.18.0 // indirect
	github.com/opencontainers/distribution-spec/specs-go v0.0.0-20240926185104-8376368dd8aa // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)

tool github.com/opencontainers/distribution-spec/conformance
