package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ferry-oss/ferry/registry/regtest"
)

// TestMakeRelease runs `make release` into a temporary DIST: four binaries
// named by os and arch, the Linux ones statically linked (as file(1) says),
// a SHA256SUMS that matches, and the version from git.
func TestMakeRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles four binaries")
	}
	mk, file := regtest.Need(t, "make"), regtest.Need(t, "file")
	dist := t.TempDir()
	cmd := exec.Command(mk, "release", "DIST="+dist, "VERSION=v9.8.7-test")
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	want := map[string]string{
		"ferry_v9.8.7-test_linux_amd64":       "ELF 64-bit LSB executable, x86-64",
		"ferry_v9.8.7-test_linux_arm64":       "ELF 64-bit LSB executable, ARM aarch64",
		"ferry_v9.8.7-test_darwin_arm64":      "Mach-O 64-bit arm64 executable",
		"ferry_v9.8.7-test_windows_amd64.exe": "PE32+ executable (console) x86-64",
	}
	sums, err := os.ReadFile(filepath.Join(dist, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, _ := strings.Cut(line, "  ")
		listed[name] = sum
	}
	if len(listed) != len(want) {
		t.Errorf("SHA256SUMS lists %d files, want %d:\n%s", len(listed), len(want), sums)
	}
	for name, kind := range want {
		path := filepath.Join(dist, name)
		out, err := exec.Command(file, path).Output()
		if err != nil {
			t.Fatalf("file %s: %v", name, err)
		}
		if !strings.Contains(string(out), kind) {
			t.Errorf("%s: file says %s, want %s", name, out, kind)
		}
		if strings.Contains(name, "linux") && !strings.Contains(string(out), "statically linked") {
			t.Errorf("%s is not statically linked: %s", name, out)
		}
		b, _ := os.ReadFile(path)
		h := sha256.Sum256(b)
		if listed[name] != hex.EncodeToString(h[:]) {
			t.Errorf("%s: SHA256SUMS says %s", name, listed[name])
		}
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "amd64" {
		out, err := exec.Command(filepath.Join(dist, "ferry_v9.8.7-test_linux_amd64"), "--version").Output()
		if err != nil || !strings.Contains(string(out), "v9.8.7-test") {
			t.Errorf("--version: %q %v", out, err)
		}
	}
}
