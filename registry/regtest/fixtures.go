package regtest

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// TestdataDir is the repository's testdata directory: found from this
// source file, or (in a -trimpath binary) from the working directory up.
func TestdataDir() string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "testdata")
	if _, err := os.Stat(filepath.Join(dir, "rootfs")); err == nil {
		return dir
	}
	for wd, _ := os.Getwd(); wd != filepath.Dir(wd); wd = filepath.Dir(wd) {
		if _, err := os.Stat(filepath.Join(wd, "testdata", "rootfs")); err == nil {
			return filepath.Join(wd, "testdata")
		}
	}
	return dir
}

// RootfsLayer builds a gzip tar layer of testdata/rootfs/<name>; extra
// files (name -> content) are added, e.g. to make per-platform layers.
func RootfsLayer(name string, extra map[string]string) Blob {
	root := filepath.Join(TestdataDir(), "rootfs", name)
	files := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		panic(err)
	}
	for k, v := range extra {
		files[k] = v
	}
	return Layer(files)
}

// Fixtures are the standard test images, by repository:tag.
func Fixtures() map[string]*Image {
	base := RootfsLayer("base", nil)
	app := RootfsLayer("app", nil)
	tools := RootfsLayer("tools", nil)
	var children []*Image
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7"} {
		children = append(children, NewImage(p, base, RootfsLayer("app", map[string]string{"arch.txt": strings.ReplaceAll(p, "/", "-")})))
	}
	return map[string]*Image{
		"library/base:1":  NewImage("linux/amd64", base),
		"team/app:1":      NewImage("linux/amd64", base, app),
		"team/tools:1":    NewImage("linux/amd64", base, tools),
		"library/multi:1": NewIndex(children...),
	}
}
