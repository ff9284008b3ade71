package main

// ferry ui: the command, and the console's Engine: the one file where the
// console calls ferry's engines (bundle.Verify, Upload, Save), with the
// settings, credentials and checks the CLI uses.

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/regclient/regclient/types/platform"
	"github.com/urfave/cli/v2"

	"github.com/ferry-oss/ferry/bundle"
	"github.com/ferry-oss/ferry/i18n"
	"github.com/ferry-oss/ferry/meta/sign"
	"github.com/ferry-oss/ferry/oci"
	"github.com/ferry-oss/ferry/registry/docker"
	"github.com/ferry-oss/ferry/selection"
	"github.com/ferry-oss/ferry/transfer"
	"github.com/ferry-oss/ferry/ui"
)

func uiCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "ui",
		Usage: "operator console: a web app to verify, upload and save bundles",
		Description: `Serves the console on this machine (nothing to install: it is in the
ferry binary) and prints its address with an access token; open it in a
browser. It lists the bundles of --dir (full bundles with their
increments, what is missing), verifies and uploads them to a cfg.yaml
target or the Docker engine with live progress, saves new bundles from a
list, and keeps a history. Jobs run in ferry ui: closing the page does not
stop them. Credentials come from cfg.yaml and the Docker config only.

Examples:
  ferry ui --dir /media/usb
  ferry --config cfg.yaml ui --dir /srv/bundles --addr 127.0.0.1:8780`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8780", Usage: "listen address (host:port; port 0 picks a free one); loopback unless --allow-remote"},
			&cli.StringFlag{Name: "dir", Aliases: []string{"d"}, DefaultText: "cfg output.dir, else .", Usage: "directory of bundles to show, and where save writes"},
			&cli.StringFlag{Name: "history", DefaultText: "DIR/ferry-history.jsonl", Usage: "file the console records its runs in (JSON lines)"},
			&cli.BoolFlag{Name: "allow-remote", Usage: "listen on a non-loopback address (plain HTTP: the token crosses the network in clear)"},
		},
		Action: func(c *cli.Context) error { return e.ui(c) },
	}
}

func (e *env) ui(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("ui takes no arguments")
	}
	dir := firstNonZero(c.String("dir"), e.cfg.Output.Dir, ".")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return usagef("--dir %s is not a directory", dir)
	}
	addr := c.String("addr")
	if err := checkListen(addr, c.Bool("allow-remote")); err != nil {
		return err
	}
	history := firstNonZero(c.String("history"), filepath.Join(dir, "ferry-history.jsonl"))
	setMemoryLimit(4 * firstNonZero(e.cfg.Jobs, 4)) // up to four jobs at once
	srv, err := ui.New(ui.Options{
		Dir: dir, Engine: &uiEngine{e: e}, Lang: i18n.Choose(e.cfg.Lang, os.Getenv),
		History: history, Version: version, Log: e.log,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return usageError{err}
	}
	// the URL carries the token: stdout only, never the log
	tr().Fprintf(e.stdout, "ferry console: %s\n", srv.URL(l.Addr()))
	tr().Fprintf(e.info(), "open it in a browser on this machine; Ctrl-C stops the console and its jobs\n")
	if c.Bool("allow-remote") {
		e.log.Warn("the console listens beyond loopback over plain HTTP: whoever sees the link can drive it", "addr", l.Addr().String())
	}
	e.log.Info("console listening", "addr", l.Addr().String(), "dir", dir)
	return srv.Serve(c.Context, l, c.Bool("allow-remote"), 10*time.Second)
}

// checkListen refuses a non-loopback address unless allowed: the console
// drives uploads with this user's credentials.
func checkListen(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--addr %s: %v", addr, err)
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) || allowRemote {
		return nil
	}
	return usagef("--addr %s is not a loopback address: another machine could reach the console; pass --allow-remote to mean it", addr)
}

// uiEngine runs the console's jobs with the CLI's settings: cfg.yaml,
// its registries and credentials, the Docker config.
type uiEngine struct{ e *env }

// uiProgress is a job's Run as ferry's Progress.
type uiProgress struct{ ui.Run }

func (p uiProgress) Begin(name string, size int64) oci.Tracker { return p.Run.Begin(name, size) }

// env is the CLI's env for one job: its log goes to the job.
func (u *uiEngine) env(run ui.Run) *env {
	je := *u.e
	je.log = run.Log(nil)
	je.cache = nil
	return &je
}

func (u *uiEngine) jobs() int { return firstNonZero(u.e.cfg.Jobs, 4) }

