package bundle

import (
	"context"

	"github.com/regclient/regclient/types/descriptor"
	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
)

// ConfigPlatform reads an image config blob (at most 4 MiB, digest
// checked) from src and returns the platform it declares, nil when it
// declares none.
func ConfigPlatform(ctx context.Context, src Source, r ref.Ref, cfg descriptor.Descriptor) (*platform.Platform, error) {
	return configPlatform(ctx, src, r, cfg)
}
