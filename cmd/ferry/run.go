package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/regclient/regclient/types/platform"
	"github.com/regclient/regclient/types/ref"
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/internal/safe"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry"
	"github.com/ferry-oss/ferry/registry/docker"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
)

func (e *env) save(c *cli.Context) error {
	if every := c.Duration("watch"); every != 0 {
		return e.saveWatch(c, every)
	}
	err := e.saveOnce(c)
	e.notifyEnd(c.Context, "save", err) // each --watch round too
	return err
}

func (e *env) saveOnce(c *cli.Context) error {
	jsonOut, restore := e.jsonOutput(c)
	defer restore()
	s, err := e.saveFlags(c)
	if err != nil {
		return err
	}
	reg, err := s.openSource()
	if err != nil {
		return err
	}
	res, suspended, err := s.write(reg)
	if suspended != "" {
		defer fmt.Fprint(e.stderr, suspended)
	}
	writeJSON(jsonOut, saveResultJSON(res, err))
	return s.done(res, err)
}

// saveRun is one `ferry save`: its settings and images.
type saveRun struct {
	e             *env
	c             *cli.Context
	images        []selection.ImageSpec
	plats         []platform.Platform
	platNames     []string
	codec         bundle.Codec
	split         int64
	single        bool
	jobs, retries int
	outDir        string
	prefix        string // file name prefix (--prefix, or image-transmit's -out)
	resume        bundle.ResumeMode
	referrers     bool
	hosts         []string
	signMeta      func(io.Reader) ([]byte, error)
	signer        string
	labels        *labeler
	source        oci.Source
	progress      *progress
	sopts         transfer.SaveOptions
	writer        *bundle.Writer
}

// saveFlags reads the image list and checks save's flags.
func (e *env) saveFlags(c *cli.Context) (*saveRun, error) {
	cfg := e.cfg
	s := &saveRun{e: e, c: c}
	var err error
	if s.images, err = e.imageList(c); err != nil {
		return nil, err
	}
	if len(s.images) == 0 {
		return nil, usagef("no images: give IMAGE arguments, --list, or images/list in cfg.yaml")
	}
	if s.plats, s.platNames, err = parsePlatforms(orSlice(c.StringSlice("platform"), cfg.Platforms)); err != nil {
		return nil, err
	}
	if err := squashfsRefused(flagOr(c, "compress", cfg.Compression)); err != nil {
		return nil, err
	}
	if s.codec, err = bundle.ParseCodec(flagOr(c, "compress", cfg.Compression)); err != nil {
		return nil, usageError{err}
	}
	if s.codec == bundle.CodecXz {
		e.log.Warn("xz compresses already-compressed layers at about 1 MB/s; zstd is much faster at the same ratio on them")
	}
	if s.split, err = parseSize(flagOr(c, "split-size", cfg.SplitSize)); err != nil {
		return nil, usagef("--split-size: %v", err)
	}
	s.single = c.Bool("single") || cfg.Single
	if s.single && s.split > 0 {
		return nil, usagef("--single and --split-size exclude each other")
	}
	s.jobs = flagOr(c, "jobs", cfg.Jobs)
	if s.jobs < 1 || s.jobs > 64 {
		return nil, usagef("--jobs must be 1 to 64")
	}
	setMemoryLimit(s.jobs)
	s.retries = e.retries(c)
	var mkdir bool
	s.outDir, s.prefix, mkdir = e.outputFlags(c)
	if s.resume, err = resumeMode(c, &s.outDir); err != nil {
		return nil, err
	}
	if err := outputDir(s.outDir, mkdir); err != nil {
		return nil, err
	}
	return s, nil
}

// openSource connects to the source registries (checked first unless
// --keep-going) and expands the tag selections.
func (s *saveRun) openSource() (*registry.Registry, error) {
	e, c := s.e, s.c
	for _, img := range s.images {
		if !slices.Contains(s.hosts, img.Source.Registry) {
			s.hosts = append(s.hosts, img.Source.Registry)
		}
	}
	reg, err := e.registryFor(s.hosts, c.Bool("insecure"), c.String("ca-file"), s.jobs, s.retries)
	if err != nil {
		return nil, usageError{err}
	}
	if !c.Bool("keep-going") { // else images of a broken registry fail one by one
		if err := reg.Check(c.Context, s.hosts...); err != nil {
			return nil, err
		}
	}
	if s.images, err = e.expandTags(c, reg, s.images, s.jobs); err != nil {
		return nil, err
	}
	return reg, nil
}