func (u *uiEngine) retries() int {
	if r := u.e.cfg.Retries; r != nil {
		return *r
	}
	return 3
}

func (u *uiEngine) Targets() []ui.Target {
	cfg := u.e.cfg
	var out []ui.Target
	for _, r := range cfg.Registries {
		out = append(out, ui.Target{Name: r.key(), Where: strings.TrimSuffix(r.Registry+"/"+r.Namespace, "/"), Default: r.key() == cfg.Target})
	}
	if cfg.Target != "" && !slices.ContainsFunc(out, func(t ui.Target) bool { return t.Default }) {
		out = append([]ui.Target{{Name: cfg.Target, Where: cfg.Target, Default: true}}, out...)
	}
	out = append(out, ui.Target{Name: "docker", Where: docker.SocketName(""), Docker: true})
	return out
}

func (u *uiEngine) Inspect(metaPath string) (*ui.Detail, error) {
	bd, err := openBundle(metaPath)
	if err != nil {
		return nil, err
	}
	d := &ui.Detail{Images: []ui.Image{}, Referrers: []ui.Referrer{}}
	for _, img := range inspectResultJSON(metaPath, bd).Images {
		d.Images = append(d.Images, ui.Image(img))
	}
	rows, err := referrerRows(bd)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		d.Referrers = append(d.Referrers, ui.Referrer{Image: r.img.Source, Subject: r.subject.String(), ArtifactType: r.artifactType,
			Digest: r.digest.String(), Size: r.size, Tag: r.tag})
	}
	return d, nil
}

func (u *uiEngine) Signature(metaPath string) ui.Signature {
	if _, err := os.Stat(sign.SigPath(metaPath)); err != nil {
		return ui.Signature{State: "none"}
	}
	keyFile := u.e.cfg.VerifyKey
	if keyFile == "" {
		return ui.Signature{State: "present"}
	}
	keys, err := sign.LoadKeys(keyFile)
	if err != nil {
		return ui.Signature{State: "invalid", Error: err.Error()}
	}
	_, pub, err := keys.LoadFile(metaPath)
	if err != nil {
		return ui.Signature{State: "invalid", Error: err.Error()}
	}
	return ui.Signature{State: "valid", Key: sign.Fingerprint(pub)}
}

func (u *uiEngine) Verify(ctx context.Context, metaPath string, run ui.Run) error {
	e := u.env(run)
	bd, err := e.openChecked(metaPath, "")
	if err != nil {
		return err
	}
	run.Labels(labelsFromMeta(bd).label)
	e.log.Info("verifying", "bundle", bd.Meta.ID, "parts", len(bd.Meta.Parts), "blobs", len(bd.Meta.Blobs))
	return bd.Verify(ctx, u.jobs(), uiProgress{run})
}

func (u *uiEngine) Upload(ctx context.Context, req ui.UploadRequest, run ui.Run) (*ui.UploadResult, error) {
	e := u.env(run)
	bd, err := e.openChecked(req.Meta, "")
	if err != nil {
		return nil, err
	}
	host, ns, sock, isDocker, err := e.parseTarget(req.Target)
	if err != nil {
		return nil, err
	}
	jobs := u.jobs()
	sink, name, rename, err := e.connectTarget(ctx, bd, target{host: &host, sock: sock, docker: isDocker, platform: req.Platform, jobs: jobs, retries: u.retries()})
	if err != nil {
		return nil, err
	}
	log := run.Log(rename)
	log.Info("uploading", "bundle", bd.Meta.ID, "target", name, "namespace", ns, "parts", len(bd.Meta.Parts), "blobs", len(bd.Meta.Blobs))
	run.Labels(labelsFromMeta(bd).label)
	res, err := transfer.Upload(ctx, bd, sink, transfer.UploadOptions{
		Target: transfer.RegistryTarget(host, ns, nil), Jobs: jobs, Retries: u.retries(), Log: log, Progress: uiProgress{run},
		KeepGoing: req.KeepGoing || e.cfg.KeepGoing,
	})
	out := &ui.UploadResult{Failed: []ui.Failure{}}
	if res != nil {
		out = &ui.UploadResult{Images: res.Images, Manifests: res.Manifests, BlobsPushed: res.BlobsPushed, BlobsSkipped: res.BlobsSkipped,
			BlobsMounted: res.BlobsMounted, BytesPushed: res.BytesPushed, Duration: res.Duration, Failed: failures(res.Failed)}
	}
	var bme *transfer.BaseMissingError
	if errors.As(err, &bme) {
		for _, b := range bme.Bases {
			out.BaseMissing = append(out.BaseMissing, b.ID)
		}
	}
	if err != nil {
		return out, uploadError(bd.Meta.ID, err)
	}
	return out, nil
}

