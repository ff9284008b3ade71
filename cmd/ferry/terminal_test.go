package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/ferry-oss/ferry/meta"
)

// terminalActive reports the first character of s a terminal would act
// on, other than newline and tab: ESC, BEL, CR, C1 controls.
func terminalActive(s string) (rune, bool) {
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f) || r == 0x202e {
			return r, true
		}
	}
	return 0, false
}

// TestTerminalEscapes: strings a bundle or a registry wrote (meta fields,
// a referrer's artifactType, a registry's error body) reach stdout and
// stderr with their control characters escaped: no screen clear, window
// title, OSC-8 link or line overwrite; --json keeps them as JSON escapes.
func TestTerminalEscapes(t *testing.T) {
	dir := t.TempDir()
	m, err := meta.Load("../../testdata/bundles/v1-none/ferry_full_20261101T020000Z_meta.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m.Tool = "ferry \x1b]0;pwned\x07"
	m.Images[0].Source = "\x1b[2J\x1b[Hregistry.test/x:1"
	m.Partial = true
	m.Failed = []meta.FailedItem{{Source: "a\rOK", Error: "\x1b]8;;http://evil.test/\x1b\\click\x1b]8;;\x1b\\ \u009b31m"}}
	raw := fmt.Appendf(nil, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x-\u001b[31mevil","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":"%s","digest":"%s","size":%d}}`,
		m.Images[0].MediaType, m.Images[0].Digest, m.ManifestByDigest(m.Images[0].Digest).Size)
	m.Manifests = append(m.Manifests, meta.Manifest{Digest: digest.FromBytes(raw), MediaType: "application/vnd.oci.image.manifest.v1+json", Size: int64(len(raw)), Raw: raw, Repos: []string{m.Images[0].Repository}})
	metaPath := filepath.Join(dir, "ferry_full_20261101T020000Z_meta.yaml")
	if err := meta.Write(metaPath, m); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := ferry(t, "", "inspect", metaPath)
	if code != 0 {
		t.Fatalf("inspect: exit %d\n%s", code, stderr)
	}
	if r, bad := terminalActive(stdout); bad {
		t.Errorf("inspect printed %U raw:\n%q", r, stdout)
	}
	for _, want := range []string{`\x1b]0;pwned\x07`, `\x1b[2J\x1b[Hregistry.test/x:1`, `a\rOK`, `\u009b31m`, `application/x-\x1b[31mevil`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("inspect does not show %s:\n%s", want, stdout)
		}
	}
	_, jsonOut, _ := ferry(t, "", "inspect", "--json", metaPath)
	var doc map[string]any
	if err := json.Unmarshal([]byte(jsonOut), &doc); err != nil || !strings.Contains(jsonOut, `\u001b]0;pwned`) {
		t.Errorf("--json: %v\n%s", err, jsonOut)
	}

	// a registry whose error bodies carry escapes
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"\x1b[2J\x1b]0;owned\x07 gone\"}]}")
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	code, _, stderr = ferry(t, "", "--no-progress", "save", "--retries", "0", host+"/team/app:1", "-o", t.TempDir())
	if code == 0 {
		t.Fatal("save from a registry that refuses everything succeeded")
	}
	if r, bad := terminalActive(stderr); bad {
		t.Errorf("save printed %U raw:\n%q", r, stderr)
	}
}
