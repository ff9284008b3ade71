package selection

import "strings"

// CutScheme drops http:// or https:// from an image or registry pasted as
// a URL; plain reports http:// (ImageSpec.PlainHTTP).
func CutScheme(s string) (rest string, plain bool) {
	if r, ok := strings.CutPrefix(s, "http://"); ok {
		return r, true
	}
	return strings.TrimPrefix(s, "https://"), false
}
