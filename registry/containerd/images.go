package containerd

import (
	"context"
	"fmt"

	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// target is what an image name points at: its top manifest.
type target struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

// setImage makes image name point at t: it creates the image, or updates
// one that points elsewhere. It reports whether it wrote anything (an
// image already pointing at t is left alone).
func setImage(ctx context.Context, c imagesapi.ImagesClient, name string, t target) (bool, error) {
	img := &imagesapi.Image{Name: name, Target: &types.Descriptor{MediaType: t.MediaType, Digest: t.Digest.String(), Size: t.Size}}
	got, err := c.Get(ctx, &imagesapi.GetImageRequest{Name: name})
	switch err := errdefs.FromGRPC(err); {
	case errdefs.IsNotFound(err):
		if _, err := c.Create(ctx, &imagesapi.CreateImageRequest{Image: img}); err != nil {
			return false, fmt.Errorf("creating image %s: %w", name, errdefs.FromGRPC(err))
		}
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading image %s: %w", name, err)
	}
	if cur := got.Image.GetTarget(); cur.GetDigest() == img.Target.Digest && cur.GetMediaType() == img.Target.MediaType && cur.GetSize() == img.Target.Size {
		return false, nil
	}
	_, err = c.Update(ctx, &imagesapi.UpdateImageRequest{Image: img, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"target"}}})
	if err != nil {
		return false, fmt.Errorf("updating image %s: %w", name, errdefs.FromGRPC(err))
	}
	return true, nil
}