// write saves the images from reg (behind the cache, with --cache) into a
// new bundle, or resumes an interrupted one. suspended says where a failed
// save's blobs were kept for a resume.
func (s *saveRun) write(reg *registry.Registry) (res *transfer.SaveResult, suspended string, err error) {
	if err := s.prepare(reg); err != nil {
		return nil, "", err
	}
	e, w := s.e, s.writer
	if r := w.Resumed(); r.ID != "" {
		e.log.Info(fmt.Sprintf("resuming %s: %d blobs kept", r.ID, r.Blobs), "bytes", r.Bytes, "manifests", r.Manifests, "dropped", r.Dropped)
	}
	e.log.Info("saving", "bundle", w.ID(), "images", len(s.images), "dir", s.outDir, "compression", s.codec, "jobs", s.jobs, "referrers", s.referrers)
	if s.signer != "" {
		e.log.Info("signing the meta file", "key", s.signer)
	}
	res, err = transfer.Save(s.c.Context, labelSource{s.source, s.labels}, w, s.images, s.sopts)
	s.progress.Stop()
	if err != nil && w.Suspended() {
		suspended = tr().Sprintf("the blobs written so far are kept in %s: the same save run again resumes %s (--fresh starts over)\n", s.outDir, w.ID())
	}
	return res, suspended, err
}

// prepare makes what write needs: the meta signer, the source (behind the
// cache), the progress, the save options and the bundle Writer.
func (s *saveRun) prepare(reg *registry.Registry) error {
	e, c, cfg := s.e, s.c, s.e.cfg
	var err error
	if s.signMeta, s.signer, err = e.metaSigner(c); err != nil {
		return err
	}
	timeout := e.timeout(c)
	s.referrers = e.referrers(c)
	s.labels = e.labels()
	s.source = reg
	if cacheDir := firstNonZero(c.String("cache"), cfg.Cache.Dir); cacheDir != "" {
		if s.source, err = e.withCache(s.source, cacheDir); err != nil {
			return err
		}
	}
	s.progress = e.labelledProgress(s.labels)
	s.sopts = transfer.SaveOptions{
		Platforms: s.plats, Jobs: s.jobs, Retries: s.retries, KeepGoing: c.Bool("keep-going"),
		IdleTimeout: timeout, Referrers: s.referrers, ArtifactTypes: orSlice(c.StringSlice("artifact-type"), cfg.ArtifactTypes),
		Log: e.log, Progress: s.progress,
	}
	s.writer, err = bundle.NewWriter(bundle.WriterOptions{
		Dir: s.outDir, Prefix: s.prefix, Codec: s.codec,
		Parts: s.jobs, SplitSize: s.split, Single: s.single, Platforms: s.platNames,
		Bases: c.StringSlice("inc"), Tool: "ferry " + version, Log: e.log,
		SignMeta: s.signMeta, Resume: s.resume, Inputs: transfer.SaveInputs(s.images, s.sopts),
	})
	if err != nil {
		s.progress.Stop()
		return usageError{err}
	}
	return nil
}

// done prints the outcome of a save and picks the exit.
func (s *saveRun) done(res *transfer.SaveResult, err error) error {
	e := s.e
	if errors.Is(err, selection.ErrBadList) {
		return usageError{err}
	}
	var fe *transfer.FailedError
	if errors.As(err, &fe) {
		tr().Fprintf(e.stderr, "\nFAILED: %d of %d image(s):\n", len(fe.Images), len(s.images))
		e.failed = fe.Images
		printFailures(e.stderr, fe.Images)
		if res != nil {
			tr().Fprintf(e.stderr, "a PARTIAL bundle of the other images was written: %s\n", res.MetaPath)
		} else {
			tr().Fprintf(e.stderr, "no bundle was written (use --keep-going for a partial one)\n")
		}
		return errReported
	}
	e.cacheDone()
	if err != nil {
		return err
	}
	// stdout carries only the meta path: META=$(ferry save ...) works
	kept := ""
	if res.Resumed > 0 {
		kept = fmt.Sprintf(", %d kept from the interrupted save", res.Resumed)
	}
	e.summary = append(e.summary, "meta: "+res.MetaPath)
	tr().Fprintf(e.summarize(e.info()), "saved %d image(s), %d blob(s) (%s, %d skipped as in base bundles%s) in %s into %d part(s)\n",
		len(res.Meta.Images), res.Blobs, formatSize(res.BlobBytes), res.Skipped, kept, res.Duration.Round(time.Millisecond), len(res.Meta.Parts))
	fmt.Fprintln(e.stdout, res.MetaPath)
	return nil
}