func failures(fs []transfer.ImageError) []ui.Failure {
	out := []ui.Failure{}
	for _, f := range fs {
		out = append(out, ui.Failure{Image: f.Image, Error: f.Err.Error()})
	}
	return out
}

func (u *uiEngine) Save(ctx context.Context, req ui.SaveRequest, run ui.Run) (*ui.SaveResult, error) {
	e, cfg := u.env(run), u.e.cfg
	src := cfg.Source
	if r, ok := cfg.Lookup(src); ok {
		src = r.Registry
	}
	images, err := selection.ParseList(strings.NewReader(req.Images), src)
	if err != nil {
		return nil, err
	}
	plats, platNames, err := parsePlatforms(orSlice(req.Platforms, cfg.Platforms))
	if err != nil {
		return nil, err
	}
	codec, err := bundle.ParseCodec(firstNonZero(req.Compression, cfg.Compression))
	if err != nil {
		return nil, err
	}
	jobs, retries := u.jobs(), u.retries()
	var hosts []string
	for _, img := range images {
		if !slices.Contains(hosts, img.Source.Registry) {
			hosts = append(hosts, img.Source.Registry)
		}
	}
	reg, err := e.registryFor(hosts, false, "", jobs, retries)
	if err != nil {
		return nil, err
	}
	if !req.KeepGoing {
		if err := reg.Check(ctx, hosts...); err != nil {
			return nil, err
		}
	}
	if images, err = selection.ExpandTags(ctx, reg, images, selection.ExpandOptions{Jobs: jobs}); err != nil {
		return nil, err
	}
	w, sopts, err := u.writer(e, req, images, plats, platNames, codec, run)
	if err != nil {
		return nil, err
	}
	var source oci.Source = reg
	if cfg.Cache.Dir != "" {
		if source, err = e.withCache(source, cfg.Cache.Dir); err != nil {
			return nil, err
		}
		defer e.cacheDone()
	}
	labels := newLabeler()
	run.Labels(labels.label)
	e.log.Info("saving", "bundle", w.ID(), "images", len(images), "dir", req.Dir, "compression", codec, "jobs", jobs)
	res, err := transfer.Save(ctx, labelSource{source, labels}, w, images, sopts)
	if res == nil {
		return nil, err
	}
	return &ui.SaveResult{Meta: res.MetaPath, ID: res.Meta.ID, Images: len(res.Meta.Images), Blobs: res.Blobs, BlobBytes: res.BlobBytes,
		Skipped: res.Skipped, Partial: res.Meta.Partial, Duration: res.Duration, Failed: failures(res.Failed)}, err
}

// writer is the bundle Writer of a console save, with cfg.yaml's
// settings and the CLI's defaults where it has none.
func (u *uiEngine) writer(e *env, req ui.SaveRequest, images []selection.ImageSpec, plats []platform.Platform, platNames []string, codec bundle.Codec, run ui.Run) (*bundle.Writer, transfer.SaveOptions, error) {
	cfg := u.e.cfg
	split, _ := parseSize(cfg.SplitSize) // validated with the config
	timeout := 60 * time.Second
	if cfg.Timeout != "" {
		timeout, _ = time.ParseDuration(cfg.Timeout)
	}
	referrers := cfg.Referrers == nil || *cfg.Referrers
	sopts := transfer.SaveOptions{
		Platforms: plats, Jobs: u.jobs(), Retries: u.retries(), KeepGoing: req.KeepGoing, IdleTimeout: timeout,
		Referrers: referrers, ArtifactTypes: cfg.ArtifactTypes, Log: e.log, Progress: uiProgress{run},
	}
	var signMeta func(r io.Reader) ([]byte, error)
	if cfg.SignKey != "" {
		s, err := sign.LoadSigner(cfg.SignKey, []byte(os.Getenv("FERRY_SIGN_PASSPHRASE")))
		if err != nil {
			return nil, sopts, err
		}
		signMeta = s.Sign
	}
	w, err := bundle.NewWriter(bundle.WriterOptions{
		Dir: req.Dir, Prefix: cfg.Output.Prefix, Codec: codec, Parts: u.jobs(), SplitSize: split, Single: cfg.Single,
		Platforms: platNames, Bases: req.BaseMetas, Tool: "ferry " + version, Log: e.log, SignMeta: signMeta,
		Resume: bundle.ResumeAuto, Inputs: transfer.SaveInputs(images, sopts), // a retry resumes a failed save
	})
	return w, sopts, err
}
