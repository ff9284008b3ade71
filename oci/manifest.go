package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/manifest"
	"github.com/regclient/regclient/types/mediatype"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
)

// References returns the blobs and child manifests m refers to: for an
// image manifest its config (first) and layers, foreign layers (with URLs)
// left out; for an index its child manifests.
func References(m manifest.Manifest) (blobs, children []descriptor.Descriptor, err error) {
	switch mm := m.(type) {
	case manifest.Indexer:
		children, err = mm.GetManifestList()
	case manifest.Imager:
		var cfg descriptor.Descriptor
		if cfg, err = mm.GetConfig(); err != nil {
			return nil, nil, err
		}
		layers, lerr := mm.GetLayers()
		if lerr != nil {
			return nil, nil, lerr
		}
		for _, d := range append([]descriptor.Descriptor{cfg}, layers...) {
			if len(d.URLs) == 0 {
				blobs = append(blobs, d)
			}
		}
	default:
		err = fmt.Errorf("%w: media type %s", ErrUnsupported, m.GetDescriptor().MediaType)
	}
	return blobs, children, err
}

// IsIndex reports whether a manifest media type is an index (manifest list).
func IsIndex(mt string) bool {
	mt = mediatype.Base(mt)
	return mt == mediatype.OCI1ManifestList || mt == mediatype.Docker2ManifestList
}

// ConfigPlatform reads an image config blob (at most 4 MiB, digest
// checked) from src and returns the platform it declares, nil when it
// declares none.
func ConfigPlatform(ctx context.Context, src Source, r ref.Ref, cfg descriptor.Descriptor) (*platform.Platform, error) {
	if cfg.Size > 4<<20 {
		return nil, fmt.Errorf("config %s: %w: %d bytes", cfg.Digest, ErrUnsupported, cfg.Size)
	}
	rc, err := src.BlobGet(ctx, r, cfg)
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", cfg.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(VerifyReader(rc, cfg))
	if err != nil {
		return nil, fmt.Errorf("reading config %s: %w", cfg.Digest, err)
	}
	var c struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
		Variant      string `json:"variant"`
	}
	if err := json.Unmarshal(b, &c); err != nil || c.OS == "" {
		return nil, nil // not an image config: no platform to check
	}
	plat, err := platform.Parse(c.OS + "/" + c.Architecture + optional("/", c.Variant))
	if err != nil {
		return nil, nil
	}
	return &plat, nil
}

func optional(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}