// target is an upload target as parsed from --target and the flags that
// go with it.
type target struct {
	host      *ref.Ref // the registry (set to docker.io for the engine)
	sock      string
	docker    bool
	platform  string // docker: the platform to load; containerd: the platforms
	namespace string // containerd: the namespace
	insecure  bool
	caFile    string
	jobs      int
	retries   int
}

// connectTarget connects to an upload target: the Docker engine,
// containerd, or a registry (checked once). It returns the target's name
// for messages and, for a runtime, how to name its images in logs (they
// are named like Docker Hub does; the log must not read like a push to
// Docker Hub). The caller closes the sink (closeSink).
func (e *env) connectTarget(ctx context.Context, bd *bundle.Bundle, t target) (oci.Sink, string, func(string) string, error) {
	if isContainerd(t.sock) {
		return e.containerdSink(ctx, bd, t)
	}
	if t.docker {
		sink, err := e.dockerSink(ctx, bd, t.sock, t.platform)
		if err != nil {
			return nil, "", nil, err
		}
		name := "docker engine " + docker.SocketName(t.sock)
		t.host.Registry = "docker.io"
		return sink, name, runtimeNames(name), nil
	}
	reg, err := e.registryFor([]string{t.host.Registry}, t.insecure, t.caFile, t.jobs, t.retries)
	if err != nil {
		return nil, "", nil, usageError{err}
	}
	if err := reg.Check(ctx, t.host.Registry); err != nil {
		return nil, "", nil, err
	}
	return reg, t.host.Registry, nil, nil
}

// resumeMode reads --resume DIR (which is then the output directory) and
// --fresh; --watch rounds never resume.
func resumeMode(c *cli.Context, outDir *string) (bundle.ResumeMode, error) {
	dir, fresh := c.String("resume"), c.Bool("fresh")
	switch {
	case c.Bool("watch-round"):
		return bundle.ResumeOff, nil
	case dir != "" && fresh:
		return 0, usagef("--resume and --fresh exclude each other")
	case dir != "" && c.IsSet("out") && filepath.Clean(c.String("out")) != filepath.Clean(dir):
		return 0, usagef("--resume %s is the output directory; -o names another (%s)", dir, c.String("out"))
	case dir != "":
		*outDir = dir
		return bundle.ResumeRequire, nil
	case fresh:
		return bundle.ResumeFresh, nil
	}
	return bundle.ResumeAuto, nil
}

// outputDir checks that save's output directory exists: a month's bundle
// must not land on the root file system because the USB stick is not
// mounted. With mkdir it is created.
func outputDir(dir string, mkdir bool) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return usagef("output %s is not a directory", dir)
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist) && mkdir:
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return tr().Errorf("creating the output directory: %w", err)
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
		return usagef("output directory %s does not exist (is the disk mounted?); create it, or pass --mkdir (cfg output.mkdir: true)", dir)
	}
	return usageError{err}
}

