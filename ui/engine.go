package ui

import (
	"context"
	"log/slog"
	"time"
)

// Engine does the work the console starts. cmd/ferry implements it over
// ferry's engines, with cfg.yaml's registries and credentials: the page
// never sends a credential, it names a target.
type Engine interface {
	// Targets are the upload targets to offer: cfg.yaml's registries and
	// target, and the Docker engine.
	Targets() []Target
	// Inspect describes a bundle: its images, their blobs and referrers.
	Inspect(metaPath string) (*Detail, error)
	// Signature says whether a meta file is signed and, when cfg.yaml
	// names verifyKey, whether by a trusted key.
	Signature(metaPath string) Signature
	// Verify checks a bundle offline; the error lists every problem.
	Verify(ctx context.Context, metaPath string, run Run) error
	// Upload pushes a bundle to a target.
	Upload(ctx context.Context, req UploadRequest, run Run) (*UploadResult, error)
	// Save writes a bundle of the listed images into the console's
	// directory.
	Save(ctx context.Context, req SaveRequest, run Run) (*SaveResult, error)
}

// Run is what a job hands the engine: progress, in the shape of ferry's
// Progress (SetTotal, Begin), and a logger whose lines the page shows.
type Run interface {
	SetTotal(bytes int64, items int)
	Begin(name string, size int64) Tracker
	// Log is the job's logger; targetName, when set, rewrites the values
	// of "target" attributes (a Docker engine's images are not Docker
	// Hub's).
	Log(targetName func(string) string) *slog.Logger
	// Labels names transfers (a digest prefix) for the page, e.g.
	// "team/app:1 layer 2/3".
	Labels(func(name string) string)
}

// Tracker tracks one transfer (ferry's Tracker).
type Tracker interface {
	Add(n int64)
	Done(err error)
}

// Target is an upload target the page offers.
type Target struct {
	// Name is what the page sends back: a cfg.yaml registries name, a
	// host[/namespace], or "docker".
	Name string `json:"name"`
	// Where is the registry and namespace, or the engine's socket.
	Where   string `json:"where"`
	Docker  bool   `json:"docker"`
	Default bool   `json:"default"`
}

// Signature is a meta file's signature status.
type Signature struct {
	// State: none (unsigned), present (signed, no keys to check it),
	// valid, invalid (wrong, or by a key that is not trusted).
	State string `json:"state"`
	Key   string `json:"key,omitempty"`   // fingerprint of the signer (valid)
	Error string `json:"error,omitempty"` // why invalid
}

// Detail is a bundle's content for its page.
type Detail struct {
	Images    []Image    `json:"images"`
	Referrers []Referrer `json:"referrers"`
}

// Image is one image of a bundle.
type Image struct {
	Source    string   `json:"source"`
	Target    string   `json:"target"`
	Digest    string   `json:"digest"`
	Platforms []string `json:"platforms"`
	Blobs     int      `json:"blobs"`
	BaseBlobs int      `json:"baseBlobs"`
	Bytes     int64    `json:"bytes"`
}

// Referrer is a signature, SBOM or other artifact of an image.
type Referrer struct {
	Image        string `json:"image"`
	Subject      string `json:"subject"`
	ArtifactType string `json:"artifactType"`
	Digest       string `json:"digest"`
	Size         int64  `json:"size"`
	Tag          string `json:"tag,omitempty"`
}

// UploadRequest is an upload the page asked for.
type UploadRequest struct {
	Meta      string `json:"-"`
	Bundle    string `json:"bundle"`
	Target    string `json:"target"`
	KeepGoing bool   `json:"keepGoing"`
	// Platform is the platform a Docker engine loads (default: the host's).
	Platform string `json:"platform,omitempty"`
}

// UploadResult is what an upload did.
type UploadResult struct {
	Images       int           `json:"images"`
	Manifests    int           `json:"manifests"`
	BlobsPushed  int           `json:"blobsPushed"`
	BlobsSkipped int           `json:"blobsSkipped"`
	BlobsMounted int           `json:"blobsMounted"`
	BytesPushed  int64         `json:"bytesPushed"`
	Duration     time.Duration `json:"-"`
	Failed       []Failure     `json:"failed"`
	// BaseMissing names the base bundles to upload first when the
	// target lacks blobs an increment skipped (nothing was sent).
	BaseMissing []string `json:"baseMissing,omitempty"`
}

// Failure is an image that failed, with its cause.
type Failure struct {
	Image string `json:"image"`
	Error string `json:"error"`
}

// SaveRequest is a save the page asked for.
type SaveRequest struct {
	// Images is an image list (one reference a line, SRC -> DST renames,
	// # comments).
	Images      string   `json:"images"`
	Platforms   []string `json:"platforms"`
	Compression string   `json:"compression"`
	// Bases are meta files (bundles of the directory, by id) the new
	// bundle is an increment of.
	Bases     []string `json:"bases"`
	KeepGoing bool     `json:"keepGoing"`
	// Dir is where the bundle is written (the console's directory).
	Dir       string   `json:"-"`
	BaseMetas []string `json:"-"`
}

// SaveResult is what a save wrote.
type SaveResult struct {
	Meta      string        `json:"meta"`
	ID        string        `json:"id"`
	Images    int           `json:"images"`
	Blobs     int           `json:"blobs"`
	BlobBytes int64         `json:"blobBytes"`
	Skipped   int           `json:"skipped"`
	Partial   bool          `json:"partial"`
	Duration  time.Duration `json:"-"`
	Failed    []Failure     `json:"failed"`
}
