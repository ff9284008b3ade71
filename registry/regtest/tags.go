package regtest

// VersionTags are the tags of the tag-selection fixtures: semver order
// (v1.0.0 < v1.2.0 < v1.10.0 < v2.0.0-rc1) is not string order.
var VersionTags = []string{"v1.0.0", "v1.2.0", "v1.10.0", "v2.0.0-rc1", "latest"}

// Versioned builds one linux/amd64 image per tag of VersionTags (the base
// layer shared, a small layer naming the version): tag -> image.
func Versioned() map[string]*Image {
	base := RootfsLayer("base", nil)
	out := map[string]*Image{}
	for _, t := range VersionTags {
		out[t] = NewImage("linux/amd64", base, Layer(map[string]string{"version.txt": t + "\n"}))
	}
	return out
}
