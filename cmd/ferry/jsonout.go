package main

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/meta"
	"github.com/ferry-oss/ferry/transfer"
)

// jsonFlag is --json: one machine-readable result object on stdout.
var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object on stdout (messages go to stderr)"}

// jsonOutput, with --json, sends the command's human output to stderr
// and returns the real stdout for the JSON object (nil without --json).
func (e *env) jsonOutput(c *cli.Context) (io.Writer, func()) {
	if !c.Bool("json") {
		return nil, func() {}
	}
	out := e.stdout
	e.stdout = e.stderr
	return out, func() { e.stdout = out }
}

func writeJSON(w io.Writer, v any) {
	if w != nil {
		_ = json.NewEncoder(w).Encode(v)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func failuresOf(err error) []jsonFailure {
	out := []jsonFailure{}
	var fe *transfer.FailedError
	if errors.As(err, &fe) {
		for _, f := range fe.Images {
			out = append(out, jsonFailure{Image: f.Image, Error: f.Err.Error()})
		}
	}
	return out
}

type saveJSON struct {
	OK         bool          `json:"ok"`
	Meta       string        `json:"meta,omitempty"`
	ID         string        `json:"id,omitempty"`
	Partial    bool          `json:"partial"`
	Images     int           `json:"images"`
	Parts      int           `json:"parts"`
	Blobs      int           `json:"blobs"`
	BlobBytes  int64         `json:"blobBytes"`
	Skipped    int           `json:"blobsSkipped"`
	Resumed    int           `json:"blobsResumed"`
	DurationMS int64         `json:"durationMs"`
	Failures   []jsonFailure `json:"failures"`
	Error      string        `json:"error,omitempty"`
}

func saveResultJSON(res *transfer.SaveResult, err error) saveJSON {
	j := saveJSON{OK: err == nil, Failures: failuresOf(err)}
	if len(j.Failures) == 0 {
		j.Error = errString(err)
	}
	if res != nil && res.Meta != nil {
		j.Meta, j.ID, j.Partial = res.MetaPath, res.Meta.ID, res.Meta.Partial
		j.Images, j.Parts, j.Blobs, j.BlobBytes, j.Skipped = len(res.Meta.Images), len(res.Meta.Parts), res.Blobs, res.BlobBytes, res.Skipped
		j.DurationMS, j.Resumed = res.Duration.Milliseconds(), res.Resumed
	}
	return j
}

type uploadJSON struct {
	OK          bool   `json:"ok"`
	Meta        string `json:"meta"`
	ID          string `json:"id"`
	Target      string `json:"target"`
	Images      int    `json:"images"`
	Manifests   int    `json:"manifestsPushed"`
	Pushed      int    `json:"blobsPushed"`
	Skipped     int    `json:"blobsSkipped"`
	Mounted     int    `json:"blobsMounted"`
	BytesPushed int64  `json:"bytesPushed"`
	DurationMS  int64  `json:"durationMs"`
	// Failures are the images not pushed (--keep-going), with their cause.
	Failures []jsonFailure `json:"failures"`
	Error    string        `json:"error,omitempty"`
}

func uploadResultJSON(metaPath, id, target string, res *transfer.UploadResult, err error) uploadJSON {
	j := uploadJSON{OK: err == nil, Meta: metaPath, ID: id, Target: target, Failures: failuresOf(err)}
	if len(j.Failures) == 0 {
		j.Error = errString(err)
	}
	if res != nil {
		j.Images, j.Manifests, j.Pushed, j.Skipped, j.Mounted = res.Images, res.Manifests, res.BlobsPushed, res.BlobsSkipped, res.BlobsMounted
		j.BytesPushed, j.DurationMS = res.BytesPushed, res.Duration.Milliseconds()
	}
	return j
}

type verifyJSON struct {
	OK        bool     `json:"ok"`
	Meta      string   `json:"meta"`
	ID        string   `json:"id"`
	Parts     int      `json:"parts"`
	Blobs     int      `json:"blobs"`
	BlobBytes int64    `json:"blobBytes"`
	Images    int      `json:"images"`
	Problems  []string `json:"problems"`
}

func verifyResultJSON(path string, m *meta.Meta, err error) verifyJSON {
	j := verifyJSON{OK: err == nil, Meta: path, ID: m.ID, Parts: len(m.Parts), Blobs: len(m.Blobs), BlobBytes: m.TotalBlobBytes(), Images: len(m.Images), Problems: []string{}}
	if err != nil {
		j.Problems = strings.Split(err.Error(), "\n")
	}
	return j
}

type inspectImageJSON struct {
	Source    string   `json:"source"`
	Target    string   `json:"target"`
	Digest    string   `json:"digest"`
	Platforms []string `json:"platforms"`
	Blobs     int      `json:"blobs"`     // every blob the image needs
	BaseBlobs int      `json:"baseBlobs"` // of those, carried by a base bundle
	Bytes     int64    `json:"bytes"`
}

type partJSON struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

type inspectJSON struct {
	Meta        string             `json:"meta"`
	ID          string             `json:"id"`
	Type        string             `json:"type"`
	Partial     bool               `json:"partial"`
	Created     time.Time          `json:"created"`
	Tool        string             `json:"tool"`
	Platforms   []string           `json:"platforms"`
	Compression string             `json:"compression"`
	Images      []inspectImageJSON `json:"images"`
	Parts       []partJSON         `json:"parts"`
	Blobs       int                `json:"blobs"`
	BlobBytes   int64              `json:"blobBytes"`
	BaseBlobs   int                `json:"baseBlobs"`
	Manifests   int                `json:"manifests"`
	Bases       []string           `json:"bases"`
	Failed      []jsonFailure      `json:"failed"`
}

func inspectResultJSON(path string, bd *bundle.Bundle) inspectJSON {
	m := bd.Meta
	j := inspectJSON{Meta: path, ID: m.ID, Type: m.Type, Partial: m.Partial, Created: m.Created, Tool: m.Tool,
		Platforms: orEmpty(m.Platforms), Compression: m.Compression, Parts: []partJSON{}, Blobs: len(m.Blobs),
		BlobBytes: m.TotalBlobBytes(), BaseBlobs: len(m.BaseBlobs), Manifests: len(m.Manifests),
		Images: []inspectImageJSON{}, Bases: []string{}, Failed: []jsonFailure{}}
	blobs := newBlobIndex(m)
	for _, img := range m.Images {
		n, base, size := blobs.image(bd, img)
		target := img.Repository
		if img.Tag != "" {
			target += ":" + img.Tag
		}
		j.Images = append(j.Images, inspectImageJSON{Source: img.Source, Target: target, Digest: img.Digest.String(), Platforms: orEmpty(img.Platforms), Blobs: n, BaseBlobs: base, Bytes: size})
	}
	for _, p := range m.Parts {
		j.Parts = append(j.Parts, partJSON{Name: p.Name, Size: p.Size, SHA256: p.SHA256})
	}
	for _, b := range m.Bases {
		j.Bases = append(j.Bases, b.ID)
	}
	for _, f := range m.Failed {
		j.Failed = append(j.Failed, jsonFailure{Image: f.Source, Error: f.Error})
	}
	return j
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