func (e *env) upload(c *cli.Context) error {
	jsonOut, restore := e.jsonOutput(c)
	defer restore()
	metaFile, err := metaArg(c)
	if err != nil {
		return err
	}
	bd, err := e.openChecked(metaFile, c.String("key"))
	if err != nil {
		return err
	}
	jobs := flagOr(c, "jobs", e.cfg.Jobs)
	setMemoryLimit(jobs)
	retries := e.retries(c)
	targetArg := e.itTarget(firstNonZero(c.String("target"), e.cfg.Target))
	host, ns, sock, isDocker, err := e.parseTarget(targetArg)
	if err != nil {
		return err
	}
	var renames map[string]string
	if list := c.String("list"); list != "" {
		specs, err := gatherImages(nil, list, "", nil, "", e.stdin)
		if err != nil {
			return err
		}
		if renames, err = transfer.Renames(bd.Meta, specs); err != nil {
			return usageError{err}
		}
	}
	if isContainerd(sock) && len(renames) > 0 {
		return usagef("--list renames repositories at a registry; containerd keeps the source names")
	}
	renames, ns = e.replaceNamespace(targetArg, bd.Meta, renames, ns)
	sink, targetName, rename, err := e.connectTarget(c.Context, bd, target{host: &host, sock: sock, docker: isDocker,
		platform: c.String("platform"), namespace: c.String("containerd-namespace"), insecure: c.Bool("insecure"), caFile: c.String("ca-file"), jobs: jobs, retries: retries})
	if err != nil {
		return err
	}
	defer closeSink(sink)
	log := e.log
	if rename != nil {
		log = e.logger(rename)
	}
	log.Info("uploading", "bundle", bd.Meta.ID, "target", targetName, "namespace", ns, "parts", len(bd.Meta.Parts), "blobs", len(bd.Meta.Blobs))
	p := e.labelledProgress(e.labelsFromMeta(bd))
	res, err := transfer.Upload(c.Context, bd, sink, transfer.UploadOptions{
		Target: transfer.RegistryTarget(host, ns, renames), Jobs: jobs, Retries: retries, Log: log, Progress: p,
		KeepGoing: c.Bool("keep-going") || e.cfg.KeepGoing,
	})
	p.Stop()
	writeJSON(jsonOut, uploadResultJSON(metaFile, bd.Meta.ID, targetName, res, err))
	return e.uploadDone(bd, log, res, err)
}

// uploadDone prints the outcome of an upload and picks the exit.
func (e *env) uploadDone(bd *bundle.Bundle, log *slog.Logger, res *transfer.UploadResult, err error) error {
	var fe *transfer.FailedError
	if errors.As(err, &fe) && res != nil {
		tr().Fprintf(e.stderr, "\nFAILED: %d of %d image(s), not tagged:\n", len(fe.Images), len(bd.Meta.Images))
		e.failed = fe.Images
		printFailures(e.stderr, fe.Images)
		tr().Fprintf(e.stderr, "uploaded the other %d image(s) of %s: %d manifest(s), %d blob(s) pushed (%s), %d skipped, %d mounted in %s\n",
			res.Images, bd.Meta.ID, res.Manifests, res.BlobsPushed, formatSize(res.BytesPushed), res.BlobsSkipped, res.BlobsMounted, res.Duration.Round(time.Millisecond))
		return errReported
	}
	if err != nil {
		log.Debug("upload failed", "err", err)
		return uploadError(bd.Meta.ID, err)
	}
	rate := float64(res.BytesPushed) / max(res.Duration.Seconds(), 0.001)
	tr().Fprintf(e.summarize(e.stdout), "uploaded %s: %d image(s), %d manifest(s), %d blob(s) pushed (%s, %s/s), %d skipped, %d mounted in %s\n",
		bd.Meta.ID, res.Images, res.Manifests, res.BlobsPushed, formatSize(res.BytesPushed), formatSize(int64(rate)), res.BlobsSkipped, res.BlobsMounted, res.Duration.Round(time.Millisecond))
	return nil
}

// uploadError is the one line a failed upload ends with.
func uploadError(id string, err error) error {
	var re *registry.Error
	switch {
	case errors.As(err, &re):
		return tr().Errorf("upload of %s failed: %w", id, re) // one line: registry, cause, fix
	case errors.Is(err, bundle.ErrBaseMissing):
		return tr().Errorf("upload of %s refused, nothing was sent: %w", id, err)
	}
	return tr().Errorf("upload of %s failed (no manifest was pushed for blobs that did not land): %w", id, err)
}

func orSlice(a, b []string) []string {
	if len(a) > 0 {
		return a
	}
	return b
}

// printFailures lists failed images, one line each; images that failed
// for the same reason (a registry that is down) share one line.
func printFailures(w io.Writer, failed []transfer.ImageError) {
	var order []string
	byMsg := map[string][]string{}
	named := map[string]bool{}
	for _, f := range failed {
		msg := safe.Error(f.Err)
		var re *registry.Error
		if errors.As(f.Err, &re) {
			msg = safe.Error(re)
			named[msg] = re.Ref != ""
		}
		if _, ok := byMsg[msg]; !ok {
			order = append(order, msg)
		}
		byMsg[msg] = append(byMsg[msg], f.Image)
	}
	for _, msg := range order {
		if imgs := byMsg[msg]; len(imgs) == 1 && named[msg] {
			fmt.Fprintf(w, "  %s\n", msg) // the message names the image
		} else {
			fmt.Fprintf(w, "  %s: %s\n", strings.Join(imgs, ", "), msg)
		}
	}
}
